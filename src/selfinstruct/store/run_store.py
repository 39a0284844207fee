"""The run store: a SQLite database in the run directory, committed record by record."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.errors import RunError
from selfinstruct.llm.base import Completion, Request
from selfinstruct.quality.judgment import QUESTIONS, Judgment
from selfinstruct.seeds.task import Instance, SeedTask
from selfinstruct.store.checkpoints import BackgroundCheckpoints
from selfinstruct.store.lock import RunLock
from selfinstruct.store.schema import FORMAT, FORMAT_VERSION, applied, migrate, now

DB_NAME = "selfinstruct.db"


@dataclass(frozen=True)
class InstanceRecord:
    """One parsed instance; `id` ("<instruction id>.<position>") is stable within the run."""

    instruction_id: int
    position: int
    input: str
    output: str

    @property
    def id(self) -> str:
        return f"{self.instruction_id}.{self.position}"


@dataclass(frozen=True)
class InstructionRow:
    id: int
    instruction: str
    most_similar: dict[str, float]
    avg_similarity_score: float
    request_idx: int
    batch_idx: int
    response_key: str


@dataclass(frozen=True)
class PromptSources:
    """Which seed tasks (by seed id) and machine instructions (by instruction id) one
    bootstrap prompt showed, each in the order they appear in the prompt."""

    seed_ids: tuple[str, ...]
    machine_ids: tuple[int, ...]


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
        (callers check `has_parsed_instances`), and a writer may keep working meanwhile."""
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

    # -- seeds ------------------------------------------------------------------------------
    def save_seeds(self, tasks: list[SeedTask]) -> None:
        """Replace the stored seeds (inside the caller's transaction)."""
        self.db.execute("DELETE FROM seeds")
        self.db.executemany(
            "INSERT INTO seeds VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    i,
                    t.id,
                    t.name,
                    t.instruction,
                    json.dumps([[x.input, x.output] for x in t.instances]),
                    int(t.is_classification),
                )
                for i, t in enumerate(tasks)
            ],
        )

    def load_seeds(self) -> list[SeedTask]:
        rows = self.db.execute(
            "SELECT id, name, instruction, instances, is_classification "
            "FROM seeds ORDER BY position"
        )
        return [
            SeedTask(id_, name, inst, tuple(Instance(*p) for p in json.loads(insts)), bool(clf))
            for id_, name, inst, insts, clf in rows
        ]

    # -- request cache ----------------------------------------------------------------------
    def cached(self, key: str) -> Completion | None:
        row = self.db.execute(
            "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM responses "
            "WHERE key = ?",
            (key,),
        ).fetchone()
        return Completion(*row) if row else None

    def put_response(self, key: str, stage: str, request: Request, completion: Completion) -> None:
        self.db.execute(
            "INSERT OR IGNORE INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                key,
                stage,
                request.canonical_json(),
                completion.text,
                completion.finish_reason,
                completion.prompt_tokens,
                completion.completion_tokens,
                now(),
            ),
        )

    def response_record(self, key: str) -> dict[str, Any]:
        row = self.db.execute(
            "SELECT request, text, finish_reason, created_at FROM responses WHERE key = ?", (key,)
        ).fetchone()
        if row is None:
            return {}
        request = json.loads(row[0])
        return {
            "prompt": request["prompt"] if request["prompt"] is not None else request["messages"],
            "response": {"text": row[1], "finish_reason": row[2]},
            "created_at": row[3],
        }

    # -- stage 1 ----------------------------------------------------------------------------
    def completed_requests(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM bootstrap_requests").fetchone()[0]

    def decided_pieces(self, request_idx: int) -> dict[int, str]:
        rows = self.db.execute(
            "SELECT piece_idx, decision FROM candidates WHERE request_idx = ?", (request_idx,)
        )
        return dict(rows.fetchall())

    def record_candidate(
        self,
        request_idx: int,
        piece_idx: int,
        text: str,
        decision: str,
        kept: InstructionRow | None,
    ) -> InstructionRow | None:
        """Record a decision; returns the instruction kept, with its id (None if dropped)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO candidates VALUES (?, ?, ?, ?)",
                (request_idx, piece_idx, text, decision),
            )
            if kept is None:
                return None
            cursor = db.execute(
                "INSERT INTO instructions (instruction, most_similar, avg_similarity_score, "
                "request_idx, batch_idx, response_key, created_at) VALUES (?,?,?,?,?,?,?)",
                (
                    kept.instruction,
                    json.dumps(kept.most_similar, ensure_ascii=False),
                    kept.avg_similarity_score,
                    kept.request_idx,
                    kept.batch_idx,
                    kept.response_key,
                    now(),
                ),
            )
        assert cursor.lastrowid is not None  # an INSERT always sets it
        return dataclasses.replace(kept, id=cursor.lastrowid)

    def complete_request(self, request_idx: int, batch_idx: int, key: str, outcome: str) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO bootstrap_requests VALUES (?, ?, ?, ?)",
            (request_idx, batch_idx, key, outcome),
        )

    def instruction_count(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM instructions").fetchone()[0]

    def instructions(self, before_batch: int | None = None) -> list[InstructionRow]:
        sql = "SELECT * FROM instructions"
        args: tuple = ()
        if before_batch is not None:
            sql += " WHERE batch_idx < ?"
            args = (before_batch,)
        rows = self.db.execute(sql + " ORDER BY id", args).fetchall()
        return [InstructionRow(r[0], r[1], json.loads(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    def sourced_requests(self) -> set[int]:
        """Requests whose prompt sources matter: completed ones and those with instructions."""
        rows = self.db.execute(
            "SELECT request_idx FROM bootstrap_requests UNION SELECT request_idx FROM instructions"
        )
        return {row[0] for row in rows}

    @property
    def has_prompt_sources(self) -> bool:
        """The schema records prompt sources (a run made before them may not, when it is
        opened read-only)."""
        return "0003_prompt_sources" in self.migrations

    def put_prompt_sources(
        self, request_idx: int, seed_ids: Sequence[str], machine_ids: Sequence[int]
    ) -> None:
        """Record what one prompt showed (the first record of a request stands)."""
        self.db.execute(
            "INSERT OR IGNORE INTO prompt_sources VALUES (?, ?, ?)",
            (request_idx, json.dumps(list(seed_ids)), json.dumps(list(machine_ids))),
        )

    def prompt_sources(self) -> dict[int, PromptSources]:
        """The recorded prompt sources by request index (none before the migration)."""
        if not self.has_prompt_sources:
            return {}
        rows = self.db.execute("SELECT request_idx, seed_ids, machine_ids FROM prompt_sources")
        return {
            idx: PromptSources(tuple(json.loads(seeds)), tuple(json.loads(machine)))
            for idx, seeds, machine in rows
        }

    def has_candidates(self) -> bool:
        return self.db.execute("SELECT 1 FROM candidates LIMIT 1").fetchone() is not None

    # -- stages 2 and 3 ---------------------------------------------------------------------
    def labels(self) -> dict[int, tuple[str, bool]]:
        rows = self.db.execute("SELECT instruction_id, raw, is_classification FROM labels")
        return {i: (raw, bool(clf)) for i, raw, clf in rows}

    def put_label(self, instruction_id: int, raw: str, is_clf: bool, key: str) -> None:
        self.db.execute(
            "INSERT INTO labels VALUES (?, ?, ?, ?)", (instruction_id, raw, int(is_clf), key)
        )

    def raw_instances(self) -> dict[int, tuple[str, str, str]]:
        rows = self.db.execute(
            "SELECT instruction_id, raw_instances, finish_reason, response_key FROM instances"
        )
        return {i: (raw, finish, key) for i, raw, finish, key in rows}

    def put_instances(self, instruction_id: int, raw: str, finish: str, key: str) -> None:
        self.db.execute(
            "INSERT INTO instances (instruction_id, raw_instances, finish_reason, "
            "response_key) VALUES (?, ?, ?, ?)",
            (instruction_id, raw, finish, key),
        )

    # -- parsed instances -------------------------------------------------------------------
    @property
    def has_parsed_instances(self) -> bool:
        """The schema has parsed instance records (a run made before them may not, when
        it is opened read-only)."""
        return "0002_parsed_instances" in self.migrations

    def put_parsed(self, instruction_id: int, pairs: list[tuple[str, str]]) -> None:
        """Store an answer's parsed instances and mark it parsed (inside the caller's
        transaction)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO parsed_instances VALUES (?, ?, ?, ?)",
            [(instruction_id, i, inp, out) for i, (inp, out) in enumerate(pairs)],
        )
        self.db.execute(
            "UPDATE instances SET parsed = 1 WHERE instruction_id = ?", (instruction_id,)
        )

    def unparsed_instances(self) -> list[int]:
        """Instructions whose instances answer has not been parsed yet."""
        if not self.has_parsed_instances:
            return sorted(self.raw_instances())
        rows = self.db.execute(
            "SELECT instruction_id FROM instances WHERE parsed = 0 ORDER BY instruction_id"
        )
        return [row[0] for row in rows]

    def parsed_instances(self) -> dict[int, list[InstanceRecord]]:
        """The stored instance records by instruction, in position order (answers not parsed
        yet are absent)."""
        found: dict[int, list[InstanceRecord]] = {}
        if not self.has_parsed_instances:
            return found
        for row in self.db.execute(
            "SELECT p.instruction_id, p.position, p.input, p.output "
            "FROM parsed_instances p ORDER BY p.instruction_id, "
            "p.position"
        ):
            found.setdefault(row[0], []).append(InstanceRecord(*row))
        return found

    # -- quality records --------------------------------------------------------------------
    @property
    def has_quality(self) -> bool:
        """The schema has judgments and relabels (an older run opened read-only may not)."""
        return "0004_quality" in self.migrations

    def put_judgment(self, record: InstanceRecord, judge: str, key: str, found: Judgment) -> None:
        answers = [_flag(found.answers.get(q)) for q in QUESTIONS]
        self.db.execute(
            "INSERT OR REPLACE INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                record.instruction_id,
                record.position,
                judge,
                key,
                *answers,
                found.rating,
                json.dumps(found.reasons, ensure_ascii=False, sort_keys=True),
            ),
        )

    def judgments(self, judge: str) -> dict[str, Judgment]:
        """One judge's judgments by instance id ("<instruction id>.<position>")."""
        if not self.has_quality:
            return {}
        rows = self.db.execute(
            "SELECT instruction_id, position, instruction_ok, input_ok, output_ok, rating, "
            "reasons FROM judgments WHERE judge = ?",
            (judge,),
        )
        return {
            f"{row[0]}.{row[1]}": Judgment(
                {q: _bool(v) for q, v in zip(QUESTIONS, row[2:5], strict=True)},
                row[5],
                json.loads(row[6]),
            )
            for row in rows
        }

    def judge_counts(self) -> dict[str, int]:
        """Judgments stored per judge (every judge the run has had)."""
        if not self.has_quality:
            return {}
        rows = self.db.execute("SELECT judge, COUNT(*) FROM judgments GROUP BY judge")
        return dict(rows.fetchall())

    def put_relabel(
        self, record: InstanceRecord, key: str, answer: str, agrees: bool | None
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO relabels VALUES (?, ?, ?, ?, ?)",
            (record.instruction_id, record.position, key, answer, _flag(agrees)),
        )

    def relabels(self) -> dict[str, tuple[str, bool | None]]:
        """The input-first label of each instance asked about: (answer, agrees), by id."""
        if not self.has_quality:
            return {}
        rows = self.db.execute("SELECT instruction_id, position, answer, agrees FROM relabels")
        return {f"{row[0]}.{row[1]}": (row[2], _bool(row[3])) for row in rows}

    def mean_usage(self, stage: str) -> tuple[float, float] | None:
        """Mean (prompt, completion) tokens of this stage's stored responses with usage."""
        row = self.db.execute(
            "SELECT AVG(prompt_tokens), AVG(completion_tokens) FROM responses "
            "WHERE stage = ? AND prompt_tokens > 0",
            (stage,),
        ).fetchone()
        return (row[0], row[1]) if row and row[0] is not None else None

    def usage_by_stage(self) -> dict[str, tuple[int, int]]:
        """(prompt, completion) tokens of every stored response, by stage: what the run has
        spent."""
        rows = self.db.execute(
            "SELECT stage, SUM(prompt_tokens), SUM(completion_tokens) FROM responses GROUP BY stage"
        )
        return {row[0]: (int(row[1] or 0), int(row[2] or 0)) for row in rows}

    def count(self, table: str) -> int:
        if table not in {
            "labels",
            "instances",
            "candidates",
            "responses",
            "parsed_instances",
            "relabels",
        }:
            raise ValueError(table)
        return self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]

    # -- summaries --------------------------------------------------------------------------
    def add_stage_run(self, stage: str, started_at: str, seconds: float, stats: dict) -> None:
        self.db.execute(
            "INSERT INTO stage_runs (stage, started_at, seconds, requests, cached, prompt_tokens,"
            " completion_tokens, kept, dropped) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                stage,
                started_at,
                seconds,
                stats["requests"],
                stats["cached"],
                stats["prompt_tokens"],
                stats["completion_tokens"],
                stats["kept"],
                json.dumps(stats["dropped"], sort_keys=True),
            ),
        )

    def candidate_decisions(self) -> dict[str, int]:
        """Bootstrap candidates by decision ("kept" or the drop reason)."""
        rows = self.db.execute("SELECT decision, COUNT(*) FROM candidates GROUP BY decision")
        return dict(rows.fetchall())

    def request_outcomes(self) -> dict[str, int]:
        """Bootstrap requests by outcome (ok, truncated, unparseable, failed)."""
        rows = self.db.execute("SELECT outcome, COUNT(*) FROM bootstrap_requests GROUP BY outcome")
        return dict(rows.fetchall())

    def instance_finish_reasons(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT finish_reason, COUNT(*) FROM instances GROUP BY finish_reason"
        )
        return dict(rows.fetchall())

    # -- readers for reports ----------------------------------------------------------------
    def candidates(self) -> list[tuple[int, int, str, str]]:
        """Every bootstrap candidate: (request index, piece index, text, decision)."""
        return self.db.execute(
            "SELECT request_idx, piece_idx, instruction, decision FROM candidates "
            "ORDER BY request_idx, piece_idx"
        ).fetchall()

    def request_outcomes_by_index(self) -> dict[int, str]:
        """Each completed bootstrap request's outcome (ok, truncated, unparseable, failed)."""
        rows = self.db.execute("SELECT request_idx, outcome FROM bootstrap_requests")
        return dict(rows.fetchall())

    def request_keys(self) -> dict[int, str]:
        """The cache key of each bootstrap request with a stored answer (completed requests,
        and the one a run stopped in when it reached its target)."""
        rows = self.db.execute(
            "SELECT request_idx, response_key FROM bootstrap_requests WHERE response_key != '' "
            "UNION SELECT request_idx, response_key FROM instructions"
        )
        return dict(rows.fetchall())

    def stage_responses(self, stage: str) -> dict[str, tuple[str, str, str]]:
        """A stage's stored answers by cache key: (request JSON, answer, finish reason)."""
        rows = self.db.execute(
            "SELECT key, request, text, finish_reason FROM responses WHERE stage = ?", (stage,)
        )
        return {row[0]: row[1:] for row in rows}

    def stage_totals(self) -> list[dict[str, Any]]:
        """Each stage's recorded runs added up, in the order stages first ran."""
        rows = self.db.execute(
            "SELECT stage, COUNT(*), SUM(seconds), SUM(requests), SUM(cached), "
            "SUM(prompt_tokens), SUM(completion_tokens) FROM stage_runs GROUP BY stage "
            "ORDER BY MIN(id)"
        )
        names = (
            "stage",
            "runs",
            "seconds",
            "requests",
            "cached",
            "prompt_tokens",
            "completion_tokens",
        )
        return [dict(zip(names, row, strict=True)) for row in rows]

    # -- merged runs (selfinstruct merge) ---------------------------------------------------
    @contextmanager
    def snapshot(self) -> Iterator[RunStore]:
        """Read in one transaction: every query inside sees the store as it stood at the
        first one, while a writer elsewhere may go on."""
        self.db.execute("BEGIN")
        try:
            yield self
        finally:
            self.db.execute("COMMIT")

    def bootstrap_request_rows(self) -> dict[int, tuple[int, str, str]]:
        """Each completed bootstrap request: (batch index, cache key, outcome), by index."""
        rows = self.db.execute(
            "SELECT request_idx, batch_idx, response_key, outcome FROM bootstrap_requests"
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def label_rows(self) -> dict[int, tuple[str, bool, str]]:
        """Each label: (raw answer, is classification, cache key), by instruction id."""
        rows = self.db.execute(
            "SELECT instruction_id, raw, is_classification, response_key FROM labels"
        )
        return {i: (raw, bool(clf), key) for i, raw, clf, key in rows}

    def judgment_rows(self) -> list[tuple[Any, ...]]:
        """Every judgment as stored (all judges; the instruction id first)."""
        if not self.has_quality:
            return []
        return self.db.execute(
            "SELECT * FROM judgments ORDER BY instruction_id, position, judge"
        ).fetchall()

    def relabel_rows(self) -> list[tuple[Any, ...]]:
        """Every input-first label as stored (the instruction id first)."""
        if not self.has_quality:
            return []
        rows = self.db.execute("SELECT * FROM relabels ORDER BY instruction_id, position")
        return rows.fetchall()

    def stage_run_rows(self) -> list[tuple[Any, ...]]:
        """Every recorded stage run as stored, oldest first (without its id)."""
        return self.db.execute(
            "SELECT stage, started_at, seconds, requests, cached, prompt_tokens, "
            "completion_tokens, kept, dropped FROM stage_runs ORDER BY id"
        ).fetchall()

    def response_rows(self, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """The stored responses with these cache keys, as stored (the key first)."""
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(f"SELECT * FROM responses WHERE key IN ({marks})", chunk)

    def put_response_row(self, row: Sequence[Any]) -> None:
        self.db.execute("INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", tuple(row))

    def put_instruction(self, row: InstructionRow) -> None:
        """Insert an instruction with its id as given (inside the caller's transaction)."""
        self.db.execute(
            "INSERT INTO instructions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.instruction,
                json.dumps(row.most_similar, ensure_ascii=False),
                row.avg_similarity_score,
                row.request_idx,
                row.batch_idx,
                row.response_key,
                now(),
            ),
        )

    def put_candidate(self, request_idx: int, piece_idx: int, text: str, decision: str) -> None:
        self.db.execute(
            "INSERT INTO candidates VALUES (?, ?, ?, ?)", (request_idx, piece_idx, text, decision)
        )

    def put_judgment_row(self, row: Sequence[Any]) -> None:
        self.db.execute("INSERT INTO judgments VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", tuple(row))

    def put_relabel_row(self, row: Sequence[Any]) -> None:
        self.db.execute("INSERT INTO relabels VALUES (?, ?, ?, ?, ?)", tuple(row))

    def put_stage_run_row(self, row: Sequence[Any]) -> None:
        self.db.execute(
            "INSERT INTO stage_runs (stage, started_at, seconds, requests, cached, prompt_tokens,"
            " completion_tokens, kept, dropped) VALUES (?,?,?,?,?,?,?,?,?)",
            tuple(row),
        )

    @property
    def has_merge_sources(self) -> bool:
        """The schema records where a merged run's instructions came from."""
        return "0005_merge_sources" in self.migrations

    def put_merge_run(self, source: int, run_id: str, name: str, path: str) -> None:
        self.db.execute("INSERT INTO merge_runs VALUES (?, ?, ?, ?)", (source, run_id, name, path))

    def put_merge_source(self, instruction_id: int, source: int, source_id: int) -> None:
        self.db.execute(
            "INSERT INTO merge_sources VALUES (?, ?, ?)", (instruction_id, source, source_id)
        )

    def merge_sources(self) -> dict[int, tuple[str, int]]:
        """A merged run's instructions: (source run's name, the instruction's id there), by
        id here (empty for a run that is not a merge)."""
        if not self.has_merge_sources:
            return {}
        rows = self.db.execute(
            "SELECT s.instruction_id, r.name, s.source_id FROM merge_sources s "
            "JOIN merge_runs r ON r.source = s.source"
        )
        return {i: (name, source_id) for i, name, source_id in rows}


def _flag(value: bool | None) -> int | None:
    return None if value is None else int(value)


def _bool(value: int | None) -> bool | None:
    return None if value is None else bool(value)
