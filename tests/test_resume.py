"""Interruption and resume: a run killed at random moments and rerun each time ends with
exactly the records of an uninterrupted run."""

from __future__ import annotations

import random
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from conftest import (
    DERIVED_FILES,
    assert_same_nonempty,
    cli,
    resumed_after_kills,
    start_run,
    store_snapshot,
    without_timestamps,
)

# The report's spaCy parse is left out: it is derived, and loading spaCy in every restarted
# process would make each start longer than most kill windows.
ARGS = ["--backend", "fake", "--num-instructions", "2000", "--random-seed", "7", "-q"]
ARGS += ["--set", "prepare.report_verbs=false"]


def _start(out: Path) -> subprocess.Popen:
    return start_run(out, ARGS)


def test_killed_and_resumed_run_equals_uninterrupted(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    started = time.monotonic()  # timed as the restarted runs are: a process of its own
    proc = _start(reference)
    assert proc.wait() == 0, proc.stderr.read().decode() if proc.stderr else ""
    duration = time.monotonic() - started

    rng = random.Random(2024)
    expected = store_snapshot(reference)
    for resumed in resumed_after_kills(
        tmp_path,
        _start,
        lambda: 0.3 + rng.uniform(0, 0.6 * duration),
        kills=6,
        attempts=3,
        most=10,
    ):
        assert_same_nonempty(store_snapshot(resumed), expected)

    for name in DERIVED_FILES:
        assert without_timestamps(resumed / name) == without_timestamps(reference / name), name
    gpt3 = sorted(p.name for p in (resumed / "finetuning_data").glob("gpt3_*"))
    assert gpt3 == sorted(p.name for p in (reference / "finetuning_data").glob("gpt3_*"))
    with sqlite3.connect(resumed / "selfinstruct.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count = db.execute("SELECT COUNT(*) FROM instructions").fetchone()[0]
        distinct = db.execute("SELECT COUNT(DISTINCT instruction) FROM instructions").fetchone()[0]
    assert count == distinct == 2000


@pytest.mark.slow  # a process of its own
def test_extending_a_run_equals_running_the_larger_count_at_once(tmp_path: Path) -> None:
    direct, extended = tmp_path / "direct", tmp_path / "extended"
    cli("run", "--out", str(direct), "--backend", "fake", "--num-instructions", "120", "-q")
    cli("run", "--out", str(extended), "--backend", "fake", "--num-instructions", "45", "-q")
    cli("run", "--out", str(extended), "--backend", "fake", "--num-instructions", "120", "-q")
    # Stage 3's max_tokens depends on the whole batch (the paper's rule), so batches must
    # not straddle the old end: 45 is a multiple of the batch size.
    assert_same_nonempty(store_snapshot(extended), store_snapshot(direct))


def test_rerun_of_a_finished_run_makes_no_requests(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("run", "--out", str(out), "--backend", "fake", "--num-instructions", "30", "-q")
    before = store_snapshot(out)
    result = cli("run", "--out", str(out), "--backend", "fake", "--num-instructions", "30")
    assert_same_nonempty(store_snapshot(out), before)
    # said only when no stage sent a request or took one from the cache
    assert "[run] already complete: 30 instructions" in result.stderr


def test_stage_commands_match_run(tmp_path: Path) -> None:
    whole, staged = tmp_path / "whole", tmp_path / "staged"
    common = ["--backend", "fake", "--num-instructions", "40", "-q"]
    cli("run", "--out", str(whole), *common)
    cli("bootstrap", "--out", str(staged), *common)  # the stages after it use the run's own
    for stage in ("classify", "instances", "prepare"):
        cli(stage, "--out", str(staged), "-q")
    assert_same_nonempty(store_snapshot(staged), store_snapshot(whole))
    alpaca = "exports/alpaca.json"
    assert (staged / alpaca).read_text() == (whole / alpaca).read_text()
