"""The review sample: which instances people rate, drawn reproducibly and stored with the run,
so every reviewer sees the same items in the same order.

The draw orders every candidate by a hash of the run's random seed and its instance id, so the
order never depends on the machine or on when it is drawn, and a run that grew keeps the
relative order of what it had. Candidates are one instance per instruction (the one with the
smallest hash; the paper rated one instance of each of 200 instructions) or every instance.
Classification and non-classification candidates are interleaved in proportion to their
numbers, so every prefix of the order is stratified; the sample is a prefix, and a larger
`--sample` extends it with the items that follow."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from selfinstruct.errors import InputError
from selfinstruct.store.reviews import SampleItem, digest
from selfinstruct.store.run_store import RunStore
from selfinstruct.views.tasks import ParsedTask

PER_TASK = ("one", "all")  # one instance per instruction (the paper's), or all of them
DEFAULT_SIZE = 200  # the paper's review sample
ALL = 0  # --sample all


@dataclass(frozen=True)
class Candidate:
    instance: str
    is_classification: bool
    digest: str
    key: str  # its place in the draw


def candidates(tasks: Sequence[ParsedTask], per_task: str, seed: str) -> list[Candidate]:
    """What can be sampled, each with its draw key."""
    found = []
    for task in tasks:
        pool = [
            Candidate(
                record.id,
                task.is_classification,
                digest(task.instruction, record.input, record.output),
                _key(seed, record.id),
            )
            for record in task.instances
        ]
        if per_task == "one" and pool:
            pool = [min(pool, key=lambda c: c.key)]
        found += pool
    return found


def draw_order(found: Sequence[Candidate]) -> list[Candidate]:
    """Every candidate, in the order the sample takes them: each stratum by draw key,
    interleaved so that every prefix holds the strata in proportion."""
    strata = [
        sorted((c for c in found if c.is_classification is flag), key=lambda c: c.key)
        for flag in (True, False)
    ]
    total = len(found)
    taken = [0, 0]
    order = []
    for step in range(1, total + 1):
        deficits = [len(s) * step / total - taken[i] for i, s in enumerate(strata)]
        pick = max((i for i in (0, 1) if taken[i] < len(strata[i])), key=lambda i: deficits[i])
        order.append(strata[pick][taken[pick]])
        taken[pick] += 1
    return order


def ensure_sample(
    store: RunStore,
    tasks: Sequence[ParsedTask],
    size: int | None,
    per_task: str | None,
    seed: str,
) -> list[SampleItem]:
    """The stored sample, drawn (or extended to `size` items; ALL: every candidate) first
    when it holds fewer; `size` None keeps a stored sample as it is and draws DEFAULT_SIZE
    items when there is none. A sample keeps how it was drawn: another `per_task` is
    refused; None takes the stored sample's, else "one"."""
    settings = store.get_meta("review_sample")
    if per_task is None:  # as the stored sample was drawn, else the paper's way
        per_task = settings.get("per_task", PER_TASK[0]) if settings else PER_TASK[0]
    if per_task not in PER_TASK:
        raise InputError("--per-task", f"must be one of {', '.join(PER_TASK)}")
    if settings is not None and settings.get("per_task") != per_task:
        raise InputError(
            "--per-task",
            f"this run's review sample was drawn with --per-task {settings.get('per_task')}; "
            "every reviewer sees the same sample, so it cannot change",
        )
    current = store.reviews.sample()
    if size is None:
        size = len(current) if current else DEFAULT_SIZE
    have = {item.instance for item in current}
    order = draw_order(candidates(tasks, per_task, seed))
    wanted = len(order) if size == ALL else size
    missing = [c for c in order if c.instance not in have][: max(0, wanted - len(current))]
    if missing:
        store.reviews.add_to_sample((c.instance, c.is_classification, c.digest) for c in missing)
    if settings is None:
        store.reviews.set_sample_meta({"per_task": per_task, "seed": seed})
    return store.reviews.sample()


def _key(seed: str, instance: str) -> str:
    return hashlib.sha256(f"{seed}:review:{instance}".encode()).hexdigest()
