"""Provenance of generated instructions: which seed tasks and machine instructions were in
the bootstrap prompt that produced each one.

Bootstrap records each prompt's sources as it composes the prompt. Requests composed before
those records existed (a run made by an older release) get theirs recomputed with the pure
function bootstrap composes with (`compose.compose`): `backfill_prompt_sources` stores them
when the run is opened for writing; `prompt_sources` gives every reader the same map (a
read-only view of an older run computes the missing ones in memory, writing nothing)."""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Sequence

from selfinstruct.config import Config
from selfinstruct.exporters.records import Provenance
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.seeds.task import SeedTask
from selfinstruct.stages.bootstrap.compose import compose, prompt_seeds, sources_of
from selfinstruct.stages.bootstrap.settings import STAGE, BootstrapSettings
from selfinstruct.store.run_store import InstructionRow, PromptSources, RunStore

NO_SOURCES = PromptSources((), ())


def prompt_sources(
    store: RunStore, config: Config, seeds: Sequence[SeedTask]
) -> dict[int, PromptSources]:
    """Every bootstrap request's prompt sources that matter (completed requests and those
    that produced instructions), by request index: recorded ones, the rest recomputed."""
    found = store.pool.prompt_sources()
    return {**found, **_missing(store, config, seeds, found)}


def backfill_prompt_sources(store: RunStore, config: Config, seeds: Sequence[SeedTask]) -> int:
    """Store the prompt sources of requests composed before they were recorded; returns how
    many were added."""
    computed = _missing(store, config, seeds, store.pool.prompt_sources())
    if computed:
        with store.transaction():
            for request_idx, sources in computed.items():
                store.pool.put_prompt_sources(request_idx, sources.seed_ids, sources.machine_ids)
    return len(computed)


def instruction_provenance(
    store: RunStore, config: Config, seeds: Sequence[SeedTask]
) -> dict[int, Provenance]:
    """Each generated instruction's provenance, by instruction id."""
    sources = prompt_sources(store, config, seeds)
    return {
        row.id: Provenance(row.id, found.seed_ids, found.machine_ids)
        for row in store.pool.instructions()
        for found in [sources.get(row.request_idx, NO_SOURCES)]
    }


def _missing(
    store: RunStore,
    config: Config,
    seeds: Sequence[SeedTask],
    found: dict[int, PromptSources],
) -> dict[int, PromptSources]:
    todo = store.pool.sourced_requests() - found.keys()
    return recompute(store.pool.instructions(), config, seeds, todo) if todo else {}


def recompute(
    machine: Sequence[InstructionRow],
    config: Config,
    seeds: Sequence[SeedTask],
    requests: Iterable[int],
) -> dict[int, PromptSources]:
    """The sources bootstrap composed these requests' prompts from: the seeds it prompts
    with and the machine instructions (in id order) of the batches judged before each
    request's batch b was composed (up to batch b - k, k = bootstrap.batches_in_flight)."""
    settings: BootstrapSettings = config.section(STAGE)
    pool = prompt_seeds(seeds, settings)
    before = _MachineBefore(machine)
    choice = ModelChoice.of(config.backend, config.model, config.sections)
    size, ahead = settings.request_batch_size, settings.schedule(choice)
    return {
        request_idx: sources_of(
            compose(
                pool,
                before(request_idx // size - ahead + 1),
                settings,
                config.random_seed,
                request_idx,
            )
        )
        for request_idx in sorted(requests)
    }


class _MachineBefore:
    """The machine instructions of the batches before a given one, in id order (a prefix of
    the rows when their batches ascend with their ids, as bootstrap writes them)."""

    def __init__(self, rows: Sequence[InstructionRow]) -> None:
        self.rows = rows
        self.batches = [row.batch_idx for row in rows]
        self.ascending = all(a <= b for a, b in zip(self.batches, self.batches[1:], strict=False))
        self._last: tuple[int, list[InstructionRow]] | None = None

    def __call__(self, batch: int) -> list[InstructionRow]:
        if self._last is None or self._last[0] != batch:
            if self.ascending:
                rows = list(self.rows[: bisect_left(self.batches, batch)])
            else:
                rows = [row for row in self.rows if row.batch_idx < batch]
            self._last = (batch, rows)
        return self._last[1]
