"""The run store: a SQLite database in the run directory, committed record by record.

`RunStore` opens and closes it, and holds its transactions and meta data; each family of
tables has an object of its own (`store.pool`, `store.labels`, `store.instances`, ...,
`store.parses`, `store.reviews`)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

from selfinstruct.errors import RunError
from selfinstruct.store.checkpoints import BackgroundCheckpoints
from selfinstruct.store.instances import Instances
from selfinstruct.store.labels import Labels
from selfinstruct.store.lock import RunLock
from selfinstruct.store.merges import MergeSources
from selfinstruct.store.parses import Parses
from selfinstruct.store.pool import Pool
from selfinstruct.store.records import RecordTables
from selfinstruct.store.responses import Responses
from selfinstruct.store.reviews import Reviews
from selfinstruct.store.rows import InstanceRecord, InstructionRow, PromptSources
from selfinstruct.store.schema import FORMAT, FORMAT_VERSION, applied, migrate
from selfinstruct.store.seed_table import SeedTable
from selfinstruct.store.stage_runs import StageRuns

__all__ = ["DB_NAME", "InstanceRecord", "InstructionRow", "PromptSources", "RunStore"]

DB_NAME = "selfinstruct.db"


class RunStore:
    """Open with `RunStore.open(dir)` to write (it takes the run's lock, and brings the
    schema up to date) or `RunStore.open_readonly(dir)` to read (no lock, nothing written,
    safe beside a process that is writing); use as a context manager to close it."""

    def __init__(self, run_dir: Path, db: sqlite3.Connection, lock: RunLock | None) -> None:
        self.run_dir = run_dir
        self.db = db
        self._lock = lock
        self.migrations = applied(db)
        self._grouped = False  # inside commit_together()
        family = (db, self.migrations, self.transaction)
        self.seeds = SeedTable(*family)
        self.responses = Responses(*family)
        self.pool = Pool(*family)
        self.labels = Labels(*family)
        self.instances = Instances(*family)
        self.records = RecordTables(*family)
        self.stage_runs = StageRuns(*family)
        self.merges = MergeSources(*family)
        self.parses = Parses(*family)
        self.reviews = Reviews(*family)

    @property
    def readonly(self) -> bool:
        return self._lock is None

    @classmethod
    def exists(cls, run_dir: Path) -> bool:
        return (run_dir / DB_NAME).is_file()

    @classmethod
    def open(cls, run_dir: Path) -> RunStore:
        run_dir.mkdir(parents=True, exist_ok=True)
        lock = RunLock(run_dir)
        lock.acquire()
        try:
            db = sqlite3.connect(run_dir / DB_NAME, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.execute("PRAGMA foreign_keys=ON")
            migrate(db)
        except sqlite3.DatabaseError as exc:
            lock.release()
            raise RunError(f"{run_dir / DB_NAME}: not a usable run store ({exc})") from exc
        store = cls(run_dir, db, lock)
        store._check_format()
        return store

    @classmethod
    def open_readonly(cls, run_dir: Path) -> RunStore:
        """The store as it is, in SQLite's read-only mode: an older schema is read as it is
        (callers check `store.instances.has_parsed` and the like), and a writer may keep
        working meanwhile."""
        path = run_dir / DB_NAME
        if not path.is_file():
            raise RunError(f"{run_dir} is not a run directory (no {DB_NAME})")
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
        try:
            db.execute("PRAGMA query_only=ON")
            store = cls(run_dir, db, None)
            found = store.get_meta("format")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise RunError(f"{path}: not a usable run store ({exc})") from exc
        if found is not None and (
            found.get("name") != FORMAT or found.get("version", 0) > FORMAT_VERSION
        ):
            store.close()
            raise RunError(f"{run_dir}: run store format {found} is not supported here")
        return store

    def _check_format(self) -> None:
        found = self.get_meta("format")
        if found is None:
            self.set_meta("format", {"name": FORMAT, "version": FORMAT_VERSION})
        elif found.get("name") != FORMAT or found.get("version", 0) > FORMAT_VERSION:
            self.close()
            raise RunError(f"{self.run_dir}: run store format {found} is not supported here")

    def close(self) -> None:
        self.db.close()
        if self._lock is not None:
            self._lock.release()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """All or nothing. Inside `commit_together` it is a savepoint: undone alone if it
        fails, committed with the group."""
        if self._grouped:
            with self._savepoint():
                yield self.db
            return
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            if self.db.in_transaction:  # SQLite has already rolled back after SQLITE_FULL
                self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @contextmanager
    def _savepoint(self) -> Iterator[None]:
        self.db.execute("SAVEPOINT record")
        try:
            yield
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK TO record")
                self.db.execute("RELEASE record")
            raise
        self.db.execute("RELEASE record")

    @contextmanager
    def commit_together(self) -> Iterator[None]:
        """One commit for the writes and transactions inside, in their order, instead of
        one each: a commit is most of what storing a short answer costs, and the answers
        that arrive together (with the records they complete) can share one. Transactions
        inside become savepoints, undone alone if they fail. On an exception, what was done
        before it is committed all the same, as it would have been one commit at a time."""
        if self._grouped:
            yield
            return
        self.db.execute("BEGIN IMMEDIATE")
        self._grouped = True
        try:
            yield
        except BaseException:
            self._grouped = False
            with suppress(sqlite3.Error):  # the error on its way is the one to report
                self._commit()
            raise
        self._grouped = False
        self._commit()

    def _commit(self) -> None:
        """Commit the open transaction, if SQLite has not rolled it back already (after
        SQLITE_FULL); one that cannot be committed is rolled back."""
        if not self.db.in_transaction:
            return
        try:
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def checkpoints_in_background(self) -> AbstractContextManager[object]:
        """While a backend serves: the log checkpointed off the writing thread (store/
        checkpoints.py); nothing for a read-only store."""
        if self.readonly:
            return nullcontext()
        return BackgroundCheckpoints(self.run_dir / DB_NAME)

    # -- meta -------------------------------------------------------------------------------
    def get_meta(self, key: str) -> Any:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return json.loads(row[0]) if row else None

    def set_meta(self, key: str, value: Any) -> None:
        self.db.execute(
            "INSERT INTO meta VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, json.dumps(value, sort_keys=True)),
        )

    def count(self, table: str) -> int:
        """The rows of one table of the store."""
        if table not in self.tables():
            raise ValueError(table)
        return self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    def tables(self) -> set[str]:
        rows = self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}

    @contextmanager
    def snapshot(self) -> Iterator[RunStore]:
        """Read in one transaction: every query inside sees the store as it stood at the
        first one, while a writer elsewhere may go on."""
        self.db.execute("BEGIN")
        try:
            yield self
        finally:
            self.db.execute("COMMIT")
