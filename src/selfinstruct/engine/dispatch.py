"""Answering a stage's requests as they become ready: from the run's cache where it can, else
from the stage's backend within the run's budget, each new answer stored the moment it
arrives (answers that arrive together, with the records they complete, in one commit:
`Feed.put_all`, `RunStore.commit_together`).

A stage describes its work as a `StageFeed`: requests that may be sent now, and what to do
with each answer (None for a request that failed for good, counted in the stage's stats). The
backend keeps its slots busy by taking requests from it whenever one frees (llm/base.py
`Feed`); cached answers are handed back at once and take no slot.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from selfinstruct.console.progress import Progress
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.budget import Budget, Reservation
from selfinstruct.llm.base import LLM, Completion, Failure, Feed, Request, Result
from selfinstruct.llm.untrusted import storable_completion

if TYPE_CHECKING:
    from selfinstruct.engine.context import RunContext


class StageFeed(Protocol):
    """A stage's requests over time: `take(limit)` gives up to `limit` that may be sent now
    (each with a ticket of the stage's choosing; [] when none is ready), `put` takes the
    answer to one, and `finished` says that no answer still in flight is wanted."""

    def take(self, limit: int) -> list[tuple[int, Request]]: ...

    def put(self, ticket: int, key: str, answer: Completion | None) -> None: ...

    @property
    def finished(self) -> bool: ...


class CachedFeed:
    """The backend's view of a stage's feed: cached answers are served inside `take`, new
    answers stored and counted before the stage sees them (answers that arrive together in
    one commit, with the records they complete), and nothing sent that would break the
    budget."""

    def __init__(
        self,
        ctx: RunContext,
        feed: StageFeed,
        stats: StageStats,
        progress: Progress | None,
        budget: Budget | None,
    ) -> None:
        self.ctx = ctx
        self.feed = feed
        self.stats = stats
        self.progress = progress
        self.budget = budget if budget is not None and budget.limited else None
        self.backend_id = ctx.backend_id(stats.stage)
        self.sent: dict[int, tuple[int, str, Request, Reservation | None]] = {}
        self.ready: list[tuple[int, Request]] = []  # taken by `has_pending`, not yet sent
        self.tickets = 0
        self.stopped = False  # the budget refused a request

    @property
    def finished(self) -> bool:
        return self.feed.finished

    def abandoned(self) -> list[int]:
        """Every answer in flight is wanted until the stage has finished."""
        return []

    def has_pending(self) -> bool:
        """Whether a request waits to be sent (cached answers found on the way are served):
        the backend is loaded only when something is to send."""
        if not self.ready:
            self.ready = self.take(1)
        return bool(self.ready)

    def take(self, limit: int) -> list[tuple[int, Request]]:
        out, self.ready = self.ready[:limit], self.ready[limit:]
        while len(out) < limit and not self.stopped and not self.feed.finished:
            taken = self.feed.take(limit - len(out))
            if not taken:
                break
            for ticket, request in taken:
                self._route(ticket, request, out)
        return out

    def _route(self, ticket: int, request: Request, out: list[tuple[int, Request]]) -> None:
        key = request.key(self.backend_id)
        cached = self.ctx.store.responses.get(key)
        if cached is not None:
            self.stats.cached += 1
            self.feed.put(ticket, key, cached)
            return
        if self.stopped:
            return
        held = None
        if self.budget is not None:
            held = self.budget.reserve(self.stats.stage, request)
            if held is None:
                self.stopped = True
                return
        self.tickets += 1
        self.sent[self.tickets] = (ticket, key, request, held)
        out.append((self.tickets, request))

    def put(self, ticket: int, result: Result) -> None:
        self.put_all([(ticket, result)])

    def put_all(self, results: Sequence[tuple[int, Result]]) -> None:
        """Answers that arrived together, stored with the records they complete in one
        commit."""
        with self.ctx.store.commit_together():
            for ticket, result in results:
                self._put(ticket, result)

    def _put(self, ticket: int, result: Result) -> None:
        inner, key, request, held = self.sent.pop(ticket)
        answer = self._store(key, request, result)
        if self.budget is not None and held is not None:
            self.budget.settle(self.stats.stage, request, held, answer)
        if self.progress is not None:
            self.progress.show_counts()
        self.feed.put(inner, key, answer)

    def _store(self, key: str, request: Request, result: Result) -> Completion | None:
        self.stats.requests += 1
        if isinstance(result, Failure):
            self.stats.failed[result.reason] += 1
            self.stats.last_failure = result.detail
            return None
        answer = storable_completion(result)
        self.ctx.store.responses.put(key, self.stats.stage, request, answer)
        self.stats.prompt_tokens += answer.prompt_tokens
        self.stats.completion_tokens += answer.completion_tokens
        return answer


class Answerable(Feed, Protocol):
    """A feed the backend answers until `has_pending` says nothing is left to send, the
    budget `stopped` it, or it is `finished` (a stage's `CachedFeed`, a stream of stages)."""

    def has_pending(self) -> bool: ...

    @property
    def stopped(self) -> bool: ...


def serve(
    ctx: RunContext,
    feed: StageFeed,
    stats: StageStats,
    progress: Progress | None = None,
) -> CachedFeed:
    """Answer a stage's feed until it has nothing more to send; the backend's retries and
    errors are added to the stage's notes. Returns the feed's record (whether the budget
    stopped it)."""
    cached = CachedFeed(ctx, feed, stats, progress, ctx.budget)
    answer(ctx, cached, stats)
    return cached


def answer(ctx: RunContext, feed: Answerable, stats: StageStats, scope: str = "") -> None:
    """Answer `feed` through the backend of `stats`'s stage, loaded only once something is
    to be sent; its retries and errors go to that stage's notes (see `note_backend`)."""
    llm = None
    before: Counter[str] = Counter()
    try:
        while feed.has_pending():
            if llm is None:
                llm = ctx.llm_for(stats.stage)
                before = Counter(llm.counters)
            with ctx.store.checkpoints_in_background():  # no stall of the serving thread
                llm.serve(feed)
            if feed.stopped or feed.finished:
                break
    finally:
        if llm is not None:
            note_backend(llm, before, stats, scope)


def note_backend(llm: LLM, before: Counter[str], stats: StageStats, scope: str = "") -> None:
    """The backend's retries and errors since `before`, and how it kept requests in flight,
    in a stage's notes (`scope` names what they cover when it is more than the stage)."""
    found = Counter(llm.counters) - before
    stats.notes.update({f"http_{k}" if k[0].isdigit() else k: v for k, v in found.items()})
    if found and scope:
        stats.details.append(f"retries and errors: those of {scope}")
    if llm.flow_note():
        stats.details.append(llm.flow_note() + (f" ({scope})" if scope else ""))
