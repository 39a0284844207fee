"""Shared loop of the stages that send one request per record (classify and instances: one
per instruction, in acceptance order), each result committed as soon as it arrives.

Batches are fixed windows of the record list (instructions 1-5, 6-10, ...), whatever is
already done, so a request never depends on where an earlier process was interrupted. Several
windows go out together when the backend keeps more requests in flight than one window holds.
Requests that failed for good are tried again in up to two more passes."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from selfinstruct.errors import RunError
from selfinstruct.llm.base import Completion, Request
from selfinstruct.reporting.progress import Progress
from selfinstruct.reporting.stats import StageStats
from selfinstruct.stages.context import RunContext

PASSES = 3


class Keyed(Protocol):
    """A record a stage makes one request for (an instruction, an instance record...)."""

    @property
    def id(self) -> Hashable: ...


Row = TypeVar("Row", bound=Keyed)


@dataclass
class StagePlan(Generic[Row]):
    """What a per-instruction stage has to do. `make_requests(window, pending)` builds the
    requests of a window's pending rows; `record` stores one result (inside a transaction)
    and returns a drop reason or None."""

    stats: StageStats
    rows: Sequence[Row]
    done: set[Hashable]
    batch_size: int
    make_requests: Callable[[Sequence[Row], Sequence[Row]], list[Request]]
    record: Callable[[Row, str, Completion], str | None]

    def windows(self) -> list[Sequence[Row]]:
        size = self.batch_size
        return [self.rows[i : i + size] for i in range(0, len(self.rows), size)]

    def pending_requests(self) -> list[Request]:
        """Every request the stage would still send, in order."""
        requests: list[Request] = []
        for window in self.windows():
            batch = [row for row in window if row.id not in self.done]
            if batch:
                requests += self.make_requests(window, batch)
        return requests


def run_plan(ctx: RunContext, plan: StagePlan[Row]) -> StageStats:
    stats, rows = plan.stats, plan.rows
    done = set(plan.done)
    windows = plan.windows()
    pending = _pending(windows, done)
    concurrency = ctx.llm_for(stats.stage).concurrency if pending else 1  # loads no idle model
    per_wave = windows_per_wave(concurrency, plan.batch_size)
    progress = Progress(stats, len(rows), len(done & {r.id for r in rows}), quiet=ctx.quiet)
    try:
        for _ in range(PASSES):
            waves = [windows[i : i + per_wave] for i in range(0, len(windows), per_wave)]
            for wave in waves:
                _run_wave(ctx, plan, wave, done, progress)
            if not _pending(windows, done):
                break
    finally:
        progress.close()
    if stats.failed and not stats.kept and not stats.cached:
        raise RunError(f"every {stats.stage} request failed; last error: {stats.last_failure}")
    return stats


def windows_per_wave(concurrency: int, batch_size: int) -> int:
    """One window at a time for a local engine; for a server, waves of about eight times the
    requests in flight, so the server seldom idles between waves (answers are stored as they
    arrive, so a large wave loses nothing when interrupted)."""
    return 1 if concurrency <= 1 else -(-(8 * concurrency) // batch_size)


def _pending(windows: list[Sequence[Row]], done: set[Hashable]) -> bool:
    return any(row.id not in done for window in windows for row in window)


def _run_wave(
    ctx: RunContext,
    plan: StagePlan[Row],
    wave: list[Sequence[Row]],
    done: set[Hashable],
    progress: Progress,
) -> None:
    stats = plan.stats
    rows: list[Row] = []
    requests: list[Request] = []
    for window in wave:
        batch = [row for row in window if row.id not in done]
        if batch:
            rows += batch
            requests += plan.make_requests(window, batch)
    if not requests:
        return
    answers = ctx.complete(stats.stage, requests, stats, progress)
    for row, (key, answer) in zip(rows, answers, strict=True):
        if answer is None:
            continue
        with ctx.store.transaction():
            reason = plan.record(row, key, answer)
        done.add(row.id)
        if reason:
            stats.drop(reason)
        else:
            stats.kept += 1
        progress.advance()
