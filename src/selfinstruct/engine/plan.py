"""Shared loop of the stages that send one request per record (classify and instances: one
per instruction, in acceptance order; relabel and judge: one per instance), each result
committed as soon as it arrives.

Batches are fixed windows of the record list (instructions 1-5, 6-10, ...), whatever is
already done, so a request never depends on where an earlier process was interrupted. There
are no waves: the backend takes the next request whenever a slot frees, so its slots stay busy
until the last request; results are committed in record order. Requests that failed for good
are tried again after all others, in up to two more passes.

In a stream (engine/stream.py) a plan grows while the stages before it work: `PlanFeed.extend`
adds the rows of a newer plan of the same stage, each request made by the plan that found its
row, so a request is the same whenever its row became ready."""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from selfinstruct.console.progress import Progress
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.budget import budget_stop
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.dispatch import serve
from selfinstruct.errors import RunError
from selfinstruct.llm.base import Completion, Request

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
    and returns a drop reason or None. `missing` counts rows that cannot be asked about yet,
    by reason (instances: windows waiting for a label), dropped once the plan is final."""

    stats: StageStats
    rows: Sequence[Row]
    done: set[Hashable]
    batch_size: int
    make_requests: Callable[[Sequence[Row], Sequence[Row]], list[Request]]
    record: Callable[[Row, str, Completion], str | None]
    missing: dict[str, int] = field(default_factory=dict)

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
    """Send the plan's pending requests, keeping the backend's slots busy, and commit each
    result in row order; stop after the requests in flight if the run's budget runs out."""
    stats, rows = plan.stats, plan.rows
    count_missing(plan)
    progress = Progress(stats, len(rows), len(plan.done & {r.id for r in rows}), quiet=ctx.quiet)
    feed = PlanFeed(ctx, plan, progress)
    try:
        served = serve(ctx, feed, stats, progress)
    finally:
        progress.close()
    check_served(ctx, feed, served.stopped)
    return stats


def count_missing(plan: StagePlan[Row]) -> None:
    """The plan's rows that cannot be asked about, as drops (once, for the final plan)."""
    for reason, n in plan.missing.items():
        plan.stats.drop(reason, n)


def check_served(ctx: RunContext, feed: PlanFeed[Row], stopped: bool) -> None:
    """After the plan's requests: the budget's stop, or an error when every request failed."""
    stats = feed.plan.stats
    if stopped:
        raise budget_stop(ctx.budget, stats, f"{feed.left()} of its {feed.rows} {stats.unit} left")
    if stats.failed and not stats.kept and not stats.cached:
        raise RunError(f"every {stats.stage} request failed; last error: {stats.last_failure}")


class PlanFeed(Generic[Row]):
    """A plan's pending rows as a feed: requests made window by window as the backend takes
    them, results committed in row order (a result waits for the rows before it). A request
    that failed for good is offered again after all others, up to PASSES times in all."""

    def __init__(
        self, ctx: RunContext, plan: StagePlan[Row], progress: Progress, *, partial: bool = True
    ) -> None:
        self.ctx = ctx
        self.plan = plan
        self.progress = progress
        # Each row with its window and the plan that found it (a newer one in a stream).
        self.pending: list[tuple[Row, Sequence[Row], StagePlan[Row]]] = []
        self.ids: set[Hashable] = set()  # the rows pending
        self.rows = 0  # rows of the latest plan, done or not
        self.extend(plan, partial=partial)
        self.made = 0  # rows whose first request was made
        self.queue: deque[tuple[int, Request]] = deque()
        self.retry: deque[int] = deque()
        self.failures: Counter[int] = Counter()
        self.arrived: dict[int, tuple[str, Completion]] = {}
        self.skipped: set[int] = set()  # failed: retried later or given up
        self.committed = 0  # rows before this position are settled
        self.stored = 0  # results committed

    finished = False  # every answer is wanted

    def extend(self, plan: StagePlan[Row], *, partial: bool) -> int:
        """Add the rows of `plan` not seen before (its done rows are only noted), window by
        window; a window shorter than the batch size only with `partial` (no row will join
        it). Returns how many rows were added."""
        added = 0
        self.rows = len(plan.rows)
        for window in plan.windows():
            if len(window) < plan.batch_size and not partial:
                break
            for row in window:
                if row.id not in self.ids and row.id not in plan.done:
                    self.ids.add(row.id)
                    self.pending.append((row, window, plan))
                    added += 1
        return added

    def has_work(self) -> bool:
        """A request waits to be made or retried."""
        return bool(self.queue) or bool(self.retry) or self.made < len(self.pending)

    def left(self) -> int:
        """Rows still without a result."""
        return len(self.pending) - self.stored

    def take(self, limit: int) -> list[tuple[int, Request]]:
        out: list[tuple[int, Request]] = []
        while len(out) < limit and self._fill():
            out.append(self.queue.popleft())
        return out

    def _fill(self) -> bool:
        """Make sure a request is queued: the next window's, else a retry."""
        if self.queue:
            return True
        if self.made < len(self.pending):
            _, window, plan = self.pending[self.made]
            end = self.made
            while end < len(self.pending) and self.pending[end][1] is window:
                end += 1
            batch = [row for row, _, _ in self.pending[self.made : end]]
            requests = plan.make_requests(window, batch)
            self.queue.extend(zip(range(self.made, end), requests, strict=True))
            self.made = end
            return True
        if self.retry:
            position = self.retry.popleft()
            row, window, plan = self.pending[position]
            self.queue.append((position, plan.make_requests(window, [row])[0]))
            return True
        return False

    def put(self, ticket: int, key: str, answer: Completion | None) -> None:
        if answer is None:
            self.failures[ticket] += 1
            self.skipped.add(ticket)
            if self.failures[ticket] < PASSES:
                self.retry.append(ticket)
            self._advance()
            return
        self.skipped.discard(ticket)
        if ticket < self.committed:
            self._commit(ticket, key, answer)
        else:
            self.arrived[ticket] = (key, answer)
            self._advance()

    def _advance(self) -> None:
        while self.committed < len(self.pending):
            found = self.arrived.pop(self.committed, None)
            if found is not None:
                self._commit(self.committed, *found)
            elif self.committed not in self.skipped:
                return
            self.committed += 1

    def _commit(self, position: int, key: str, answer: Completion) -> None:
        stats = self.plan.stats
        row, _, plan = self.pending[position]
        with self.ctx.store.transaction():
            reason = plan.record(row, key, answer)
        if reason:
            stats.drop(reason)
        else:
            stats.kept += 1
        self.stored += 1
        self.progress.advance()
