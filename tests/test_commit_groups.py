"""Answers that come back together are stored in one commit (`Feed.put_all`,
`RunStore.commit_together`): records still commit in record order, nothing of a group is
seen before all of it is, the answer cache and the records never disagree, and a run killed
in the middle of a group resumes to exactly the records and answers of one never killed."""

from __future__ import annotations

import random
import shutil
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import assert_same_nonempty, cli, store_snapshot

from selfinstruct.llm.backends.fake import FakeLLM
from selfinstruct.llm.base import LLM, Completion, Feed, Request
from selfinstruct.store.labels import Labels
from selfinstruct.store.run_store import RunStore

TESTS = Path(__file__).resolve().parent

CLASSIFIED = ("instructions", "labels")  # the tables a classify stage fills


class Grouped(LLM):
    """Serves a feed 16 requests at a time and hands their answers back in shuffled groups
    of one to five (`put_all`), as a server backend does with requests that end together.
    `between(groups)` runs before each group."""

    concurrency = 16

    def __init__(self, between: Callable[[int], None] = lambda groups: None) -> None:
        super().__init__("fake-1")
        self.fake = FakeLLM()
        self.rng = random.Random(1)
        self.between = between
        self.groups = 0

    def serve(self, feed: Feed) -> None:
        in_flight: list[tuple[int, Request]] = []
        while True:
            in_flight += feed.take(self.concurrency - len(in_flight))
            if not in_flight:
                return
            self.rng.shuffle(in_flight)
            size = self.rng.randint(1, 5)
            group, in_flight = in_flight[:size], in_flight[size:]
            self.between(self.groups)
            feed.put_all([(ticket, self.fake.generate([r])[0]) for ticket, r in group])
            self.groups += 1

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self.fake.generate(requests)


@contextmanager
def backend(llm: LLM) -> Iterator[None]:
    from selfinstruct.engine.context import RunContext

    original = RunContext.llm_for
    RunContext.llm_for = lambda self, stage: llm  # type: ignore[method-assign]
    try:
        yield
    finally:
        RunContext.llm_for = original  # type: ignore[method-assign]


def committed(run: Path) -> tuple[list[int], list[tuple[int, bool]], int]:
    """What another process sees: the labelled instruction ids, whether each label's answer
    is in the cache, and how many classify answers are stored."""
    with closing(sqlite3.connect(run / "selfinstruct.db")) as db:
        labels = [row[0] for row in db.execute("SELECT instruction_id FROM labels ORDER BY 1")]
        cached = db.execute(
            "SELECT l.instruction_id, r.key IS NOT NULL FROM labels l "
            "LEFT JOIN responses r ON r.key = l.response_key ORDER BY 1"
        ).fetchall()
        answers = db.execute("SELECT COUNT(*) FROM responses WHERE stage = 'classify'")
        return labels, cached, answers.fetchone()[0]


def instruction_ids(run: Path) -> list[int]:
    with closing(sqlite3.connect(run / "selfinstruct.db")) as db:
        return [row[0] for row in db.execute("SELECT id FROM instructions ORDER BY id")]


@pytest.fixture(scope="module")
def bootstrapped(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("groups") / "run"
    cli("bootstrap", "--out", str(run), "--num-instructions", "80", "--backend", "fake", "-q")
    return run


def copy(run: Path, to: Path) -> Path:
    shutil.copytree(run, to)
    return to


def test_groups_commit_whole_and_in_record_order(bootstrapped: Path, tmp_path: Path) -> None:
    from selfinstruct.api import Run

    grouped, ordered = copy(bootstrapped, tmp_path / "grouped"), copy(bootstrapped, tmp_path / "o")
    ids = instruction_ids(grouped)
    seen: list[tuple[list[int], list[tuple[int, bool]], int]] = []  # before each group
    unchanged: list[bool] = []  # while a group writes, another process sees the same

    def between(groups: int) -> None:
        seen.append(committed(grouped))

    put_label = Labels.put

    def recording(self: Labels, *args: object) -> None:
        unchanged.append(committed(grouped) == seen[-1])
        put_label(self, *args)  # type: ignore[arg-type]

    llm = Grouped(between)
    Labels.put = recording  # type: ignore[method-assign]
    try:
        with backend(llm):
            Run.open(grouped, quiet=True).stage("classify")
    finally:
        Labels.put = put_label  # type: ignore[method-assign]
    cli("classify", "--out", str(ordered), "-q")

    states = [*seen, committed(grouped)]
    for labels, cached, _ in states:
        assert labels == ids[: len(labels)]  # record order: a prefix of the instructions
        assert all(in_cache for _, in_cache in cached)  # no label without its answer
    # Nothing of a group is visible before the whole group is, and some commits stored
    # several answers and records at once.
    assert len(unchanged) == len(ids) and all(unchanged)
    steps = [len(b[0]) - len(a[0]) for a, b in pairwise(states)]
    assert max(steps) >= 2 and llm.groups < len(ids)
    assert_same_nonempty(
        store_snapshot(grouped), store_snapshot(ordered), ("instructions", "labels")
    )


DYING_RUN = """
    import os, sys
    from pathlib import Path
    sys.path.insert(0, {tests!r})
    from test_commit_groups import Grouped, backend
    from selfinstruct.api import Run
    from selfinstruct.store.labels import Labels
    from selfinstruct.store.run_store import RunStore

    put_label, calls = Labels.put, [0]

    def dying(self, *args):
        calls[0] += 1
        if calls[0] == {kill_at}:  # mid-group: its answers are written, not committed
            os._exit(9)  # as SIGKILL: nothing more runs, no commit, no cleanup
        put_label(self, *args)

    Labels.put = dying
    with backend(Grouped()):
        Run.open(Path(sys.argv[1]), quiet=True).stage("classify")
"""


@pytest.mark.parametrize("kill_at", [1, 9, 40])
@pytest.mark.slow  # a process of its own
def test_a_run_killed_inside_a_group_resumes_to_the_same_records(
    bootstrapped: Path, tmp_path: Path, kill_at: int
) -> None:
    from selfinstruct.api import Run

    reference, killed = copy(bootstrapped, tmp_path / "ref"), copy(bootstrapped, tmp_path / "k")
    with backend(Grouped()):
        Run.open(reference, quiet=True).stage("classify")
    script = tmp_path / "dying.py"
    script.write_text(textwrap.dedent(DYING_RUN.format(tests=str(TESTS), kill_at=kill_at)))
    died = subprocess.run([sys.executable, str(script), str(killed)], capture_output=True)
    assert died.returncode == 9, died.stderr.decode()

    labels, cached, answers = committed(killed)
    ids = instruction_ids(killed)
    assert len(labels) < kill_at <= len(ids)  # the dying group's labels are not there
    assert labels == ids[: len(labels)] and all(in_cache for _, in_cache in cached)
    assert answers >= len(labels)  # answers whose rows wait for earlier ones may be stored

    with backend(Grouped()):
        Run.open(killed, quiet=True).stage("classify")
    assert_same_nonempty(
        store_snapshot(killed), store_snapshot(reference), ("instructions", "labels")
    )


def test_a_failing_transaction_in_a_group_is_undone_alone(tmp_path: Path) -> None:
    def meta(run: Path) -> dict[str, str]:
        with closing(sqlite3.connect(run / "selfinstruct.db")) as db:
            return dict(db.execute("SELECT key, value FROM meta WHERE key LIKE 'x%'").fetchall())

    run = tmp_path / "run"
    with RunStore.open(run) as store:
        with pytest.raises(RuntimeError), store.commit_together():
            store.set_meta("x1", 1)
            with store.transaction():
                store.set_meta("x2", 2)
            assert meta(run) == {}  # nothing is committed before the group ends
            with store.transaction():
                store.set_meta("x3", 3)
                raise RuntimeError("a record that fails half-way")
        # What came before the error is committed, as it would have been one at a time.
        assert meta(run) == {"x1": "1", "x2": "2"}
        with store.transaction():  # the store goes on as before
            store.set_meta("x4", 4)
    assert meta(run) == {"x1": "1", "x2": "2", "x4": "4"}
