"""Where a merged run's instructions came from (`selfinstruct merge`): the runs merged, and
each instruction's run and its id there. Empty in a run that is not a merge."""

from __future__ import annotations

from selfinstruct.store.family import Family

MIGRATION = "0005_merge_sources"  # the migration that made them


class MergeSources(Family):
    @property
    def present(self) -> bool:
        """The schema records where a merged run's instructions came from."""
        return MIGRATION in self.migrations

    def put_run(self, source: int, run_id: str, name: str, path: str) -> None:
        self.db.execute("INSERT INTO merge_runs VALUES (?, ?, ?, ?)", (source, run_id, name, path))

    def put_source(self, instruction_id: int, source: int, source_id: int) -> None:
        self.db.execute(
            "INSERT INTO merge_sources VALUES (?, ?, ?)", (instruction_id, source, source_id)
        )

    def sources(self) -> dict[int, tuple[str, int]]:
        """A merged run's instructions: (source run's name, the instruction's id there), by
        id here (empty for a run that is not a merge)."""
        if not self.present:
            return {}
        rows = self.db.execute(
            "SELECT s.instruction_id, r.name, s.source_id FROM merge_sources s "
            "JOIN merge_runs r ON r.source = s.source"
        )
        return {i: (name, source_id) for i, name, source_id in rows}
