"""While a backend serves, the run store's log is checkpointed by a thread of its own, so the
thread storing answers is not stopped by the copy and the syncs (store/checkpoints.py); the
store's contents are the same, and the log stays bounded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from selfinstruct.store.checkpoints import BackgroundCheckpoints
from selfinstruct.store.run_store import DB_NAME, RunStore


def test_commits_are_checkpointed_in_a_thread_until_the_block_ends(tmp_path: Path) -> None:
    run = tmp_path / "run"
    with RunStore.open(run) as store:
        with BackgroundCheckpoints(run / DB_NAME, interval=0.01) as checkpoints:
            for i in range(50):
                with store.transaction():
                    store.set_meta(f"k{i}", "x" * 3000)
            deadline = time.monotonic() + 60  # a hang guard: checkpoints come every 10 ms
            while (checkpoints.last is None or not checkpoints.last[1]) and (
                time.monotonic() < deadline
            ):
                time.sleep(0.01)
        assert checkpoints.last is not None and checkpoints.last[1] > 0  # pages copied back
        assert not any(t.name == "wal-checkpoints" for t in threading.enumerate())
        assert store.get_meta("k49") == "x" * 3000


def test_a_store_that_cannot_be_opened_leaves_the_thread_idle(tmp_path: Path) -> None:
    with BackgroundCheckpoints(tmp_path / "missing.db", interval=0.01) as checkpoints:
        time.sleep(0.05)
    assert checkpoints.last is None
    assert not (tmp_path / "missing.db").exists()  # never created


def test_a_read_only_store_runs_no_thread(tmp_path: Path) -> None:
    run = tmp_path / "run"
    RunStore.open(run).close()
    with RunStore.open_readonly(run) as store, store.checkpoints_in_background():
        assert not any(t.name == "wal-checkpoints" for t in threading.enumerate())
