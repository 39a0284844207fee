"""Prepare's quality screen, beyond the paper's filters: decontamination against evaluation
sets, the judge's verdicts and label consistency. Each check that is on gives a task or an
instance a drop reason with a detail (the evaluation task matched, the judge's reasons, the
input-first label); prepare writes them to `quality_drops.jsonl`, and the report shows them.

Order, per task: `contaminated` (its instruction is too close to an evaluation instruction:
every instance goes). Per instance: the judge (`judge_missing`, `judge_unparseable`,
`judge_rejected`), then `label_disagrees`, then `contaminated` (an n-gram shared with an
evaluation task); the paper's filters come after these."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from selfinstruct.quality.contamination import Decontaminator, Match
from selfinstruct.quality.judgment import Criteria, Judgment
from selfinstruct.store.run_store import InstanceRecord

CONTAMINATED = "contaminated"
JUDGE_MISSING = "judge_missing"
JUDGE_UNPARSEABLE = "judge_unparseable"
JUDGE_REJECTED = "judge_rejected"
LABEL_DISAGREES = "label_disagrees"


@dataclass(frozen=True)
class Drop:
    """One task or instance the screen drops, and why."""

    instruction_id: int
    position: int | None  # None: the whole task
    reason: str
    detail: str


@dataclass
class Screen:
    """The checks that are on (None: off) and what they found so far."""

    decontaminator: Decontaminator | None = None
    judgments: Mapping[str, Judgment] | None = None  # the current judge's, by instance id
    criteria: Criteria = field(default_factory=Criteria)
    relabels: Mapping[str, tuple[str, bool | None]] | None = None  # by instance id
    keep_unjudged: bool = False  # keep (and count) instances without a readable judgment
    contaminated_tasks: dict[int, Match] = field(default_factory=dict)
    kept_unjudged: Counter[str] = field(default_factory=Counter)  # counted when kept

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
        return self._judge(record) or self._relabel(record) or self._ngram(record)

    def _judge(self, record: InstanceRecord) -> Drop | None:
        if self.judgments is None or not self.criteria.active:
            return None
        judgment = self.judgments.get(record.id)
        if judgment is None or not judgment.readable:
            reason = JUDGE_MISSING if judgment is None else JUDGE_UNPARSEABLE
            if self.keep_unjudged:
                self.kept_unjudged[reason] += 1
                return None
            why = "not judged by the current judge" if judgment is None else "answer unreadable"
            return _drop(record, reason, why)
        failures = self.criteria.failures(judgment)
        if not failures:
            return None
        why = "; ".join(
            f"{said} ({judgment.reasons[key]})" if judgment.reasons.get(key) else said
            for key, said in failures
        )
        return _drop(record, JUDGE_REJECTED, why)

    def _relabel(self, record: InstanceRecord) -> Drop | None:
        if self.relabels is None or record.id not in self.relabels:
            return None
        answer, agrees = self.relabels[record.id]
        if agrees is not False:
            return None
        shown = " ".join(answer.split())[:80]
        detail = f"output-first {record.output!r}, input-first {shown!r}"
        return _drop(record, LABEL_DISAGREES, detail)

    def _ngram(self, record: InstanceRecord) -> Drop | None:
        if self.decontaminator is None:
            return None
        match = self.decontaminator.instance_match(record.input, record.output)
        return None if match is None else _drop(record, CONTAMINATED, match.describe())


def _drop(record: InstanceRecord, reason: str, detail: str) -> Drop:
    return Drop(record.instruction_id, record.position, reason, detail)
