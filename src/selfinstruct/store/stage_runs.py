"""Each stage run a run has had: when, how long, requests, cache hits, tokens, counts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from selfinstruct.store.family import Family

COLUMNS = (
    "stage, started_at, seconds, requests, cached, prompt_tokens, completion_tokens, kept, dropped"
)


class StageRuns(Family):
    def add(self, stage: str, started_at: str, seconds: float, stats: dict) -> None:
        self.put_row(
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
            )
        )

    def totals(self) -> list[dict[str, Any]]:
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

    def rows(self) -> list[tuple[Any, ...]]:
        """Every recorded stage run as stored, oldest first (without its id)."""
        return self.db.execute(f"SELECT {COLUMNS} FROM stage_runs ORDER BY id").fetchall()

    def put_row(self, row: Sequence[Any]) -> None:
        self.db.execute(
            f"INSERT INTO stage_runs ({COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?)", tuple(row)
        )
