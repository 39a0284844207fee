"""Bootstrap's loop: requests composed `batches_in_flight` batches ahead, and their candidates
judged strictly in order, each against the seeds and everything accepted before it (the
heuristic filters, then ROUGE-L against the pool), each decision committed as it is made."""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from selfinstruct.console.progress import Progress, StreamBar
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.budget import budget_stop
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.dispatch import serve
from selfinstruct.errors import RunError
from selfinstruct.filters.instruction import heuristic_reason, upper_first
from selfinstruct.filters.reasons import (
    DUPLICATE,
    FAILED,
    ROUGE,
    TRUNCATED,
    TRUNCATED_ITEM,
    UNPARSEABLE,
)
from selfinstruct.llm.base import Completion, Request
from selfinstruct.parsing.instructions import split_instructions
from selfinstruct.similarity.prefilter import Prefilter
from selfinstruct.similarity.rouge import Block, RougePool
from selfinstruct.similarity.tokenize import get_tokenizer
from selfinstruct.stages.bootstrap.compose import compose, prompt_seeds, render, sources_of
from selfinstruct.stages.bootstrap.settings import STAGE, BootstrapSettings, request_stops
from selfinstruct.stages.bootstrap.truncation import truncation_advice
from selfinstruct.store.rows import InstructionRow

MAX_BARREN_BATCHES = 50
TRUNCATION_WARNING_SHARE = 0.25


@dataclass(frozen=True)
class Candidate:
    """One piece of one response, on its way to a decision."""

    request_idx: int
    piece_idx: int
    batch: int
    key: str
    text: str


class Bootstrap:
    def __init__(self, ctx: RunContext, stats: StageStats) -> None:
        self.ctx = ctx
        self.settings: BootstrapSettings = ctx.config.section(STAGE)
        self.style = ctx.config.prompt_style
        self.stats = stats
        self.prompt_seeds = prompt_seeds(ctx.seeds, self.settings)
        self.pool = RougePool(
            get_tokenizer(self.settings.tokenizer), workers=self.settings.similarity_workers
        )
        for seed in self.prompt_seeds:  # the paper's pool: the seeds it prompts with
            self.pool.add(seed.instruction)
        self.machine: list[InstructionRow] = ctx.store.pool.instructions()
        for row in self.machine:
            self.pool.add(row.instruction)
        self.known = set(self.pool.texts)
        self.prefilter = Prefilter(self.pool, self.settings.rouge_threshold)
        self.answers_seen = 0  # responses judged by this process
        self.truncated_items: list[int] = []  # items of each response cut at max_tokens

    def run(self, target: int) -> None:
        feed = self.start(target)
        try:
            served = serve(self.ctx, feed, self.stats, feed.progress)
        finally:
            feed.progress.close()
            self.pool.close()
        self.finish(feed, served.stopped)

    def start(self, target: int, stream: StreamBar | None = None) -> BootstrapFeed:
        """Its feed, with its progress (its share of a stream's bar, in a stream)."""
        if not self.prompt_seeds:
            raise RunError(
                "no seed tasks to prompt with (classification_only needs "
                "seeds marked is_classification)"
            )
        progress = Progress(
            self.stats,
            target,
            min(len(self.machine), target),
            quiet=self.ctx.quiet,
            stream=stream,
        )
        return BootstrapFeed(self, target, progress)

    def finish(self, feed: BootstrapFeed, stopped: bool) -> None:
        """After its requests: the budget's stop, bootstrap.max_requests, truncation, and how
        stale its prompts' pools were."""
        self.stats.details.append(describe_missing(feed.ahead, self.ctx.store.pool.pool_missing()))
        target = feed.target
        if len(self.machine) < target:
            if stopped:
                left = f"{len(self.machine)} of the {target} instructions asked for"
                raise budget_stop(self.ctx.budget, self.stats, left)
            if feed.at_max_requests():
                self._stopped_at_max_requests(target)
        self._warn_truncation()

    def _stopped_at_max_requests(self, target: int) -> None:
        self.stats.warnings.append(
            f"bootstrap stopped at bootstrap.max_requests ({self.settings.max_requests} "
            f"requests) with {len(self.machine)} of the {target} instructions asked for; "
            "raise it (0: no limit) and rerun to continue"
        )

    def check_progress(self, outcomes: list[str], barren: int) -> None:
        """Stop instead of spending requests forever on a run that cannot get anywhere."""
        if outcomes and all(o == FAILED for o in outcomes):
            raise RunError(
                f"every request of a bootstrap batch failed; last error: {self.stats.last_failure}"
            )
        if outcomes and all(o == TRUNCATED for o in outcomes):
            raise RunError(self._truncation_advice(len(outcomes), whole_batch=True))
        if barren >= MAX_BARREN_BATCHES:
            raise RunError(
                f"no new instruction in the last {barren} bootstrap batches: the "
                "model repeats the pool or its answers do not parse (see the "
                "drop reasons above); everything accepted so far is saved"
            )

    def _truncation_advice(self, responses: int, *, whole_batch: bool) -> str:
        return truncation_advice(
            self.truncated_items,
            responses,
            settings=self.settings,
            style=self.style,
            stops=request_stops(self.style, self.settings),
            has_records=self.ctx.store.pool.has_candidates(),
            whole_batch=whole_batch,
        )

    def _warn_truncation(self) -> None:
        """A warning when a large share of this run's responses were cut off."""
        cut = len(self.truncated_items)
        if cut and cut >= TRUNCATION_WARNING_SHARE * self.answers_seen:
            self.stats.warnings.append(
                self._truncation_advice(self.answers_seen, whole_batch=False)
            )

    def request(self, request_idx: int, visible: int) -> Request:
        """The request's prompt, showing the first `visible` machine instructions, its
        sources recorded (inside the caller's transaction)."""
        chosen = compose(
            self.prompt_seeds,
            self.machine[:visible],
            self.settings,
            self.ctx.config.random_seed,
            request_idx,
        )
        sources = sources_of(chosen)
        self.ctx.store.pool.put_prompt_sources(request_idx, sources.seed_ids, sources.machine_ids)
        texts = [item.instruction for item in chosen]
        prompt = render(self.ctx.templates, self.style, self.settings, texts)
        return self.ctx.request(
            STAGE, request_idx, prompt, self.settings, request_stops(self.style, self.settings)
        )

    def judge_response(
        self,
        request_idx: int,
        batch: int,
        key: str,
        answer: Completion | None,
        target: int,
        progress: Progress,
    ) -> str | None:
        """Judge the pieces of one response; the outcome once all are decided, else None."""
        if answer is None:
            return self._outcome(FAILED)
        self.answers_seen += 1
        pieces = split_instructions(answer.text, self.style)
        cut = None
        if answer.truncated:
            self.truncated_items.append(sum(1 for p in pieces if p))
            # The paper discards a cut response whole; Alpaca keeps its complete items and
            # drops the last one, where the cut is.
            complete = any(pieces[:-1])
            if self.settings.truncated_responses == "discard" or not complete:
                return self._outcome(TRUNCATED)
            cut = len(pieces) - 1
        decided = self.ctx.store.pool.decided_pieces(request_idx)
        todo = [(i, upper_first(p)) for i, p in enumerate(pieces) if p and i not in decided]
        reasons = [
            TRUNCATED_ITEM if i == cut else heuristic_reason(text, self.settings)
            for i, text in todo
        ]
        scoring = self._score_block(
            [(i, t) for (i, t), r in zip(todo, reasons, strict=True) if r is None]
        )
        for (piece_idx, text), reason in zip(todo, reasons, strict=True):
            if len(self.machine) >= target:
                return None
            candidate = Candidate(request_idx, piece_idx, batch, key, text)
            kept = self._judge(candidate, reason, scoring)
            progress.advance(1 if kept else 0)
        return self._outcome("ok" if any(pieces) else UNPARSEABLE)

    def _outcome(self, outcome: str) -> str:
        """A response's outcome; responses judged no further are counted as lost."""
        if outcome != "ok":
            self.stats.lose("responses", outcome)
        return outcome

    def _score_block(self, pieces: list[tuple[int, str]]) -> BlockScoring:
        """Settle what the bounded search can, then score the rest against the whole pool
        in one call (see similarity/prefilter.py)."""
        encoded = {i: self.pool.encode(text) for i, text in pieces}
        order = list(encoded)
        settled = {order[j] for j in self.prefilter.settle([encoded[i] for i in order])}
        rows = {i: row for row, i in enumerate(i for i in order if i not in settled)}
        block = self.prefilter.block([encoded[i] for i in rows])
        return BlockScoring(encoded, settled, rows, block)

    def _judge(self, c: Candidate, reason: str | None, scoring: BlockScoring) -> bool:
        """Decide one candidate (its heuristic verdict given), commit the decision, and grow
        the pool if it is kept."""
        text = c.text
        if reason is None and text in self.known:
            reason = DUPLICATE
        kept = None
        if reason is None:
            kept = self._similarity_verdict(c, scoring)
            reason = ROUGE if kept is None else None
        stored = self.ctx.store.pool.record_candidate(
            c.request_idx, c.piece_idx, text, reason or "kept", kept
        )
        if stored is None:
            self.stats.dropped[reason or ""] += 1
            return False
        self.machine.append(stored)
        self.pool.add(text, scoring.encoded[c.piece_idx])
        self.known.add(text)
        self.stats.kept += 1
        return True

    def _similarity_verdict(self, c: Candidate, scoring: BlockScoring) -> InstructionRow | None:
        """The row to keep, or None when some pool item scores above the threshold."""
        if c.piece_idx in scoring.settled:
            self.prefilter.judged(rejected=True)
            return None
        similarity = scoring.block.similarity(scoring.rows[c.piece_idx])
        rejected = similarity.max > self.settings.rouge_threshold
        self.prefilter.judged(rejected)
        if rejected:
            return None
        return InstructionRow(
            id=0,
            instruction=c.text,
            most_similar=similarity.top(self.pool.texts, self.settings.most_similar),
            avg_similarity_score=similarity.mean,
            request_idx=c.request_idx,
            batch_idx=c.batch,
            response_key=c.key,
        )


class BootstrapFeed:
    """Bootstrap's requests as a feed, `batches_in_flight` (k) batches ahead.

    The prompts of batch b are composed from the pool as it stood after batch b - k was
    judged (k = 1: after every batch before it, the paper's schedule); responses are judged
    strictly in request order, each candidate against everything accepted before it, and
    each request is marked complete once judged, so a resumed run starts at the first
    request not complete and recomposes the same prompts."""

    def __init__(self, boot: Bootstrap, target: int, progress: Progress) -> None:
        self.boot = boot
        self.target = target
        self.progress = progress
        self.size = boot.settings.request_batch_size
        self.ahead = boot.settings.schedule(boot.ctx.choice_for(STAGE))
        self.judging = boot.ctx.store.pool.completed_requests()  # the next request to judge
        self.composing = self.judging  # the next request to compose
        self.arrived: dict[int, tuple[str, Completion | None]] = {}
        self.outcomes: list[str] = []  # of the batch being judged
        self.barren = 0
        self.kept_before = len(boot.machine)
        # How many machine instructions come from batches up to each judged batch.
        self.visible: dict[int, int] = {}
        self.shown: dict[int, int] = {}  # machine instructions each prompt could show

    @property
    def finished(self) -> bool:
        """The target is reached: nothing more is sent, and the requests still in flight
        are dropped (their answers would not be judged; a server stops generating them)."""
        return len(self.boot.machine) >= self.target

    def at_max_requests(self) -> bool:
        limit = self.boot.settings.max_requests
        return bool(limit) and self.judging // self.size * self.size >= limit

    def take(self, limit: int) -> list[tuple[int, Request]]:
        out: list[tuple[int, Request]] = []
        with self.boot.ctx.store.transaction():
            while len(out) < limit and self._may_compose(self.composing):
                batch = self.composing // self.size
                visible = self._visible_after(batch - self.ahead)
                self.shown[self.composing] = visible
                out.append((self.composing, self.boot.request(self.composing, visible)))
                self.composing += 1
        return out

    def _may_compose(self, request_idx: int) -> bool:
        batch = request_idx // self.size
        limit = self.boot.settings.max_requests
        if self.finished or (limit and batch * self.size >= limit):
            return False
        return batch - self.ahead < self.judging // self.size

    def _visible_after(self, batch: int) -> int:
        """Machine instructions accepted in batches up to `batch` (a prefix: instructions
        are accepted in batch order)."""
        if batch < 0:
            return 0
        if batch not in self.visible:
            rows = self.boot.machine
            self.visible[batch] = bisect.bisect_right(rows, batch, key=lambda r: r.batch_idx)
        return self.visible[batch]

    def put(self, ticket: int, key: str, answer: Completion | None) -> None:
        self.arrived[ticket] = (key, answer)
        while self.judging in self.arrived and not self.finished:
            key, found = self.arrived.pop(self.judging)
            self._judge(self.judging, key, found)

    def _judge(self, request_idx: int, key: str, answer: Completion | None) -> None:
        batch = request_idx // self.size
        boot = self.boot
        accepted = len(boot.machine)  # before this request: everything its prompt could miss
        done = boot.judge_response(request_idx, batch, key, answer, self.target, self.progress)
        if not done:
            return  # the target was reached inside this response
        missing = accepted - self.shown.pop(request_idx, accepted)
        boot.ctx.store.pool.complete_request(request_idx, batch, key, done, missing)
        self.outcomes.append(done)
        self.judging += 1
        if self.judging % self.size == 0:
            kept = len(boot.machine)
            self.barren = 0 if kept > self.kept_before else self.barren + 1
            self.kept_before = kept
            outcomes, self.outcomes = self.outcomes, []
            boot.check_progress(outcomes, self.barren)


def pool_missing(missing: list[int]) -> dict[str, float]:
    """The distribution of how many accepted instructions a prompt's pool was missing."""
    if not missing:
        return {"requests": 0}
    ordered = sorted(missing)

    def quantile(q: float) -> int:
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {
        "requests": len(ordered),
        "mean": round(sum(ordered) / len(ordered), 2),
        "p50": quantile(0.5),
        "p90": quantile(0.9),
        "p99": quantile(0.99),
        "max": ordered[-1],
    }


def describe_missing(ahead: int, missing: list[int]) -> str:
    """One summary line on the schedule and the staleness it cost."""
    found = pool_missing(missing)
    text = f"prompts composed {ahead} batch{'es' if ahead != 1 else ''} ahead of judging"
    if not found["requests"]:
        return text
    return (
        f"{text}; accepted instructions a prompt's pool missed: median {found['p50']:g}, "
        f"p99 {found['p99']:g}, max {found['max']:g} (of {found['requests']:g} prompts)"
    )


@dataclass(frozen=True)
class BlockScoring:
    """The similarity work for one response's candidates (by piece index): their encodings,
    the ones already above the threshold, and the block rows of the others."""

    encoded: dict[int, str]
    settled: set[int]
    rows: dict[int, int]
    block: Block


class BootstrapPart:
    """Bootstrap as the first stage of a stream (engine/stream.py): the stages after it take
    each instruction it accepts."""

    final = True  # it takes rows from no stage

    def __init__(self, ctx: RunContext, stats: StageStats, stream: StreamBar) -> None:
        self.boot = Bootstrap(ctx, stats)
        self.stats = stats
        self._feed = self.boot.start(ctx.config.num_instructions, stream)
        self.progress = self._feed.progress

    @property
    def feed(self) -> BootstrapFeed:
        return self._feed

    @property
    def committed(self) -> int:
        return len(self.boot.machine)

    def grow(self, upstream_done: bool, upstream_committed: int) -> None:
        """Nothing to take: bootstrap is the first stage."""

    def finish(self, stopped: bool) -> None:
        self.boot.finish(self._feed, stopped)

    def close(self) -> None:
        self.progress.close()
        self.boot.pool.close()
