"""Stages' records about instances, in tables of their own that the store reads generically.

A stage that keeps such records (the judge, label consistency, a plug-in's check) declares a
`RecordTable`, and one migration creates it. Every row says which instance it is about
(instruction id and position), for a versioned stage which version it belongs to (a hash of
what the stage's answers depend on: a new judge adds rows beside the old ones), the cache
key of the answer it was read from, then the stage's own columns:

    (instruction_id, position, [version,] response_key, *columns)

Nothing here names a stage: merge copies every declared table, and counts read them alike."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selfinstruct.store.family import Family
from selfinstruct.store.rows import InstanceRecord


@dataclass(frozen=True)
class RecordTable:
    name: str  # the SQL table
    columns: tuple[str, ...]  # the stage's own columns, after the response key
    migration: str  # the migration that creates it (an older run opened read-only lacks it)
    version: str = ""  # the column holding the version, for a versioned stage

    @property
    def key_index(self) -> int:
        """Where the response key stands in a row."""
        return 3 if self.version else 2

    @property
    def width(self) -> int:
        return self.key_index + 1 + len(self.columns)

    @property
    def order(self) -> str:
        return "instruction_id, position" + (f", {self.version}" if self.version else "")


class RecordTables(Family):
    def has(self, table: RecordTable) -> bool:
        """The store has the table (a run made before it, opened read-only, may not)."""
        return table.migration in self.migrations

    def put(
        self,
        table: RecordTable,
        record: InstanceRecord,
        key: str,
        values: Sequence[Any],
        version: str = "",
    ) -> None:
        """A row about one instance (replacing the one it had, in this version)."""
        head = (record.instruction_id, record.position, *((version,) if table.version else ()))
        self.put_row(table, (*head, key, *values), replace=True)

    def of(self, table: RecordTable, version: str = "") -> dict[str, tuple[Any, ...]]:
        """The stage's columns of each row (of one version, for a versioned stage), by
        instance id ("<instruction id>.<position>")."""
        if not self.has(table):
            return {}
        columns = ", ".join(table.columns)
        sql = f"SELECT instruction_id, position, {columns} FROM {table.name}"
        rows = (
            self.db.execute(sql + f" WHERE {table.version} = ?", (version,))
            if table.version
            else self.db.execute(sql)
        )
        return {f"{row[0]}.{row[1]}": tuple(row[2:]) for row in rows}

    def versions(self, table: RecordTable) -> dict[str, int]:
        """Rows per version (every version the run has had)."""
        if not table.version or not self.has(table):
            return {}
        rows = self.db.execute(
            f"SELECT {table.version}, COUNT(*) FROM {table.name} GROUP BY {table.version}"
        )
        return dict(rows.fetchall())

    def count(self, table: RecordTable) -> int:
        if not self.has(table):
            return 0
        return self.db.execute(f"SELECT COUNT(*) FROM {table.name}").fetchone()[0]

    def rows(self, table: RecordTable) -> list[tuple[Any, ...]]:
        """Every row as stored, in instance (and version) order."""
        if not self.has(table):
            return []
        return self.db.execute(f"SELECT * FROM {table.name} ORDER BY {table.order}").fetchall()

    def put_row(self, table: RecordTable, row: Sequence[Any], *, replace: bool = False) -> None:
        """A row as stored (see the module's docstring for its layout)."""
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        marks = ", ".join("?" * table.width)
        self.db.execute(f"{verb} INTO {table.name} VALUES ({marks})", tuple(row))


def flag_column(value: bool | None) -> int | None:
    """A yes/no/unknown answer as a record's column holds it (1, 0, NULL)."""
    return None if value is None else int(value)


def flag_value(column: int | None) -> bool | None:
    """A yes/no/unknown answer back from its column."""
    return None if column is None else bool(column)
