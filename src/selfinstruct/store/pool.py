"""The task pool's tables, what bootstrap writes: its requests and their outcomes, every
candidate with its decision, the instructions kept, and what each prompt showed."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Sequence

from selfinstruct.store.family import Family
from selfinstruct.store.rows import InstructionRow, PromptSources
from selfinstruct.store.schema import now

MIGRATION = "0003_prompt_sources"  # the migration that made the prompt sources


class Pool(Family):
    # -- requests ---------------------------------------------------------------------------
    def completed_requests(self) -> int:
        return self.db.execute("SELECT COUNT(*) FROM bootstrap_requests").fetchone()[0]

    def complete_request(
        self, request_idx: int, batch_idx: int, key: str, outcome: str, missing: int | None = None
    ) -> None:
        self.db.execute(
            "INSERT OR REPLACE INTO bootstrap_requests (request_idx, batch_idx, response_key, "
            "outcome, missing) VALUES (?, ?, ?, ?, ?)",
            (request_idx, batch_idx, key, outcome, missing),
        )

    def pool_missing(self) -> list[int]:
        """How many accepted instructions each judged prompt's pool was missing (where it
        was recorded), in request order."""
        rows = self.db.execute(
            "SELECT missing FROM bootstrap_requests WHERE missing IS NOT NULL ORDER BY request_idx"
        )
        return [row[0] for row in rows]

    def request_outcomes(self) -> dict[str, int]:
        """Bootstrap requests by outcome (ok, truncated, unparseable, failed)."""
        rows = self.db.execute("SELECT outcome, COUNT(*) FROM bootstrap_requests GROUP BY outcome")
        return dict(rows.fetchall())

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

    def request_rows(self) -> dict[int, tuple[int, str, str]]:
        """Each completed bootstrap request: (batch index, cache key, outcome), by index."""
        rows = self.db.execute(
            "SELECT request_idx, batch_idx, response_key, outcome FROM bootstrap_requests"
        )
        return {row[0]: (row[1], row[2], row[3]) for row in rows}

    def sourced_requests(self) -> set[int]:
        """Requests whose prompt sources matter: completed ones and those with instructions."""
        rows = self.db.execute(
            "SELECT request_idx FROM bootstrap_requests UNION SELECT request_idx FROM instructions"
        )
        return {row[0] for row in rows}

    # -- candidates and instructions --------------------------------------------------------
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

    def has_candidates(self) -> bool:
        return self.db.execute("SELECT 1 FROM candidates LIMIT 1").fetchone() is not None

    def candidate_decisions(self) -> dict[str, int]:
        """Bootstrap candidates by decision ("kept" or the drop reason)."""
        rows = self.db.execute("SELECT decision, COUNT(*) FROM candidates GROUP BY decision")
        return dict(rows.fetchall())

    def candidates(self) -> list[tuple[int, int, str, str]]:
        """Every bootstrap candidate: (request index, piece index, text, decision)."""
        return self.db.execute(
            "SELECT request_idx, piece_idx, instruction, decision FROM candidates "
            "ORDER BY request_idx, piece_idx"
        ).fetchall()

    def put_candidate(self, request_idx: int, piece_idx: int, text: str, decision: str) -> None:
        self.db.execute(
            "INSERT INTO candidates VALUES (?, ?, ?, ?)", (request_idx, piece_idx, text, decision)
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

    # -- prompt sources ---------------------------------------------------------------------
    @property
    def has_prompt_sources(self) -> bool:
        """The schema records prompt sources (a run made before them may not, when it is
        opened read-only)."""
        return MIGRATION in self.migrations

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
