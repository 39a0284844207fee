"""One stream through several stages: every stage's requests share the backend's slots, and a
record goes to the next stage the moment the stage before it commits it (an instruction to
classify once bootstrap accepts it, to instances once it has a label...).

Each stage keeps its own exactness: bootstrap still judges strictly in order, a per-record
stage still makes its requests from fixed windows of its rows and commits in row order, so a
request is the same whether its stage ran alone or in a stream, and so are the records.

Who gets a free slot: the first stage (bootstrap) keeps at least `FIRST_SHARE` of the slots
(of those in use and free now: with `--concurrency auto` the backend's limit moves) while it
has requests to send, so it never starves; the rest go to the later stages first
(their work is short and unblocks the stages after them, so the tail at the end stays
short), then to the earlier ones. A per-record stage takes new rows when it has nothing left
to send and the stages before it have committed enough new records to be worth a look
(`Lane.step`), and all of them once the stages before it are done.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from selfinstruct.console.progress import Progress
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.dispatch import CachedFeed, StageFeed, answer
from selfinstruct.engine.plan import PlanFeed, StagePlan, check_served, count_missing
from selfinstruct.errors import RunError
from selfinstruct.llm.base import Request, Result

if TYPE_CHECKING:
    from selfinstruct.engine.context import RunContext

FIRST_SHARE = 0.25  # of the slots, kept for the first stage while it has requests
GROWTH_SHARE = 16  # a per-record stage looks for new rows every 1/16 of those it has...
MIN_STEP = 8  # ...and at least every 8 new upstream records


class StreamPart(Protocol):
    """A stage's work in a stream: its feed (None until it has rows), how many records it
    has committed (what the stages after it wait for), taking new rows from the stages
    before it (`final` once it has taken them all), and its checks once the stream ended."""

    stats: StageStats
    progress: Progress
    final: bool

    @property
    def feed(self) -> StageFeed | None: ...

    @property
    def committed(self) -> int: ...

    def grow(self, upstream_done: bool, upstream_committed: int) -> None: ...

    def finish(self, stopped: bool) -> None: ...

    def close(self) -> None: ...


class PlanPart:
    """A per-record stage (classify, instances, relabel, judge) in a stream: its plan is built
    again from the store as the stages before it commit records, and its feed extended with
    the new rows in whole windows (the last, short window once nothing more can join it)."""

    def __init__(
        self,
        ctx: RunContext,
        build: Callable[[], StagePlan[Any]],
        stats: StageStats,
        progress: Progress,
    ) -> None:
        self.ctx = ctx
        self.build = build
        self.stats = stats
        self.progress = progress
        self.final = False
        self.seen = 0  # upstream records when the plan was last built
        self.step = MIN_STEP
        self._feed: PlanFeed[Any] | None = None

    @property
    def feed(self) -> PlanFeed[Any] | None:
        return self._feed

    @property
    def committed(self) -> int:
        return self._feed.stored if self._feed is not None else 0

    def grow(self, upstream_done: bool, upstream_committed: int) -> None:
        """Take the rows that are ready: all of them once the stages before are done, else
        whole windows, when nothing is left to send and enough new records came."""
        if self.final:
            return
        if upstream_done:
            self._extend(self.build(), final=True)
            return
        waiting = self._feed is not None and self._feed.has_work()
        if waiting or upstream_committed - self.seen < self.step:
            return
        self.seen = upstream_committed
        try:
            plan = self.build()
        except RunError:  # e.g. instances before any label: the stages before it will give
            return
        self._extend(plan, final=False)
        self.step = max(MIN_STEP, len(plan.rows) // GROWTH_SHARE)

    def _extend(self, plan: StagePlan[Any], *, final: bool) -> None:
        if self._feed is None:
            self._feed = PlanFeed(self.ctx, plan, self.progress, partial=final)
        else:
            self._feed.extend(plan, partial=final)
        if final:
            count_missing(plan)
            self.final = True

    def finish(self, stopped: bool) -> None:
        if self._feed is not None:
            check_served(self.ctx, self._feed, stopped)

    def close(self) -> None:
        self.progress.close()


@dataclass
class Lane:
    """One stage of the stream: its part, the backend's view of its feed, and whether it is
    done (nothing more will be sent or wanted)."""

    part: StreamPart
    cached: CachedFeed | None = None
    done: bool = False
    tickets: set[int] = field(default_factory=set)  # the stream's tickets in flight

    @property
    def in_flight(self) -> int:
        return len(self.tickets)


class StreamFeed:
    """The stages of a stream as one feed (llm/base.py `Feed`) over the backend's slots."""

    def __init__(self, ctx: RunContext, parts: Sequence[StreamPart]) -> None:
        self.ctx = ctx
        self.lanes = [Lane(part) for part in parts]
        self.routes: dict[int, tuple[Lane, int]] = {}
        self.tickets = 0
        self._abandoned: list[int] = []
        self._update()

    # -- the backend's side -------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return all(lane.done for lane in self.lanes)

    @property
    def stopped(self) -> bool:
        """The budget refused a request: nothing more is sent."""
        return any(lane.cached is not None and lane.cached.stopped for lane in self.lanes)

    def has_pending(self) -> bool:
        """Whether any stage has a request to send now."""
        self._update()
        return any(lane.cached.has_pending() for lane in self._open() if lane.cached is not None)

    def take(self, limit: int) -> list[tuple[int, Request]]:
        out: list[tuple[int, Request]] = []
        if self.stopped:
            return out
        first = self.lanes[0]
        floor = math.ceil(FIRST_SHARE * (len(self.routes) + limit))  # of the slots now
        self._take_from(first, min(limit, floor - first.in_flight), out)
        for lane in reversed(self.lanes):
            self._take_from(lane, limit - len(out), out)
        self._update()
        return out

    def put(self, ticket: int, result: Result) -> None:
        self.put_all([(ticket, result)])

    def put_all(self, results: Sequence[tuple[int, Result]]) -> None:
        """Answers that ended together, each to its stage (in one commit)."""
        by_lane: dict[int, list[tuple[int, Result]]] = {}
        for ticket, result in results:
            route = self.routes.pop(ticket, None)
            if route is None:
                continue  # a finished stage's request: no longer wanted
            lane, inner = route
            lane.tickets.discard(ticket)
            by_lane.setdefault(id(lane), []).append((inner, result))
        with self.ctx.store.commit_together():
            for lane in self.lanes:
                if id(lane) in by_lane and lane.cached is not None:
                    lane.cached.put_all(by_lane[id(lane)])
        self._update()

    def abandoned(self) -> list[int]:
        found, self._abandoned = self._abandoned, []
        return found

    # -- inside --------------------------------------------------------------------------------
    def _open(self) -> Iterator[Lane]:
        return (lane for lane in self.lanes if not lane.done)

    def _take_from(self, lane: Lane, limit: int, out: list[tuple[int, Request]]) -> None:
        if limit <= 0 or lane.done:
            return
        self._grow(lane)
        if lane.cached is None:
            return
        for inner, request in lane.cached.take(limit):
            self.tickets += 1
            self.routes[self.tickets] = (lane, inner)
            lane.tickets.add(self.tickets)
            out.append((self.tickets, request))

    def _upstream(self, lane: Lane) -> tuple[bool, int]:
        """Whether every stage before this one is done, and how many records they hold."""
        before = self.lanes[: self.lanes.index(lane)]
        return all(b.done for b in before), sum(b.part.committed for b in before)

    def _grow(self, lane: Lane) -> None:
        done, committed = self._upstream(lane)
        part = lane.part
        part.grow(done, committed)
        if lane.cached is None and part.feed is not None:
            lane.cached = CachedFeed(
                self.ctx, part.feed, part.stats, part.progress, self.ctx.budget
            )

    def _update(self) -> None:
        """Mark the stages that are done, in order (a stage is done only after the ones
        before it); a done stage's requests still in flight are abandoned."""
        for lane in self.lanes:
            if lane.done:
                continue
            self._grow(lane)
            if not self._is_done(lane):
                return
            lane.done = True
            lane.part.stats.stop()
            for ticket in sorted(lane.tickets):
                self.routes.pop(ticket, None)
                self._abandoned.append(ticket)
            lane.tickets.clear()

    def _is_done(self, lane: Lane) -> bool:
        """Done: it wants no more answers, or it has taken every row the stages before it
        will give and has nothing left to send or hear back."""
        cached = lane.cached
        if cached is None:
            return lane.part.final
        if cached.finished:
            return True
        if cached.stopped:
            return False  # the budget refused a request it still has to send
        return lane.part.final and not lane.in_flight and not cached.has_pending()


def serve_stream(ctx: RunContext, parts: Sequence[StreamPart]) -> StreamFeed:
    """Answer the parts' requests through one backend (the first stage's) until every part
    is done or the budget stops them; the backend's retries and errors go to the first
    stage's notes, for the whole stream."""
    stream = StreamFeed(ctx, parts)
    names = ", ".join(part.stats.stage for part in parts)
    answer(ctx, stream, parts[0].stats, f"the whole stream ({names})")
    return stream
