"""The report's parse of each instruction (its verb and direct-object noun), kept so an
instruction is parsed once: loading the parser alone costs seconds and some 300 MB. Rows are
keyed by instruction and parser (the model, its version and the rules that read its parse),
so another parser parses again, beside the rows of the first."""

from __future__ import annotations

from collections.abc import Mapping

from selfinstruct.store.family import Family

MIGRATION = "0006_instruction_parses"  # the migration that made the table

Pair = tuple[str, str]  # (verb, noun)


class Parses(Family):
    @property
    def present(self) -> bool:
        """The schema keeps parses (a run made before them may not, opened read-only)."""
        return MIGRATION in self.migrations

    def of_parser(self, parser: str) -> dict[int, Pair | None]:
        """The parses `parser` made, by instruction id (None: no verb with a noun object)."""
        if not self.present:
            return {}
        rows = self.db.execute(
            "SELECT instruction_id, verb, noun FROM instruction_parses WHERE parser = ?",
            (parser,),
        )
        return {i: (verb, noun) if verb is not None else None for i, verb, noun in rows}

    def put(self, parser: str, parses: Mapping[int, Pair | None]) -> None:
        """Keep parses (inside the caller's transaction)."""
        self.db.executemany(
            "INSERT OR REPLACE INTO instruction_parses VALUES (?, ?, ?, ?)",
            [(i, parser, *(pair or (None, None))) for i, pair in parses.items()],
        )
