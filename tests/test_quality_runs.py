"""Quality checks in whole runs: decontamination removes planted copies of evaluation tasks
(and nothing else), and label consistency drops exactly the stored disagreements."""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import cli, read_jsonl
from scripted import ScriptedLLM, answer, run_against

from selfinstruct.evaluation.tasks import read_tasks
from selfinstruct.llm.backends.fake_text import WordSource
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.fake_answers import prompt_text
from selfinstruct.stages.bootstrap import fake_answer as fake_bootstrap
from selfinstruct.testing.openai_server import MockOpenAIServer

EVAL = {task.id: task for task in read_tasks()}
PLANTED_INSTRUCTIONS = ("selfinstruct_eval_39", "selfinstruct_eval_8")
PLANTED_INSTANCE = EVAL["selfinstruct_eval_7"]
NO_REPORT = ("--quiet", "--set", "prepare.report=false")


def planting_bootstrap(request: Request) -> Completion:
    """The fake model's list, with two evaluation instructions as its first items."""
    text = fake_bootstrap(WordSource(random.Random(prompt_text(request))), request)
    first, second = (EVAL[i].instruction for i in PLANTED_INSTRUCTIONS)
    return answer(f" {first}\n10. {second}\n11." + text)


def target(request: Request) -> str:
    return re.findall(r"Task:\s*(.+)", prompt_text(request))[-1].strip()


def planted_task(instruction: str) -> bool:
    """About one generation task in four gets an evaluation instance."""
    return hashlib.sha256(instruction.encode()).digest()[0] % 4 == 0


def planting_instances(request: Request) -> Completion:
    name = target(request)
    first = ("Input", "Jo has 3 apples.", f"{name[:20]} first")
    if planted_task(name):
        first = ("Problem", PLANTED_INSTANCE.input, PLANTED_INSTANCE.reference)
    field, text, out = first
    return answer(
        f"Example 1\n{field}: {text}\nOutput: {out}\n\n"
        f"Example 2\nInput: {name[:30]} second\nOutput: an answer for {name[:25]}\n\n"
    )


def kept(run: Path) -> list[tuple[str, str, str]]:
    rows = read_jsonl(run / "finetuning_data" / "all_generated_instances.jsonl")
    return sorted((r["instruction"], r["input"], r["output"]) for r in rows)


@pytest.mark.slow  # a local HTTP server
def test_decontamination_removes_planted_evaluation_tasks_and_nothing_else(
    tmp_path: Path,
) -> None:
    llm = ScriptedLLM(bootstrap=planting_bootstrap, instances_generation=planting_instances)
    on, off = tmp_path / "on", tmp_path / "off"
    with MockOpenAIServer(llm=llm) as server:
        for run, extra in ((on, ()), (off, ("--set", "prepare.decontaminate=false"))):
            result = run_against(
                server.base_url, run, "--num-instructions", "40", *NO_REPORT, *extra
            )
            assert result.returncode == 0, result.stderr
    instructions = [
        json.loads(line)["instruction"]
        for line in (on / "machine_generated_instructions.jsonl").read_text().splitlines()
    ]
    for task_id in PLANTED_INSTRUCTIONS:
        assert EVAL[task_id].instruction in instructions  # generated and accepted

    drops = read_jsonl(on / "quality_drops.jsonl")
    whole = {d["instruction"]: d for d in drops if d["position"] is None}
    assert set(whole) == {EVAL[i].instruction for i in PLANTED_INSTRUCTIONS}
    for task_id in PLANTED_INSTRUCTIONS:
        assert whole[EVAL[task_id].instruction]["detail"].startswith(f"{task_id}: ROUGE-L 1.00")
    parts = [d for d in drops if d["position"] is not None]
    assert parts and all(d["reason"] == "contaminated" for d in parts)
    assert all(d["detail"].startswith("selfinstruct_eval_7: shares") for d in parts)
    assert all(d["output"] == PLANTED_INSTANCE.reference for d in parts)

    with_, without = kept(on), kept(off)
    assert set(with_) <= set(without)
    removed = set(without) - set(with_)
    planted_texts = {EVAL[i].instruction for i in PLANTED_INSTRUCTIONS}
    assert removed == {
        r for r in without if r[0] in planted_texts or r[2] == PLANTED_INSTANCE.reference
    }
    stats = _prepare_drops(on)
    assert stats["contaminated"] >= len(removed)  # (repeats of an instance counted too)


def _prepare_drops(run: Path) -> dict[str, int]:
    with sqlite3.connect(run / "selfinstruct.db") as db:
        found = db.execute(
            "SELECT dropped FROM stage_runs WHERE stage = 'prepare' ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return json.loads(found[0])


def test_decontaminating_against_a_file_of_ones_own(tmp_path: Path) -> None:
    """--decontaminate FILE replaces the packaged tasks; a task in the file is matched."""
    run = tmp_path / "run"
    cli("run", "--backend", "fake", "--num-instructions", "20", "--out", run, *NO_REPORT)
    first = json.loads((run / "machine_generated_instructions.jsonl").read_text().splitlines()[0])
    evals = tmp_path / "mine.jsonl"
    line = {
        "id": "mine_1",
        "motivation_app": "",
        "instruction": first["instruction"],
        "instances": [{"input": "", "output": "x"}],
    }
    evals.write_text(json.dumps(line) + "\n")
    cli("prepare", "--out", run, "--decontaminate", evals, "--quiet")
    drops = read_jsonl(run / "quality_drops.jsonl")
    assert {d["instruction"] for d in drops} == {first["instruction"]}
    assert drops[0]["detail"].startswith("mine_1: ROUGE-L 1.00")
    stored = json.loads((run / "run.json").read_text())["config"]["prepare"]
    assert stored["decontaminate_files"] == [str(evals.resolve())]


def test_label_consistency_drops_exactly_the_stored_disagreements(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli(
        "run",
        "--backend",
        "fake",
        "--num-instructions",
        "40",
        "--out",
        run,
        "--relabel",
        "--set",
        "prepare.decontaminate=false",
        *NO_REPORT,
    )
    with sqlite3.connect(run / "selfinstruct.db") as db:
        relabels = db.execute("SELECT instruction_id, position, agrees FROM relabels").fetchall()
        clf = db.execute(
            "SELECT COUNT(*) FROM parsed_instances p JOIN labels l "
            "ON p.instruction_id = l.instruction_id WHERE l.is_classification = 1"
        ).fetchone()[0]
    assert len(relabels) == clf > 0
    disagree = [r for r in relabels if r[2] == 0]
    assert disagree and _prepare_drops(run)["label_disagrees"] == len(disagree)
    found = json.loads((run / "run.json").read_text())["label_agreement"]
    readable = [r for r in relabels if r[2] is not None]
    assert (found["yes"], found["n"]) == (sum(r[2] for r in readable), len(readable))
    assert found["unreadable"] == len(relabels) - len(readable)


def test_label_consistency_is_off_by_default(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = cli("run", "--backend", "fake", "--num-instructions", "15", "--out", run, *NO_REPORT)
    assert "[relabel]" not in result.stderr
    with sqlite3.connect(run / "selfinstruct.db") as db:
        assert db.execute("SELECT COUNT(*) FROM relabels").fetchone()[0] == 0
    # turning it on later adds the check without touching the generated data
    cli("run", "--backend", "fake", "--num-instructions", "15", "--out", run, "--relabel", "-q")
    cli("run", "--backend", "fake", "--num-instructions", "15", "--out", run, "-q")


def test_the_relabel_command_refuses_when_label_consistency_is_off(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("run", "--backend", "fake", "--num-instructions", "10", "--out", run, *NO_REPORT)
    result = cli("relabel", "--out", run, check=False)
    assert result.returncode != 0 and "--relabel" in result.stderr


def single_label_instances(request: Request) -> Completion:
    """Every classification task gets inputs of one label only."""
    return answer("Class label: Yes\nSentence: It rains.\nClass label: Yes\nSentence: Sun.\n")


@pytest.mark.slow  # a local HTTP server
def test_tasks_with_a_single_label_are_not_asked(tmp_path: Path) -> None:
    llm = ScriptedLLM(instances_classification=single_label_instances)
    run = tmp_path / "run"
    with MockOpenAIServer(llm=llm) as server:
        result = run_against(server.base_url, run, "--num-instructions", "20", "--relabel")
    assert result.returncode == 0, result.stderr
    with sqlite3.connect(run / "selfinstruct.db") as db:
        assert db.execute("SELECT COUNT(*) FROM relabels").fetchone()[0] == 0
        assert db.execute("SELECT COUNT(*) FROM labels WHERE is_classification = 1").fetchone()[0]


def test_an_empty_quality_drops_file_is_written_but_not_listed(tmp_path: Path) -> None:
    """quality_drops.jsonl is written on every prepare (a rerun that drops nothing replaces
    older drops), and listed among the files written only when it holds some."""
    run = tmp_path / "run"
    first = cli(
        "run", "--backend", "fake", "--num-instructions", "20", "--out", run, *NO_REPORT[1:]
    )
    drops = run / "quality_drops.jsonl"
    assert drops.read_text() == ""
    assert "quality_drops.jsonl" not in first.stdout
    assert "  no quality drops (quality_drops.jsonl is empty)" in first.stderr

    evals = tmp_path / "mine.jsonl"
    instruction = read_jsonl(run / "machine_generated_instructions.jsonl")[0]["instruction"]
    task = {"id": "m1", "instruction": instruction, "instances": [{"input": "", "output": "x"}]}
    evals.write_text(json.dumps(task) + "\n")
    found = cli("prepare", "--out", run, "--decontaminate", evals)
    assert f"  {drops}" in found.stdout.splitlines()
    assert len(read_jsonl(drops)) == 1
    assert "no quality drops" not in found.stderr

    again = cli("prepare", "--out", run, "--set", "prepare.decontaminate=false")
    assert drops.read_text() == ""  # the older drops replaced
    assert "quality_drops.jsonl" not in again.stdout
    assert "no quality drops" in again.stderr


def test_classification_instances_relabel_never_answered_are_kept_with_a_warning(
    tmp_path: Path,
) -> None:
    """An instance relabel should have checked but holds no answer for (its request failed
    for good) is kept, counted and warned about, never silently passed."""
    run = tmp_path / "run"
    cli("run", "--backend", "fake", "--num-instructions", "40", "--out", run, "--relabel",
        *NO_REPORT)  # fmt: skip
    with sqlite3.connect(run / "selfinstruct.db") as db:
        removed = db.execute("SELECT COUNT(*) FROM relabels").fetchone()[0] // 2
        assert removed > 0
        db.execute(
            "DELETE FROM relabels WHERE rowid IN (SELECT rowid FROM relabels LIMIT ?)", (removed,)
        )
    done = cli("prepare", "--out", run, "--set", "prepare.report=false")
    assert f"{removed} classification instances have no input-first label" in done.stderr
    assert f"relabel_unchecked_kept {removed}" in done.stderr  # counted in the summary
