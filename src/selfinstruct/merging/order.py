"""The merge order: runs sorted by what they are, not by how they were given; their bootstrap
batches taken round-robin.

Runs are sorted by (random seed, creation time, run id): `random_seed` and `created_at` are in
each run's run.json, the run id in merge.json. Then round k takes batch k of every run that has
one, in that run order: batch 0 of the first run, batch 0 of the second, ..., batch 1 of the
first run, and so on. Each run's batch k was written from a pool of about the same size, so no
run's late output is judged before another's early output. Within a batch, candidates keep
their run's order (request, then position in the response: the order of their ids there).

Each (run, batch) becomes one batch of the merged run, numbered in this order, and its
requests keep their places in it: request i of batch b of a run becomes request
`merged_batch * request_batch_size + (i - b * request_batch_size)`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from selfinstruct.merging.source import SourceRun


@dataclass(frozen=True)
class Slot:
    """One run's bootstrap batch at its place in the merge order."""

    run: int  # position of the run in merge order
    batch: int  # its batch index in that run
    merged_batch: int  # its batch index in the merged run

    def request(self, request_idx: int, size: int) -> int:
        """A request's index in the merged run."""
        return self.merged_batch * size + request_idx - self.batch * size


def sort_runs(runs: Sequence[SourceRun]) -> list[SourceRun]:
    return sorted(runs, key=lambda run: (run.random_seed, run.created_at, run.run_id))


def merge_order(runs: Sequence[SourceRun]) -> list[Slot]:
    """Every batch of every run (runs in merge order), round-robin by batch index."""
    rounds = sorted({batch for run in runs for batch in run.batches})
    slots: list[Slot] = []
    for batch in rounds:
        for position, run in enumerate(runs):
            if batch in run.batches:
                slots.append(Slot(position, batch, len(slots)))
    return slots


def name_runs(runs: Sequence[SourceRun]) -> None:
    """How records name their run: its directory's name, or its whole path when another
    run's directory has the same name."""
    names = [run.path.resolve().name for run in runs]
    for run, name in zip(runs, names, strict=True):
        run.name = name if names.count(name) == 1 else str(run.path.resolve())
