"""The crash and fault harness of the later stages (relabel, judge, merge, budgets, the report):
what a finished run is made of, compared between a run that was interrupted (killed, faulted,
its server gone for a while) and one that was not; a process killed once a condition holds;
a server that dies when a condition holds and comes back."""

from __future__ import annotations

import json
import re
import signal
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from conftest import RUN_TABLES, assert_same_nonempty, records_snapshot, without_timestamps

from selfinstruct.testing.openai_server import MockOpenAIServer

# What a finished run derives from its store and must derive alike however it got there
# (the classification file is named after the model: globbed).
DATASET_FILES = (
    "machine_generated_instructions.jsonl",
    "machine_generated_instances.jsonl",
    "finetuning_data/all_generated_instances.jsonl",
    "exports/alpaca.json",
    "exports/openai_chat.jsonl",
    "exports/prompt_completion.jsonl",
    "exports/README.md",
    "quality_drops.jsonl",
)
# The report's numbers that depend on the processes that made the run, not on its records:
# when it was written, where, and the requests, seconds and tokens each process spent (a
# killed process's answers in flight are asked again).
PROCESS_KEYS = ("generated_at", "run", "economics")


def rows(run: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(run / "selfinstruct.db") as db:
        return db.execute(sql).fetchall()


def count(run: Path, table: str) -> int:
    """Rows in a table of a run's store that another process may be writing (-1 while it
    cannot be read: no store yet, no such table, locked)."""
    path = run / "selfinstruct.db"
    if not path.exists():
        return -1
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.2) as db:
            return int(db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])
    except sqlite3.Error:
        return -1


def quality_snapshot(run: Path) -> dict[str, list[tuple]]:
    """Every record of the run (but the stored answers: against a server, which requests were
    in flight when a stage reached its target depends on timing), judgments and relabels
    included."""
    return {
        **records_snapshot(run),
        "parsed_instances": rows(run, "SELECT * FROM parsed_instances ORDER BY 1, 2"),
        "judgments": rows(run, "SELECT * FROM judgments ORDER BY 1, 2, 3"),
        "relabels": rows(run, "SELECT * FROM relabels ORDER BY 1, 2"),
    }


def report_numbers(path: Path) -> dict[str, Any]:
    """report.json without what depends on the processes that made the run."""
    report = json.loads(path.read_text(encoding="utf-8"))
    return {key: value for key, value in report.items() if key not in PROCESS_KEYS}


def dataset_files(run: Path) -> dict[str, str]:
    """The run's derived files (response timestamps left out), its report's numbers, and
    its own name replaced, so runs in two directories compare."""
    found = {
        name: without_timestamps(run / name).replace(run.name, "RUN")
        for name in DATASET_FILES
        if (run / name).exists()
    }
    for path in sorted(run.glob("is_clf_or_not_*.jsonl")):
        found[path.name] = without_timestamps(path)
    if (run / "report.json").exists():
        numbers = json.dumps(report_numbers(run / "report.json"), sort_keys=True)
        found["report.json"] = numbers.replace(run.name, "RUN")
    return found


def assert_same_run(run: Path, reference: Path, tables: Sequence[str] = RUN_TABLES) -> None:
    """`run` ended with exactly the records and files of `reference`, which holds rows in
    `tables` (the instructions, labels and instances of a whole run)."""
    assert_same_nonempty(quality_snapshot(run), quality_snapshot(reference), tables)
    files, want = dataset_files(run), dataset_files(reference)
    assert sorted(files) == sorted(want)
    for name in want:
        assert files[name] == want[name], name
    assert not list(run.rglob("*.tmp")), "a temporary file was left behind"
    assert rows(run, "PRAGMA integrity_check") == [("ok",)]


def kill_when(
    process: subprocess.Popen,
    ready: Callable[[], bool],
    delay: float,
    timeout: float = 300,
    ok: Sequence[int] = (0,),
) -> bool:
    """SIGKILL `process` `delay` seconds after `ready()` first holds (polled); False when it
    ended first (with an exit code in `ok`)."""
    deadline = time.monotonic() + timeout
    while process.poll() is None and not ready():
        assert time.monotonic() < deadline, "the process never got there"
        time.sleep(0.005)
    if process.poll() is None:
        time.sleep(delay)
    if process.poll() is not None:
        stderr = process.stderr.read().decode() if process.stderr else ""
        assert process.returncode in ok, stderr
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def finished(process: subprocess.Popen, timeout: float = 600) -> str:
    """Wait for a process that must succeed; its standard error."""
    _, stderr = process.communicate(timeout=timeout)
    text = stderr.decode() if isinstance(stderr, bytes) else (stderr or "")
    assert process.returncode == 0, text
    return text


class Outage:
    """A server that dies once `when()` holds (polled in a thread) and comes back on the same
    port `seconds` later: new connections are refused meanwhile, the open ones cut off."""

    def __init__(self, server: MockOpenAIServer, when: Callable[[], bool], seconds: float):
        self.server = server
        self.when = when
        self.seconds = seconds
        self.served_before = 0  # requests the server had taken when it died
        self.died = threading.Event()
        self.back = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)

    def __enter__(self) -> Outage:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.seconds + 10)
        if self.died.is_set() and not self.back.is_set():
            self.server.start()
            self.back.set()

    def _watch(self) -> None:
        while not self._stop.is_set():
            if self.when():
                self.served_before = self.server.stats["requests"]
                self.server.crash()
                self.died.set()
                time.sleep(self.seconds)
                self.server.start()
                self.back.set()
                return
            time.sleep(0.002)


def stderr_counts(stderr: str, stage: str) -> dict[str, int]:
    """The counters a stage's summary line printed (e.g. 'connection 12; retries 9')."""
    line = next((x for x in stderr.splitlines() if x.startswith(f"[{stage}]")), "")
    return {name: int(n) for name, n in re.findall(r"([a-z_]+) (\d+)", line)}
