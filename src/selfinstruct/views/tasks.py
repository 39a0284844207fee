"""Parsing instances answers into instance records, the step between `instances` and
`prepare`.

The instances stage stores each answer's parsed instances in the same transaction as the
answer, and parses the answers an older release stored when the run is next opened for
writing. A read-only view parses what is not stored yet in memory, so every reader sees the
same records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from selfinstruct.parsing.instances import parse_instances
from selfinstruct.store.run_store import InstanceRecord, RunStore


@dataclass(frozen=True)
class GeneratedTask:
    """One instruction with its label and raw instances, from a run or from paper files."""

    instruction: str
    is_classification: bool
    raw_instances: str
    truncated: bool


@dataclass(frozen=True)
class ParsedTask:
    """One instruction with its label and its parsed instance records; `truncated`: its
    instances answer was cut off at max_tokens."""

    instruction_id: int
    instruction: str
    is_classification: bool
    instances: Sequence[InstanceRecord]
    truncated: bool = False

    @property
    def pairs(self) -> list[tuple[str, str]]:
        return [(record.input, record.output) for record in self.instances]


def parse_task(task: GeneratedTask, style: str, instruction_id: int = 0) -> ParsedTask:
    """Parse one task's raw instances (for tasks that come from files, not a run store)."""
    pairs = parse_instances(task.raw_instances, task.truncated, task.is_classification, style)
    records = [InstanceRecord(instruction_id, i, inp, out) for i, (inp, out) in enumerate(pairs)]
    return ParsedTask(
        instruction_id, task.instruction, task.is_classification, records, task.truncated
    )


def parsed_tasks(store: RunStore, style: str) -> list[ParsedTask]:
    """Every labelled instruction with an instances answer, with its instance records (those
    not stored yet parsed in memory: a read-only view of an older run)."""
    labels, raw = store.labels.all(), store.instances.raw()
    stored = store.instances.parsed()
    unparsed = set(store.instances.unparsed())
    tasks = []
    for row in store.pool.instructions():
        if row.id not in raw or row.id not in labels:
            continue
        is_clf = labels[row.id][1]
        text, finish, _ = raw[row.id]
        cut = finish == "length"
        if row.id in unparsed:
            task = GeneratedTask(row.instruction, is_clf, text, cut)
            tasks.append(parse_task(task, style, row.id))
        else:
            records = stored.get(row.id, [])
            tasks.append(ParsedTask(row.id, row.instruction, is_clf, records, cut))
    return tasks
