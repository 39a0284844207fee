"""A stage that stops with an error prints its summary (kept, dropped by reason, requests)
before the error line, so the error can refer to the counts above it."""

from __future__ import annotations

from pathlib import Path

from scripted import ScriptedLLM, answer, run_against

from selfinstruct.testing.openai_server import MockOpenAIServer


def only_repeats(request):
    """Every bootstrap answer repeats the prompt's first instruction, so nothing is kept."""
    text = request.prompt or request.messages[-1][1]
    first = next(line.split(". ", 1)[1] for line in text.splitlines() if line.startswith("1. "))
    return answer(f" {first}\n10. {first}\n")


def test_bootstrap_that_gives_up_prints_its_drop_reasons_first(tmp_path: Path) -> None:
    with MockOpenAIServer(llm=ScriptedLLM(bootstrap=only_repeats)) as server:
        result = run_against(
            server.base_url,
            tmp_path / "run",
            "--num-instructions",
            "5",
            config="[bootstrap]\nrequest_batch_size = 1\n",
            command="bootstrap",
        )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    assert "no new instruction in the last 50 bootstrap batches" in lines[error]
    assert "see the drop reasons above" in lines[error]
    summary = next(i for i, line in enumerate(lines) if line.startswith("[bootstrap]"))
    assert summary < error
    assert "kept 0 instructions, dropped 100 (duplicate 100)" in lines[summary]
    assert "requests 50 (+0 from cache)" in lines[summary]


def test_a_stage_that_fails_keeps_what_it_committed_and_reports_it(tmp_path: Path) -> None:
    """The summary of a failed stage is also recorded in the run (run.json counts)."""
    with MockOpenAIServer(llm=ScriptedLLM(bootstrap=only_repeats)) as server:
        run_against(
            server.base_url,
            tmp_path / "run",
            "--num-instructions",
            "5",
            config="[bootstrap]\nrequest_batch_size = 1\n",
            command="bootstrap",
        )
    assert (tmp_path / "run" / "machine_generated_instructions.jsonl").read_text() == ""
    assert '"duplicate": 100' in (tmp_path / "run" / "run.json").read_text()
