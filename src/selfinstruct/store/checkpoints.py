"""Checkpoints of the run store's write-ahead log, off the thread that stores the answers.

In WAL mode SQLite copies the log back into the database (a checkpoint) once the log holds
`wal_autocheckpoint` pages (1000), inside the COMMIT that reached them, and with
synchronous=NORMAL it syncs both files to disk then: 20-50 ms during which the writer, a
stage's event loop, serves nothing. Storing short answers at hundreds a second, that is a
stall every few hundred answers, and every slot whose answer arrives meanwhile waits it
out (about 4% of the classify stage's time against a local server).

While a backend serves a stage, a thread of its own, on a connection of its own, checkpoints
every INTERVAL in PASSIVE mode: it neither waits for nor blocks the writer, and SQLite lets
go of the GIL while it copies and syncs. The writer's own checkpoints stay, to restart the
log once it is copied (only the writer can), but find little left to copy and sync. What is
on disk, and when a transaction is durable, does not change.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import closing, suppress
from pathlib import Path
from types import TracebackType

INTERVAL = 0.1  # seconds between checkpoints


class BackgroundCheckpoints:
    """`with BackgroundCheckpoints(db_path): ...` checkpoints the database's log in a thread
    until the block ends (the thread is joined: at most one checkpoint's wait)."""

    def __init__(self, path: Path, interval: float = INTERVAL) -> None:
        self.path = path
        self.interval = interval
        self.last: tuple[int, int] | None = None  # (log pages, pages copied back) at the last
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints", daemon=True)

    def __enter__(self) -> BackgroundCheckpoints:
        self._thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        uri = f"{self.path.resolve().as_uri()}?mode=rw"  # never creates a database
        try:
            db = sqlite3.connect(uri, uri=True, isolation_level=None)
        except sqlite3.Error:
            return  # the writer's own checkpoints go on
        with closing(db):
            while not self._stop.wait(self.interval):
                self._checkpoint(db)

    def _checkpoint(self, db: sqlite3.Connection) -> None:
        # Busy (the writer is checkpointing) or a disk error: the log keeps every page
        # meanwhile, and the next checkpoint (or the writer's) copies it.
        with suppress(sqlite3.Error):
            busy, log, copied = db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            if not busy:
                self.last = (log, copied)
