"""Classify answers that are neither yes nor no are counted as unreadable_label (the paper's
rule still decides what counts as yes), in the summary and in run.json."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from conftest import read_jsonl
from scripted import ScriptedLLM, answer, run_against

from selfinstruct.llm.base import Completion, Request
from selfinstruct.parsing.labels import UNREADABLE, label_counts, read_label
from selfinstruct.testing.openai_server import MockOpenAIServer

HOSTILE = ["Decision:", " 1. Dec", "Task: Determine", " Yes", " No", " No"]


def hostile(request: Request) -> Completion:
    digest = hashlib.sha256((request.prompt or "").encode()).digest()
    return answer(HOSTILE[digest[0] % len(HOSTILE)])


@pytest.mark.parametrize(
    ("raw", "style", "read"),
    [
        (" Yes", "completion", "yes"),
        ("NO\n", "completion", "no"),
        ("Yes.", "completion", UNREADABLE),  # the paper's rule: not "Yes", so not a yes
        ("Decision:", "completion", UNREADABLE),
        (" 1. Dec", "completion", UNREADABLE),
        ("Task: Determine", "completion", UNREADABLE),
        ("", "completion", UNREADABLE),
        ("**Yes.**", "chat", "yes"),
        ("no, it is not", "chat", "no"),
        ("Decision: yes", "chat", UNREADABLE),
        ("1. Dec", "chat", UNREADABLE),
    ],
)
def test_read_label(raw: str, style: str, read: str) -> None:
    assert read_label(raw, style) == read


def test_label_counts() -> None:
    assert label_counts(HOSTILE, "completion") == {
        "classification": 1,
        "not_classification": 2,
        UNREADABLE: 3,
    }


@pytest.mark.slow  # a local HTTP server
def test_unreadable_classify_answers_are_counted_not_hidden(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with MockOpenAIServer(llm=ScriptedLLM(classify=hostile)) as server:
        result = run_against(server.base_url, run, "--num-instructions", "24")
    assert result.returncode == 0, result.stderr
    labels = read_jsonl(run / "is_clf_or_not_fake_completion.jsonl")
    raws = [r["is_classification"] for r in labels]
    expected = label_counts(raws, "completion")
    assert expected[UNREADABLE] > 0 and expected["classification"] > 0
    lines = result.stderr.splitlines()
    detail = lines[lines.index(next(x for x in lines if x.startswith("[classify]"))) + 1]
    assert detail.startswith(
        f"  labels: classification {expected['classification']}, not_classification "
        f"{expected['not_classification']}, unreadable_label {expected[UNREADABLE]} "
        "(unreadable answers count as not classification, the paper's rule; most common: "
    )
    assert "'Decision:'" in detail or "'1. Dec'" in detail or "'Task: Determine'" in detail
    info = json.loads((run / "run.json").read_text())
    assert info["labels"] == expected
    # The paper's rule decides: only the exact "Yes" answers became classification tasks.
    assert sum(raw.strip() == "Yes" for raw in raws) == expected["classification"]
