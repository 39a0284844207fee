"""A stage that stops with an error prints its summary (kept, dropped by reason, requests)
before the error line, so the error can refer to the counts above it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from scripted import ScriptedLLM, answer, run_against

from selfinstruct.testing.openai_server import MockOpenAIServer

# Bootstrap batches composed ahead of judging (of 1 request each): the most answers that can
# come in before the 50th barren batch is judged, whatever the timing.
AHEAD = 4


def only_repeats(request):
    """Every bootstrap answer repeats the prompt's first instruction, so nothing is kept."""
    text = request.prompt or request.messages[-1][1]
    first = next(line.split(". ", 1)[1] for line in text.splitlines() if line.startswith("1. "))
    return answer(f" {first}\n10. {first}\n")


@pytest.fixture(scope="module")
def gave_up(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """A bootstrap whose every answer repeats the pool: it gives up after 50 batches."""
    run = tmp_path_factory.mktemp("stage_errors") / "run"
    with MockOpenAIServer(llm=ScriptedLLM(bootstrap=only_repeats)) as server:
        result = run_against(
            server.base_url,
            run,
            "--num-instructions",
            "5",
            config=f"[bootstrap]\nrequest_batch_size = 1\nbatches_in_flight = {AHEAD}\n",
            command="bootstrap",
        )
    return run, result


@pytest.mark.slow  # a local HTTP server
def test_bootstrap_that_gives_up_prints_its_drop_reasons_first(
    gave_up: tuple[Path, subprocess.CompletedProcess],
) -> None:
    _, result = gave_up
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    error = next(i for i, line in enumerate(lines) if line.startswith("error: "))
    assert "no new instruction in the last 50 bootstrap batches" in lines[error]
    assert "see the drop reasons above" in lines[error]
    summary = next(i for i, line in enumerate(lines) if line.startswith("[bootstrap]"))
    assert summary < error
    assert "kept 0 instructions, dropped 100 (duplicate 100)" in lines[summary]
    # 50 answers judged; the requests composed ahead of judging (AHEAD batches of 1: up to
    # request 49 + AHEAD - 1) may have been answered, out of order, and counted before the 50th
    # was judged. How many did depends on timing; that no more were sent does not.
    sent = re.search(r"requests (\d+) \(\+0 from cache\)", lines[summary])
    assert sent is not None and 50 <= int(sent.group(1)) <= 50 + AHEAD - 1, lines[summary]


@pytest.mark.slow  # a local HTTP server
def test_a_stage_that_fails_keeps_what_it_committed_and_reports_it(
    gave_up: tuple[Path, subprocess.CompletedProcess],
) -> None:
    """The summary of a failed stage is also recorded in the run (run.json counts)."""
    run, _ = gave_up
    assert (run / "machine_generated_instructions.jsonl").read_text() == ""
    assert '"duplicate": 100' in (run / "run.json").read_text()
