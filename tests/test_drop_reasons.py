"""Drop reasons: every answered task is either in the dataset or counted under one reason, and
the counts add up the same in the summary, run.json, the report and the dataset card; every
reason any of them names is one of the vocabulary's (filters/reasons.py)."""

from __future__ import annotations

import hashlib
import json
import random
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import read_jsonl
from scripted import ScriptedLLM, answer, run_against

from selfinstruct.console.stats import StageStats
from selfinstruct.dataset.build import build, task_reason
from selfinstruct.evaluation.tasks import read_tasks
from selfinstruct.filters import reasons
from selfinstruct.llm.backends.fake_text import WordSource
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.fake_answers import prompt_text
from selfinstruct.prompts import TemplateSet
from selfinstruct.run.layers import defaults
from selfinstruct.stages.bootstrap import fake_answer as fake_bootstrap
from selfinstruct.store.rows import InstanceRecord
from selfinstruct.testing.openai_server import MockOpenAIServer
from selfinstruct.views.tasks import ParsedTask

EVAL = {task.id: task for task in read_tasks()}
PLANTED_INSTRUCTION = EVAL["selfinstruct_eval_39"].instruction  # a whole task contaminated
PLANTED = EVAL["selfinstruct_eval_7"]  # an instance contaminated (n-grams shared)
CARD_ROW = re.compile(r"^\| (\w+) \| ([^|]+) \| `([^`]+)` \| ([\d,]+) \|$", re.M)
SUMMARY_TASKS = re.compile(r"^\[prepare\] .*?; tasks dropped (\d+) \(([^)]*)\)", re.M)


# ---- the rule, on hand-made tasks ----------------------------------------------------------


def task(n: int, *, truncated: bool = False, clf: bool = False, pairs: int = 0) -> ParsedTask:
    records = [InstanceRecord(n, i, f"in {n} {i}", f"out {n} {i}") for i in range(pairs)]
    return ParsedTask(n, f"Instruction number {n}", clf, records, truncated)


@pytest.mark.parametrize(
    ("verdicts", "expected"),
    [
        (["judge_rejected", "empty_output", "judge_rejected"], "judge_rejected"),  # most
        (["ends_with_colon", "empty_output"], "empty_output"),  # a tie: the check first
        (["same_input_different_output", "judge_rejected"], "judge_rejected"),
        (["plugin_check", "empty_output"], "empty_output"),  # a plug-in's reason after ours
        (["empty_output", "plugin_check", "plugin_check"], "plugin_check"),  # ...but most
        (["plugin_b", "plugin_a"], "plugin_a"),  # plug-ins' ties: by name
    ],
)
def test_a_task_is_counted_under_the_reason_that_dropped_most_of_its_instances(
    verdicts: list[str], expected: str
) -> None:
    assert task_reason(task(1, pairs=len(verdicts)), verdicts) == expected


def test_a_task_with_no_instance_is_truncated_or_unparseable() -> None:
    assert task_reason(task(1), []) == reasons.UNPARSEABLE
    assert task_reason(task(1, truncated=True), []) == reasons.TRUNCATED


@pytest.mark.parametrize("classification_only", [False, True])
def test_the_tasks_kept_and_dropped_add_up_to_the_tasks_given(classification_only: bool) -> None:
    same = [InstanceRecord(5, i, "same input", f"output {i}") for i in range(2)]
    empty = [InstanceRecord(6, 0, "an input", " "), InstanceRecord(6, 1, "input:", "x")]
    tasks = [
        task(1, pairs=2),
        task(2),
        task(3, truncated=True),
        task(4, clf=True, pairs=1),
        ParsedTask(5, "Five", False, same),
        ParsedTask(6, "Six", False, empty),
    ]
    config = defaults()
    config.prepare.decontaminate = False
    config.prepare.classification_tasks_only = classification_only
    stats = StageStats("prepare", "instances")
    data = build(tasks, [], config, TemplateSet(), stats)
    lost = stats.as_dict()["lost"]["tasks"]
    if classification_only:
        assert lost == {"not_classification": 5}
    else:
        assert lost == {
            "unparseable": 1,
            "truncated": 1,
            "same_input_different_output": 1,
            "empty_output": 1,  # a tie with ends_with_colon: the filter applied first
        }
    assert data.task_count + sum(lost.values()) == len(tasks)
    assert Counter(reason for _, reason in data.dropped_tasks) == lost
    assert stats.notes["tasks_kept"] == data.task_count == (1 if classification_only else 2)


# ---- a whole run with several causes ------------------------------------------------------


def scenario(name: str, kinds: int) -> int:
    return hashlib.sha256(name.encode()).digest()[0] % kinds


def target(request: Request) -> str:
    return re.findall(r"Task:\s*(.+)", prompt_text(request))[-1].strip()


def bootstrap(request: Request) -> Completion:
    """The fake model's list, an evaluation instruction first."""
    text = fake_bootstrap(WordSource(random.Random(prompt_text(request))), request)
    return answer(f" {PLANTED_INSTRUCTION}\n10." + text)


def generation(request: Request) -> Completion:
    """Per task, one of the ways an answer loses instances (or none)."""
    name = target(request)
    tag = name[:24]
    kind = scenario(name, 8)
    if kind == 3:
        return answer("I cannot think of any examples for this task.")
    if kind == 4:  # cut off inside its first example
        return answer(f"Example 1\nInput: {tag} cut\nOutput: this answer goes on", "length")
    texts = {
        0: [(f"{tag} alone", f"the one answer to {tag}")],
        1: [(f"{tag} first", f"one answer to {tag}"), (f"{tag} second", f"another, {tag}")],
        2: [(f"{tag} same", "one output"), (f"{tag} same", "another output")],
        5: [(f"{tag} a", ""), (f"{tag} b", " ")],
        6: [(f"{tag} twice", f"the answer {tag}")] * 2 + [(f"{tag} colon", "ends with:")],
        7: [(PLANTED.input, PLANTED.reference)] * 2,
    }[kind]
    return answer(
        "".join(
            f"Example {i}\nInput: {inp}\nOutput: {out}\n\n" for i, (inp, out) in enumerate(texts, 1)
        )
    )


def classification(request: Request) -> Completion:
    name = target(request)
    kind = scenario(name, 4)
    texts = {
        0: [("Yes", f"{name[:20]} one"), ("No", f"{name[:20]} two")],
        1: [],
        2: [("Yes", f"{name[:20]} same"), ("No", f"{name[:20]} same")],
        3: [("Label:", f"{name[:20]} colon")],
    }[kind]
    if not texts:
        return answer("The labels are not clear to me.")
    return answer("".join(f"Class label: {label}\nSentence: {inp}\n" for label, inp in texts))


def answered_tasks(run: Path) -> int:
    """Instructions with an instances answer and a label."""
    with sqlite3.connect(run / "selfinstruct.db") as db:
        return db.execute(
            "SELECT COUNT(*) FROM instances JOIN labels USING (instruction_id)"
        ).fetchone()[0]


def card_rows(run: Path) -> list[tuple[str, str, str, int]]:
    text = (run / "exports" / "README.md").read_text(encoding="utf-8")
    return [(s, unit, r, int(n.replace(",", ""))) for s, unit, r, n in CARD_ROW.findall(text)]


def summary_tasks(stderr: str) -> dict[str, int]:
    found = SUMMARY_TASKS.search(stderr)
    assert found, stderr
    counts = dict(
        (reason, int(n)) for reason, n in (part.rsplit(" ", 1) for part in found[2].split(", "))
    )
    assert sum(counts.values()) == int(found[1])
    return counts


def report_step(report: dict[str, Any], stage: str, unit: str) -> dict[str, Any]:
    return next(s for s in report["funnel"] if (s["stage"], s["unit"]) == (stage, unit))


@pytest.fixture(scope="module")
def several_causes(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    llm = ScriptedLLM(
        bootstrap=bootstrap,
        instances_generation=generation,
        instances_classification=classification,
    )
    run = tmp_path_factory.mktemp("causes") / "run"
    with MockOpenAIServer(llm=llm) as server:
        result = run_against(
            server.base_url,
            run,
            "--num-instructions",
            "60",
            "--judge",
            "fake:judge-1",
            "--set",
            "prepare.report_verbs=false",
        )
    assert result.returncode == 0, result.stderr
    return run, result.stderr


@pytest.mark.slow  # a local HTTP server
def test_every_answered_task_is_kept_or_dropped_for_a_reason_everywhere(
    several_causes: tuple[Path, str],
) -> None:
    run, stderr = several_causes
    answered = answered_tasks(run)
    prepared = json.loads((run / "run.json").read_text())["funnel"]["prepared"]
    dropped = prepared["tasks_dropped"]
    assert prepared["tasks"] + sum(dropped.values()) == answered
    # Every cause the script plants drops whole tasks, each under its own name.
    assert {
        "contaminated",
        "unparseable",
        "truncated",
        "same_input_different_output",
        "empty_output",
        "ends_with_colon",
        "judge_rejected",
    } <= set(dropped)
    kept = {
        row["instruction"]
        for row in read_jsonl(run / "finetuning_data" / "all_generated_instances.jsonl")
    }
    assert len(kept) == prepared["tasks"]

    assert summary_tasks(stderr) == dropped
    assert f"tasks_kept {prepared['tasks']}" in stderr

    tasks = report_step(json.loads((run / "report.json").read_text()), "prepare", "tasks")
    assert tasks["kept"] == prepared["tasks"]
    assert {d["reason"]: d["count"] for d in tasks["dropped"]} == dropped
    html = (run / "report.html").read_text(encoding="utf-8")
    assert f"kept {prepared['tasks']:,} of {answered:,} " in html

    card = {r: n for stage, unit, r, n in card_rows(run) if (stage, unit) == ("prepare", "tasks")}
    assert card == dropped


@pytest.mark.slow  # a local HTTP server
def test_an_answer_cut_off_is_called_truncated_everywhere(
    several_causes: tuple[Path, str],
) -> None:
    run, _ = several_causes
    report = json.loads((run / "report.json").read_text())
    answers = report_step(report, "instances", "answers")
    tasks = report_step(report, "prepare", "tasks")
    for step in (answers, tasks):
        counted = {d["reason"]: d["count"] for d in step["dropped"]}
        assert counted["truncated"] > 0 and counted["unparseable"] > 0
    with sqlite3.connect(run / "selfinstruct.db") as db:
        cut = db.execute(
            "SELECT COUNT(*) FROM instances WHERE finish_reason = 'length' AND parsed = 1 "
            "AND instruction_id NOT IN (SELECT instruction_id FROM parsed_instances)"
        ).fetchone()[0]
    assert {d["reason"]: d["count"] for d in answers["dropped"]}["truncated"] == cut


def reasons_named(run: Path) -> set[str]:
    """Every drop reason the run's files name: run.json, the stage runs stored, report.json,
    the dataset card and quality_drops.jsonl."""
    funnel = json.loads((run / "run.json").read_text())["funnel"]
    named = {*funnel["candidates_dropped"], *funnel["responses"]} - {"ok"}
    named |= {*funnel["prepared"]["instances_dropped"], *funnel["prepared"]["tasks_dropped"]}
    named |= {k for k in funnel["labels"] if k == reasons.UNREADABLE_LABEL}
    with sqlite3.connect(run / "selfinstruct.db") as db:
        for (dropped,) in db.execute("SELECT dropped FROM stage_runs"):
            named |= set(json.loads(dropped))
    report = json.loads((run / "report.json").read_text())
    for step in report["funnel"]:
        named |= {d["reason"] for d in step["dropped"] + step["notes"]}
    named |= set(report["screened"])
    named |= {reason for _, _, reason, _ in card_rows(run)}
    return named | {d["reason"] for d in read_jsonl(run / "quality_drops.jsonl")}


@pytest.mark.slow  # a local HTTP server
def test_every_reason_named_is_one_of_the_vocabulary(several_causes: tuple[Path, str]) -> None:
    run, _ = several_causes
    named = reasons_named(run)
    assert named - set(reasons.REASONS) == set()
    assert len(named) >= 12  # the run names many of them


def test_the_vocabulary_describes_each_reason_in_one_line() -> None:
    for name, meaning in reasons.REASONS.items():
        assert re.fullmatch(r"[a-z_]+", name), name
        assert meaning and "\n" not in meaning, name
    assert set(reasons.PREPARE_ORDER) <= set(reasons.REASONS)
