"""Classify's table: each instruction's label answer and whether it says classification."""

from __future__ import annotations

from selfinstruct.store.family import Family


class Labels(Family):
    def all(self) -> dict[int, tuple[str, bool]]:
        """(raw answer, is classification) by instruction id."""
        rows = self.db.execute("SELECT instruction_id, raw, is_classification FROM labels")
        return {i: (raw, bool(clf)) for i, raw, clf in rows}

    def put(self, instruction_id: int, raw: str, is_clf: bool, key: str) -> None:
        self.db.execute(
            "INSERT INTO labels VALUES (?, ?, ?, ?)", (instruction_id, raw, int(is_clf), key)
        )

    def rows(self) -> dict[int, tuple[str, bool, str]]:
        """Each label: (raw answer, is classification, cache key), by instruction id."""
        rows = self.db.execute(
            "SELECT instruction_id, raw, is_classification, response_key FROM labels"
        )
        return {i: (raw, bool(clf), key) for i, raw, clf, key in rows}
