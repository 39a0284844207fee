"""The response cache: every answer a run received, keyed by a hash of its request and the
backend (so a rerun asks nothing twice), with the tokens it cost."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

from selfinstruct.llm.base import Completion, Request
from selfinstruct.store.family import Family
from selfinstruct.store.schema import now


class Responses(Family):
    def get(self, key: str) -> Completion | None:
        row = self.db.execute(
            "SELECT text, finish_reason, prompt_tokens, completion_tokens FROM responses "
            "WHERE key = ?",
            (key,),
        ).fetchone()
        return Completion(*row) if row else None

    def put(self, key: str, stage: str, request: Request, completion: Completion) -> None:
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

    def record(self, key: str) -> dict[str, Any]:
        """The prompt and answer of one response, as the paper's files record them."""
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

    def of_stage(self, stage: str) -> dict[str, tuple[str, str, str]]:
        """A stage's stored answers by cache key: (request JSON, answer, finish reason)."""
        rows = self.db.execute(
            "SELECT key, request, text, finish_reason FROM responses WHERE stage = ?", (stage,)
        )
        return {row[0]: row[1:] for row in rows}

    def rows(self, keys: Sequence[str]) -> Iterator[tuple[Any, ...]]:
        """The stored responses with these cache keys, as stored (the key first)."""
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            marks = ",".join("?" * len(chunk))
            yield from self.db.execute(f"SELECT * FROM responses WHERE key IN ({marks})", chunk)

    def put_row(self, row: Sequence[Any]) -> None:
        self.db.execute("INSERT INTO responses VALUES (?, ?, ?, ?, ?, ?, ?, ?)", tuple(row))
