"""The seed tasks a run was made from, stored with it (a resumed run prompts with the same)."""

from __future__ import annotations

import json

from selfinstruct.seeds.task import Instance, SeedTask
from selfinstruct.store.family import Family


class SeedTable(Family):
    def save(self, tasks: list[SeedTask]) -> None:
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

    def load(self) -> list[SeedTask]:
        rows = self.db.execute(
            "SELECT id, name, instruction, instances, is_classification "
            "FROM seeds ORDER BY position"
        )
        return [
            SeedTask(id_, name, inst, tuple(Instance(*p) for p in json.loads(insts)), bool(clf))
            for id_, name, inst, insts, clf in rows
        ]
