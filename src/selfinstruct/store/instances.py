"""The instances stage's tables: each instruction's raw answer, and the instance records parsed
from it (stable ids: instruction id and position)."""

from __future__ import annotations

from selfinstruct.store.family import Family
from selfinstruct.store.rows import InstanceRecord

MIGRATION = "0002_parsed_instances"  # the migration that made the parsed records


class Instances(Family):
    def raw(self) -> dict[int, tuple[str, str, str]]:
        """(answer, finish reason, cache key) by instruction id."""
        rows = self.db.execute(
            "SELECT instruction_id, raw_instances, finish_reason, response_key FROM instances"
        )
        return {i: (raw, finish, key) for i, raw, finish, key in rows}

    def put(self, instruction_id: int, raw: str, finish: str, key: str) -> None:
        self.db.execute(
            "INSERT INTO instances (instruction_id, raw_instances, finish_reason, "
            "response_key) VALUES (?, ?, ?, ?)",
            (instruction_id, raw, finish, key),
        )

    def finish_reasons(self) -> dict[str, int]:
        rows = self.db.execute(
            "SELECT finish_reason, COUNT(*) FROM instances GROUP BY finish_reason"
        )
        return dict(rows.fetchall())

    @property
    def has_parsed(self) -> bool:
        """The schema has parsed instance records (a run made before them may not, when
        it is opened read-only)."""
        return MIGRATION in self.migrations

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

    def unparsed(self) -> list[int]:
        """Instructions whose instances answer has not been parsed yet."""
        if not self.has_parsed:
            return sorted(self.raw())
        rows = self.db.execute(
            "SELECT instruction_id FROM instances WHERE parsed = 0 ORDER BY instruction_id"
        )
        return [row[0] for row in rows]

    def parsed(self) -> dict[int, list[InstanceRecord]]:
        """The stored instance records by instruction, in position order (answers not parsed
        yet are absent)."""
        found: dict[int, list[InstanceRecord]] = {}
        if not self.has_parsed:
            return found
        for row in self.db.execute(
            "SELECT instruction_id, position, input, output FROM parsed_instances "
            "ORDER BY instruction_id, position"
        ):
            found.setdefault(row[0], []).append(InstanceRecord(*row))
        return found
