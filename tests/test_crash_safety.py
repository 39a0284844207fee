"""Crash safety: the CLI killed with SIGKILL at random moments in every stage, and rerun each
time, ends with exactly the records and files of an uninterrupted run; Ctrl-C stops cleanly."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import (
    DERIVED_FILES,
    assert_same_nonempty,
    cli,
    interruptible,
    read_jsonl,
    store_snapshot,
    without_timestamps,
)

# A kill harness: dozens of 3000-instruction runs, SIGKILLed and rerun (minutes).
pytestmark = pytest.mark.slow

COUNT = 3000
ARGS = ["--backend", "fake", "--num-instructions", str(COUNT), "--random-seed", "11", "-q"]
ARGS += ["--set", "prepare.report_verbs=false"]  # the report is derived; spaCy only slows it
STAGES = ("bootstrap", "classify", "instances", "prepare")
# Kills wanted in each stage, and the longest random delay after the run is seen in the stage
# (halved whenever a kill lands in a later stage: the stages are short on the fake backend).
WANTED = {"bootstrap": 12, "classify": 9, "instances": 9, "prepare": 6}
FIRST_DELAY = {"bootstrap": 0.5, "classify": 0.2, "instances": 0.2, "prepare": 0.1}


def current_stage(run_dir: Path) -> str | None:
    """The stage a run is in, read from its store (None before the store has its tables)."""
    path = run_dir / "selfinstruct.db"
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2) as db:
            counts = [
                db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("instructions", "labels", "instances")
            ]
    except sqlite3.Error:
        return None
    for stage, count in zip(STAGES, counts, strict=False):
        if count < COUNT:
            return stage
    return "prepare"


def start(out: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "selfinstruct", "run", "--out", str(out), *ARGS],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=interruptible,
    )


def kill_in(out: Path, aim: str, max_delay: float, rng: random.Random) -> str | None:
    """Start the run, wait until it reaches the aimed stage (or a later one), SIGKILL it after
    a random delay; the stage it was in when killed, or None when it finished first."""
    proc = start(out)
    while proc.poll() is None:
        stage = current_stage(out)
        if stage is not None and STAGES.index(stage) >= STAGES.index(aim):
            time.sleep(rng.uniform(0, max_delay))
            stage = current_stage(out) or stage
            if proc.poll() is not None:
                break
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return stage
        time.sleep(0.01)
    assert proc.returncode == 0, proc.stderr.read().decode() if proc.stderr else ""
    return None


def test_sigkill_in_every_stage_then_resume_equals_uninterrupted(tmp_path: Path) -> None:
    reference = tmp_path / "reference"
    cli("run", "--out", str(reference), *ARGS)
    expected = store_snapshot(reference)

    out = tmp_path / "killed"
    rng = random.Random(5)
    killed_in: Counter[str] = Counter()
    for aim in STAGES:
        delay = FIRST_DELAY[aim]
        while killed_in[aim] < WANTED[aim] and STAGES.index(
            current_stage(out) or aim
        ) <= STAGES.index(aim):
            stage = kill_in(out, aim, delay, rng)
            if stage is None:
                break  # the run finished
            killed_in[stage] += 1
            if STAGES.index(stage) > STAGES.index(aim):
                delay /= 2
            with sqlite3.connect(out / "selfinstruct.db") as db:
                assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cli("run", "--out", str(out), *ARGS)
    print(f"kills by stage: {dict(killed_in)}")

    assert sum(killed_in.values()) >= 30, killed_in
    assert all(killed_in[s] >= 2 for s in STAGES), killed_in
    assert_same_nonempty(store_snapshot(out), expected)
    for name in DERIVED_FILES:
        assert without_timestamps(out / name) == without_timestamps(reference / name), name
    gpt3 = sorted(p.name for p in (out / "finetuning_data").glob("gpt3_*"))
    assert gpt3 == sorted(p.name for p in (reference / "finetuning_data").glob("gpt3_*"))
    assert not list(out.rglob("*.tmp")), "a temporary file was left behind"
    with sqlite3.connect(out / "selfinstruct.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        count, distinct = db.execute(
            "SELECT COUNT(*), COUNT(DISTINCT instruction) FROM instructions"
        ).fetchone()
        instances = db.execute("SELECT COUNT(*) FROM instances").fetchone()[0]
    assert count == distinct == instances == COUNT
    # Exports agree with the store: one training example per kept instance.
    assert len(read_jsonl(out / "exports/openai_chat.jsonl")) == len(
        read_jsonl(out / "finetuning_data/all_generated_instances.jsonl")
    )


@pytest.mark.parametrize("aim", ["bootstrap", "instances"])
def test_ctrl_c_stops_cleanly_and_says_how_to_resume(tmp_path: Path, aim: str) -> None:
    out = tmp_path / "run"
    proc = start(out)
    while proc.poll() is None:
        stage = current_stage(out)
        if stage is not None and STAGES.index(stage) >= STAGES.index(aim):
            break
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=60)
    message = stderr.decode()
    assert proc.returncode == 130, message
    assert "Traceback" not in message
    assert "interrupted" in message and str(out) in message and "rerun" in message
    with sqlite3.connect(out / "selfinstruct.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    cli("run", "--out", str(out), *ARGS)
    reference = tmp_path / "reference"
    cli("run", "--out", str(reference), *ARGS)
    assert_same_nonempty(store_snapshot(out), store_snapshot(reference))


def test_temporary_files_of_a_killed_writer_are_removed_on_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "run"
    small = ["--backend", "fake", "--num-instructions", "10", "-q"]
    cli("run", "--out", str(out), *small)
    stale = [
        out / ".machine_generated_instances.jsonl.k3j2ab_9.tmp",
        out / "exports" / ".alpaca.json.x81qzz01.tmp",
    ]
    for path in stale:
        path.write_text("half a file")
    mine = [out / "exports" / "notes.tmp", out / ".draft.tmp"]
    for path in mine:
        path.write_text("the user's own file")
    cli("classify", "--out", str(out), "-q")
    assert not any(path.exists() for path in stale)
    assert all(path.read_text() == "the user's own file" for path in mine)
