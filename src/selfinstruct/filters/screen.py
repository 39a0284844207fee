"""Prepare's quality screen, beyond the paper's filters: decontamination against evaluation
sets, and the checks stages declare on their own records (the judge's verdicts, label
consistency, a plug-in's check). Each gives a task or an instance a drop reason with a detail
(the evaluation task matched, the judge's reasons, the input-first label); prepare writes them
to `quality_drops.jsonl`, and the report shows them.

Order, per task: `contaminated` (its instruction is too close to an evaluation instruction:
every instance goes). Per instance: the checks by rank (people's `human_rejected`, the
judge's `judge_missing`, `judge_unparseable`, `judge_rejected`, then `label_disagrees`), then
`contaminated` (an n-gram shared with an evaluation task); the paper's filters come after
these."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from selfinstruct.filters.reasons import CONTAMINATED
from selfinstruct.quality.contamination import Decontaminator, Match
from selfinstruct.store.rows import InstanceRecord


@dataclass(frozen=True)
class Drop:
    """One task or instance the screen drops, and why."""

    instruction_id: int
    position: int | None  # None: the whole task
    reason: str
    detail: str


def drop_instance(record: InstanceRecord, reason: str, detail: str) -> Drop:
    return Drop(record.instruction_id, record.position, reason, detail)


class InstanceCheck(Protocol):
    """A stage's check on its records about instances. Checks run in ascending `rank`; the
    first that drops an instance names the reason. `kept` counts the instances it let through
    without a verdict, by reason (summaries show them as "<reason>_kept")."""

    rank: int
    kept: Counter[str]

    def drop(self, record: InstanceRecord) -> Drop | None: ...

    def warnings(self, dropped: Mapping[str, int], run_dir: Path) -> list[str]:
        """What the user should hear about, given prepare's drop counts."""
        ...


@dataclass
class Screen:
    """The checks that are on (decontamination: None when off) and what they found so far."""

    decontaminator: Decontaminator | None = None
    checks: Sequence[InstanceCheck] = ()
    contaminated_tasks: dict[int, Match] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.checks = sorted(self.checks, key=lambda check: check.rank)

    def check_instructions(self, tasks: Sequence[tuple[int, str]]) -> None:
        """Match every (instruction id, instruction) against the evaluation instructions at
        once (one block computation instead of one per task)."""
        if self.decontaminator is None:
            return
        matches = self.decontaminator.instruction_matches([text for _, text in tasks])
        for (instruction_id, _), match in zip(tasks, matches, strict=True):
            if match is not None:
                self.contaminated_tasks[instruction_id] = match

    def task_drop(self, instruction_id: int) -> Drop | None:
        """The whole task dropped (its instruction matched an evaluation one), or None."""
        match = self.contaminated_tasks.get(instruction_id)
        return None if match is None else Drop(instruction_id, None, CONTAMINATED, match.describe())

    def instance_drop(self, record: InstanceRecord) -> Drop | None:
        """Why the screen drops one instance (None: it passes)."""
        for check in self.checks:
            found = check.drop(record)
            if found is not None:
                return found
        return self._ngram(record)

    def kept_notes(self) -> dict[str, int]:
        """The instances the checks let through without a verdict ("judge_missing_kept")."""
        counts: Counter[str] = Counter()
        for check in self.checks:
            counts.update(check.kept)
        return {f"{reason}_kept": n for reason, n in counts.items()}

    def warnings(self, dropped: Mapping[str, int], run_dir: Path) -> list[str]:
        return [line for check in self.checks for line in check.warnings(dropped, run_dir)]

    def _ngram(self, record: InstanceRecord) -> Drop | None:
        if self.decontaminator is None:
            return None
        match = self.decontaminator.instance_match(record.input, record.output)
        return None if match is None else drop_instance(record, CONTAMINATED, match.describe())
