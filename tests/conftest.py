"""Shared fixtures: paths, the `selfinstruct` command (in this process, or as a real one)."""

from __future__ import annotations

import json
import multiprocessing.process
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from hypothesis import settings as hypothesis_settings

from selfinstruct.errors import InputError

ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path:
    """The project's shared reference (REFERENCE.md, STYLE.md, data/seed_tasks.jsonl: the
    paper's 175 seed tasks), which is not in the repository: beside it as ../shared, or
    wherever SELFINSTRUCT_SHARED says. Every test that reads it finds it here."""
    return Path(os.environ.get("SELFINSTRUCT_SHARED") or ROOT.parent / "shared").resolve()


PAPER_SEEDS = shared_dir() / "data" / "seed_tasks.jsonl"
NO_PAPER_SEEDS = f"the paper's seed set is not here ({PAPER_SEEDS})"


# The fast lane (`make check`: -m "not slow", the "fast" hypothesis profile) holds the tests of
# each module's logic that start no server and no process and load no model; the tests marked
# slow (and everything marked embedded or train) run only in `make test`, which runs them all.
# A test not marked slow that starts a server or a process fails, saying so (see
# `pytest_runtest_protocol` below), so the fast lane stays what it is.
SLOW_MARKERS = ("embedded", "train")
# Slow tests in modules that do not import pytest (file::function, every parametrization).
SLOW_TESTS = {
    # A kill harness: three 2000-instruction runs, each SIGKILLed and rerun (about a minute).
    "test_resume.py::test_killed_and_resumed_run_equals_uninterrupted",
    # Up to 20 reruns against a server failing 40% of requests, until every label is in.
    "test_review_fixes.py::test_instances_wait_for_every_label_of_their_batch",
    # A writer slowed by 0.3 s server latency so readers can run beside it (about 15 s).
    "test_readonly_view.py::test_export_and_estimate_while_another_process_generates",
}

# For the fuzz tests that leave their number of examples to the profile.
hypothesis_settings.register_profile("fast", max_examples=20)


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        name = f"{item.path.name}::{getattr(item, 'originalname', item.name)}"
        if name in SLOW_TESTS or any(item.get_closest_marker(m) for m in SLOW_MARKERS):
            item.add_marker(pytest.mark.slow)


class NotInTheFastLane(Exception):
    """A test not marked slow started a server or a process."""


# What each fast-lane test tried and was refused: it fails for it even if the code under test
# caught the exception (a pool that falls back to scoring in its own process, say).
_REFUSED: dict[str, list[str]] = {}


@contextmanager
def _no_servers_or_processes(test: str) -> Iterator[None]:
    """While a fast-lane test runs (its fixtures included): a socket that listens, a
    subprocess or a multiprocessing process raises NotInTheFastLane, and the test fails."""

    def refuse(what: str) -> NotInTheFastLane:
        message = (
            f"{test} {what}: mark it slow (pytest.mark.slow) so that only `make test` runs it; "
            "the fast lane (`make check`) holds tests that start no server and no process"
        )
        _REFUSED.setdefault(test, []).append(message)
        return NotInTheFastLane(message)

    listen, execute, start = (
        socket.socket.listen,
        subprocess.Popen._execute_child,  # type: ignore[attr-defined]
        multiprocessing.process.BaseProcess.start,
    )

    def no_listen(self: socket.socket, *args: Any) -> None:
        raise refuse("starts a server (a socket listens)")

    def no_subprocess(self: subprocess.Popen, args: Any, *rest: Any, **kwargs: Any) -> None:
        raise refuse(f"starts a process ({args if isinstance(args, str) else args[0]})")

    def no_process(self: Any) -> None:
        raise refuse("starts a multiprocessing process")

    socket.socket.listen = no_listen  # type: ignore[method-assign]
    subprocess.Popen._execute_child = no_subprocess  # type: ignore[attr-defined]
    multiprocessing.process.BaseProcess.start = no_process  # type: ignore[method-assign]
    try:
        yield
    finally:
        socket.socket.listen = listen  # type: ignore[method-assign]
        subprocess.Popen._execute_child = execute  # type: ignore[attr-defined]
        multiprocessing.process.BaseProcess.start = start  # type: ignore[method-assign]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    if item.get_closest_marker("slow"):
        yield
        return
    with _no_servers_or_processes(item.nodeid):
        yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    refused = _REFUSED.pop(item.nodeid, None)
    if refused and report.passed:
        report.outcome = "failed"
        report.longrepr = "\n".join(refused)


# What to install or do to run the tests a machine skips, by a word of their reason.
SKIP_HELP = {
    "Chromium": "apt-get install -y chromium (CI's .ci/run does it)",
    "unshare": "a kernel that lets users create namespaces (sysctl "
    "kernel.unprivileged_userns_clone=1; in a container: --privileged or a seccomp profile "
    "allowing unshare)",
    "seed set": "the project's shared reference directory (REFERENCE.md, STYLE.md, "
    "data/seed_tasks.jsonl) beside the repository as ../shared, or SELFINSTRUCT_SHARED=DIR",
}


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """When tests were skipped: one line per reason, with what runs them (CI skips none)."""
    reasons: Counter[str] = Counter()
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reasons[reason.removeprefix("Skipped: ")] += 1
    if not reasons:
        return
    terminalreporter.section("skipped tests, and what runs them", sep="=")
    for reason, count in reasons.most_common():
        help_text = next((h for word, h in SKIP_HELP.items() if word in reason), None)
        line = f"{count} skipped: {reason}"
        terminalreporter.write_line(line + (f"\n    to run them: {help_text}" if help_text else ""))


@pytest.fixture
def paper_seeds() -> Path:
    if not PAPER_SEEDS.is_file():
        pytest.skip(NO_PAPER_SEEDS)
    return PAPER_SEEDS


def cli(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run the `selfinstruct` command with ARGS in this process (as the console script does:
    the same command group, exit codes, stdout and stderr), for speed: a new interpreter
    costs most of a second. The real entry points are tested in test_cli_errors.py; use
    `cli_process` where a separate process matters. An exception that escapes the command
    (a bug: every expected error is one line and an exit code) is raised here."""
    from click.testing import CliRunner

    from selfinstruct.cli import main

    result = CliRunner().invoke(main, [str(arg) for arg in args], prog_name="selfinstruct")
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    completed = subprocess.CompletedProcess(
        ["selfinstruct", *args], result.exit_code, result.stdout, result.stderr
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"selfinstruct {' '.join(map(str, args))} failed:\n{completed.stderr}")
    return completed


def cli_process(
    *args: str, check: bool = True, timeout: float = 600
) -> subprocess.CompletedProcess:
    """Run `python -m selfinstruct ARGS` in a subprocess (the real entry point)."""
    result = subprocess.run(
        [sys.executable, "-m", "selfinstruct", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"selfinstruct {' '.join(args)} failed:\n{result.stderr}")
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def store_snapshot(run_dir: Path) -> dict[str, list[tuple]]:
    """Every generated record in the run store, in order (timestamps left out)."""
    queries = {
        "instructions": "SELECT id, instruction, most_similar, avg_similarity_score, "
        "request_idx, batch_idx, response_key FROM instructions ORDER BY id",
        "candidates": "SELECT * FROM candidates ORDER BY request_idx, piece_idx",
        "labels": "SELECT * FROM labels ORDER BY instruction_id",
        "instances": "SELECT * FROM instances ORDER BY instruction_id",
        "responses": "SELECT key, text, finish_reason FROM responses ORDER BY key",
    }
    with sqlite3.connect(run_dir / "selfinstruct.db") as db:
        return {name: db.execute(sql).fetchall() for name, sql in queries.items()}


# The tables of a whole run's records.
RUN_TABLES = ("instructions", "labels", "instances")


def assert_same_nonempty(
    found: Mapping[str, Sequence[object]],
    expected: Mapping[str, Sequence[object]],
    tables: Iterable[str] = RUN_TABLES,
    *,
    only: bool = False,
) -> None:
    """Two snapshots (table -> rows: store_snapshot, records_snapshot...) are equal (`only`:
    in `tables`), and both hold rows in each of `tables` (the tables the test is about): two
    empty stores are equal too, and prove nothing."""
    tables = tuple(tables)
    for side, snapshot in (("found", found), ("expected", expected)):
        empty = [table for table in tables if not snapshot[table]]
        assert not empty, f"the {side} snapshot holds no rows in {', '.join(empty)}"
    for table in tables if only else sorted(set(found) | set(expected)):
        assert found.get(table) == expected.get(table), f"table {table} differs"


def interruptible() -> None:
    """For subprocess.Popen(preexec_fn=...): Ctrl-C (SIGINT) back to its default in the
    child, so Python turns it into KeyboardInterrupt even when the tests run in the
    background (a shell's `cmd &` starts them with SIGINT ignored, which children inherit)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def records_snapshot(run_dir: Path) -> dict[str, list[tuple]]:
    """The run's records without its stored answers: against a server, how many bootstrap
    requests were still in flight (and cancelled) when the target was reached depends on
    timing, and with it which extra answers were stored."""
    snapshot = store_snapshot(run_dir)
    del snapshot["responses"]
    return snapshot


def write_file(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def task_line(index: int, **changes: object) -> str:
    """One line of the paper's seed JSONL, with fields replaced or (value ...) removed."""
    obj: dict[str, object] = {
        "id": f"seed_task_{index}",
        "name": f"task_{index}",
        "instruction": f"Write a short poem about the number {index}.",
        "instances": [{"input": "", "output": f"Poem number {index}."}],
        "is_classification": False,
    }
    for key, value in changes.items():
        if value is ...:
            obj.pop(key)
        else:
            obj[key] = value
    return json.dumps(obj, ensure_ascii=False)


def expect_input_error(
    load: Callable[[Path], Any],
    path: Path,
    *,
    line: object = ANY,
    field: object = ANY,
    detail: str | None = None,
) -> InputError:
    """load(path) raises InputError naming the file, and the line and field when given."""
    with pytest.raises(InputError) as info:
        load(path)
    err = info.value
    message = str(err)
    assert err.path == str(path)
    assert message.startswith(str(path)), message
    if line is not ANY:
        assert err.line == line, message
        if line is not None:
            assert f"line {line}" in message
    if field is not ANY:
        assert err.field == field, message
        if field is not None:
            assert f"field '{field}'" in message
    if detail is not None:
        assert detail.lower() in err.detail.lower(), message
    return err


# Files a finished run derives from its store (the fake backend's model is fake-1).
DERIVED_FILES = [
    "machine_generated_instructions.jsonl",
    "machine_generated_instances.jsonl",
    "is_clf_or_not_fake-1_completion.jsonl",
    "finetuning_data/all_generated_instances.jsonl",
    "exports/alpaca.json",
    "exports/openai_chat.jsonl",
    "exports/prompt_completion.jsonl",
]


def without_timestamps(path: Path) -> str:
    """A derived file with the response timestamps removed."""
    return re.sub(r'"created_at": "[^"]*"', "", path.read_text(encoding="utf-8"))


def start_run(out: Path, args: Sequence[str]) -> subprocess.Popen:
    """`selfinstruct run --out OUT ARGS` in a child process (to be killed)."""
    command = [sys.executable, "-m", "selfinstruct", "run", "--out", str(out), *args]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def start_http_run(out: Path, url: str, args: Sequence[str]) -> subprocess.Popen:
    """`selfinstruct run --out OUT` over --backend openai against a local server, in a child
    process (to be killed)."""
    return start_run(out, ["--backend", "openai", "--model", "fake", "--base-url", url, *args])


def rerun_with_kills(start: Callable[[], subprocess.Popen], delay: Callable[[], float]) -> int:
    """Start a run, SIGKILL it after `delay()` seconds, and start it again until one start
    completes (it must succeed); returns how many times it was killed."""
    kills = 0
    while True:
        process = start()
        try:
            process.wait(timeout=delay())
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            continue
        assert process.returncode == 0, process.stderr.read().decode() if process.stderr else ""
        return kills


def resumed_after_kills(
    tmp_path: Path,
    start: Callable[[Path], subprocess.Popen],
    delay: Callable[[], float],
    *,
    kills: int,
    most: int,
    attempts: int = 1,
) -> Iterator[Path]:
    """Runs in new directories (tmp_path/resumed0, resumed1...), each killed and restarted
    until it completes (`rerun_with_kills`); at least `attempts` of them, more while fewer
    than `kills` kills were made in all (on a loaded machine the restarts may finish before
    their kill comes), at most `most`. Yields each directory once its run completed."""
    made = attempt = 0
    while attempt < attempts or made < kills:
        assert attempt < most, f"{made} kills in {attempt} attempts: the runs end too soon"
        resumed = tmp_path / f"resumed{attempt}"
        attempt += 1
        made += rerun_with_kills(partial(start, resumed), delay)
        yield resumed
