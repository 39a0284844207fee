"""Stage 1: grow the task pool with new instructions written by the model.

Requests go out in batches of `request_batch_size`; every prompt of a batch is composed from
the pool as it stood before the batch (its own random generator, seeded by the run seed and
the request index). Candidates are then judged strictly in order, each against the seeds and
everything accepted before it, and each decision is committed as it is made. A resumed run
recomposes the same prompts, takes the answers from the run's cache and skips candidates
already decided, so it ends exactly where an uninterrupted run would.

Prompts are composed by a pure function (`compose`) from pool items that carry their ids;
each prompt's sources (seed and machine instruction ids) are recorded as it is composed, and
recomputed with the same function for runs made before they were (stages/provenance.py).
"""

from __future__ import annotations

import bisect
import math
import random
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from selfinstruct.config import RequestSettings
from selfinstruct.console.progress import Progress
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.budget import budget_stop
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.dispatch import serve
from selfinstruct.engine.stage import Estimate, Stage
from selfinstruct.errors import RunError
from selfinstruct.filters.instruction import heuristic_reason, upper_first
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.fake_answers import FakeAnswer, FakeText, prompt_text
from selfinstruct.llm.registry import backend_class, known_backends
from selfinstruct.parsing.instructions import split_instructions
from selfinstruct.prompts import Prompt, TemplateSet, TemplateSpec
from selfinstruct.seeds.task import SeedTask
from selfinstruct.similarity.prefilter import Prefilter
from selfinstruct.similarity.rouge import Block, RougePool
from selfinstruct.similarity.tokenize import get_tokenizer
from selfinstruct.stages.bootstrap.truncation import truncation_advice
from selfinstruct.store import paper_files
from selfinstruct.store.run_store import InstructionRow, PromptSources, RunStore

STAGE = "bootstrap"
# What bootstrap does with a response cut off at max_tokens: the paper discards it whole;
# Alpaca keeps its complete items and drops only the last, cut one.
TRUNCATED_RESPONSES = ("discard", "keep_complete_items")
TOKENIZERS = ("rouge", "unicode")
BLOCKED_KEYWORDS = [
    "image",
    "images",
    "graph",
    "graphs",
    "picture",
    "pictures",
    "file",
    "files",
    "map",
    "maps",
    "draw",
    "plot",
    "go to",
]
ASSUMED_KEPT_PER_REQUEST = 3.0
_LIST = frozenset({"tasks"})
_NUMBERS = frozenset({"next_number", "last_number"})
TEMPLATE = TemplateSpec("bootstrap", _LIST, _NUMBERS)
CLASSIFICATION_TEMPLATE = TemplateSpec("bootstrap_classification", _LIST, _NUMBERS)
MAX_BARREN_BATCHES = 50
# k for a backend that keeps many requests in flight (a server): 8 batches of 5 keep the
# default 16 slots busy even while a slow answer holds the judging back. A local engine that
# answers one request at a time gains nothing from k > 1 and gets the paper's k = 1.
SERVER_BATCHES_IN_FLIGHT = 8
PAPER_SCHEDULE = "paper"  # k = 1: every prompt sees every batch before its own
AUTO_SCHEDULE = "auto"
TRUNCATED_ITEM = "truncated_item"  # the last, cut item of a response kept in part
TRUNCATION_WARNING_SHARE = 0.25


@dataclass
class BootstrapSettings(RequestSettings):
    """Stage 1: new instructions from the task pool."""

    num_prompt_instructions: int = 8
    num_machine_instructions: int = 2
    classification_only: bool = False
    temperature: float = 0.7
    top_p: float = 0.5
    presence_penalty: float = 2.0
    max_tokens: int = 1024
    truncated_responses: str = "discard"
    min_words: int = 4
    max_words: int = 150
    blocked_keywords: list[str] = field(default_factory=lambda: list(BLOCKED_KEYWORDS))
    blocked_prefixes: list[str] = field(default_factory=lambda: ["Write a program"])
    rouge_threshold: float = 0.7
    tokenizer: str = "rouge"
    most_similar: int = 10
    max_requests: int = 0
    batches_in_flight: int | str = AUTO_SCHEDULE
    similarity_workers: int = 0

    # Settings added after runs existed, with the value runs made before them behaved by.
    EARLIER: ClassVar[dict[str, Any]] = {"batches_in_flight": 1}

    def schedule(self, backend: str) -> int:
        """k: batch b's prompts show the pool as it stood after batch b - k was judged ("auto":
        SERVER_BATCHES_IN_FLIGHT for a backend that serves requests in parallel, else 1)."""
        if self.batches_in_flight == AUTO_SCHEDULE:
            parallel = backend in known_backends() and backend_class(backend).parallel
            return SERVER_BATCHES_IN_FLIGHT if parallel else 1
        if isinstance(self.batches_in_flight, str):
            return 1  # "paper"
        return self.batches_in_flight

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if isinstance(self.batches_in_flight, str):
            if self.batches_in_flight not in (AUTO_SCHEDULE, PAPER_SCHEDULE):
                yield "batches_in_flight", "must be a number >= 1, 'auto' or 'paper'"
        elif not 1 <= self.batches_in_flight <= 4096:
            yield "batches_in_flight", "must be between 1 and 4096 (or 'auto', 'paper')"
        if self.similarity_workers < 0:
            yield "similarity_workers", "must be >= 0 (0: every core)"
        if self.tokenizer not in TOKENIZERS:
            yield "tokenizer", f"must be one of {', '.join(TOKENIZERS)}"
        if self.truncated_responses not in TRUNCATED_RESPONSES:
            yield "truncated_responses", f"must be one of {', '.join(TRUNCATED_RESPONSES)}"
        if not 1 <= self.num_prompt_instructions <= 64:
            yield "num_prompt_instructions", "must be between 1 and 64"
        if not 0 <= self.num_machine_instructions <= self.num_prompt_instructions:
            yield "num_machine_instructions", "must be between 0 and num_prompt_instructions"
        if not 0 <= self.min_words <= self.max_words:
            yield "min_words", "must be between 0 and max_words"
        if self.most_similar < 0:
            yield "most_similar", "must be >= 0"
        if not 0.0 <= self.rouge_threshold <= 1.0:
            yield "rouge_threshold", "must be between 0 and 1"


def default_stops(style: str) -> list[str]:
    """The paper's stops for completion (a blank line, item 16); chat answers have no blank
    line to stop at."""
    item16 = ["\n16", "16.", "16 ."]
    return ["\n\n", *item16] if style == "completion" else item16


def request_stops(style: str, settings: BootstrapSettings) -> list[str]:
    """The stops its requests use: the configured ones, else the default for the style."""
    return settings.stop if settings.stop is not None else default_stops(style)


@dataclass(frozen=True)
class Candidate:
    """One piece of one response, on its way to a decision."""

    request_idx: int
    piece_idx: int
    batch: int
    key: str
    text: str


def prompt_line(text: str) -> str:
    """An instruction as shown in a prompt: whitespace collapsed, no trailing colon."""
    return re.sub(r"\s+", " ", text).strip().rstrip(":")


PoolItem = SeedTask | InstructionRow


def prompt_seeds(seeds: Sequence[SeedTask], settings: BootstrapSettings) -> list[SeedTask]:
    """The seed tasks bootstrap prompts with (classification ones only, when asked)."""
    if settings.classification_only:
        return [t for t in seeds if t.is_classification]
    return list(seeds)


def compose(
    seeds: Sequence[SeedTask],
    machine: Sequence[InstructionRow],
    settings: BootstrapSettings,
    random_seed: int,
    request_idx: int,
) -> list[PoolItem]:
    """The pool items one prompt shows, in prompt order: machine instructions (those from
    batches before this request's) and seeds drawn by the request's own generator, shuffled.
    Deterministic: the same arguments always give the same items."""
    rng = random.Random(f"{random_seed}:{STAGE}:{request_idx}")
    n_machine = min(settings.num_machine_instructions, len(machine))
    n_seed = min(settings.num_prompt_instructions - n_machine, len(seeds))
    chosen: list[PoolItem] = [*rng.sample(machine, n_machine), *rng.sample(seeds, n_seed)]
    rng.shuffle(chosen)
    return chosen


def sources_of(chosen: Sequence[PoolItem]) -> PromptSources:
    """The ids of the items a prompt shows, seeds and machine instructions apart."""
    return PromptSources(
        tuple(item.id for item in chosen if isinstance(item, SeedTask)),
        tuple(item.id for item in chosen if isinstance(item, InstructionRow)),
    )


def render(
    templates: TemplateSet, style: str, settings: BootstrapSettings, texts: Sequence[str]
) -> Prompt:
    """The prompt showing these instructions as a numbered list."""
    spec = CLASSIFICATION_TEMPLATE if settings.classification_only else TEMPLATE
    lines = [prompt_line(text) for text in texts]
    numbered = "\n".join(f"{i}. {line}" for i, line in enumerate(lines, start=1))
    nxt = len(lines) + 1
    if style == "completion":
        numbered += f"\n{nxt}."
    return templates.render(
        style, spec, tasks=numbered, next_number=nxt, last_number=nxt + len(lines) - 1
    )


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
        self.machine: list[InstructionRow] = ctx.store.instructions()
        for row in self.machine:
            self.pool.add(row.instruction)
        self.known = set(self.pool.texts)
        self.prefilter = Prefilter(self.pool, self.settings.rouge_threshold)
        self.answers_seen = 0  # responses judged by this process
        self.truncated_items: list[int] = []  # items of each response cut at max_tokens

    def run(self, target: int) -> None:
        if not self.prompt_seeds:
            raise RunError(
                "no seed tasks to prompt with (classification_only needs "
                "seeds marked is_classification)"
            )
        progress = Progress(
            self.stats, target, min(len(self.machine), target), quiet=self.ctx.quiet
        )
        feed = BootstrapFeed(self, target, progress)
        try:
            served = serve(self.ctx, feed, self.stats, progress)
        finally:
            progress.close()
            self.pool.close()
        if len(self.machine) < target:
            if served.stopped:
                left = f"{len(self.machine)} of the {target} instructions asked for"
                raise budget_stop(self.ctx, self.stats, left)
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
        if outcomes and all(o == "failed" for o in outcomes):
            raise RunError(
                f"every request of a bootstrap batch failed; last error: {self.stats.last_failure}"
            )
        if outcomes and all(o == "truncated" for o in outcomes):
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
            has_records=self.ctx.store.has_candidates(),
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
        self.ctx.store.put_prompt_sources(request_idx, sources.seed_ids, sources.machine_ids)
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
            return self._outcome("failed")
        self.answers_seen += 1
        pieces = split_instructions(answer.text, self.style)
        cut = None
        if answer.truncated:
            self.truncated_items.append(sum(1 for p in pieces if p))
            # The paper discards a cut response whole; Alpaca keeps its complete items and
            # drops the last one, where the cut is.
            complete = any(pieces[:-1])
            if self.settings.truncated_responses == "discard" or not complete:
                return self._outcome("truncated")
            cut = len(pieces) - 1
        decided = self.ctx.store.decided_pieces(request_idx)
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
        return self._outcome("ok" if any(pieces) else "unparseable")

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
            reason = "duplicate"
        kept = None
        if reason is None:
            kept = self._similarity_verdict(c, scoring)
            reason = "rouge" if kept is None else None
        stored = self.ctx.store.record_candidate(
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
        self.ahead = boot.settings.schedule(boot.ctx.choice_for(STAGE).name)
        self.judging = boot.ctx.store.completed_requests()  # the next request to judge
        self.composing = self.judging  # the next request to compose
        self.arrived: dict[int, tuple[str, Completion | None]] = {}
        self.outcomes: list[str] = []  # of the batch being judged
        self.barren = 0
        self.kept_before = len(boot.machine)
        # How many machine instructions come from batches up to each judged batch.
        self.visible: dict[int, int] = {}

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
        done = boot.judge_response(request_idx, batch, key, answer, self.target, self.progress)
        if not done:
            return  # the target was reached inside this response
        boot.ctx.store.complete_request(request_idx, batch, key, done)
        self.outcomes.append(done)
        self.judging += 1
        if self.judging % self.size == 0:
            kept = len(boot.machine)
            self.barren = 0 if kept > self.kept_before else self.barren + 1
            self.kept_before = kept
            outcomes, self.outcomes = self.outcomes, []
            boot.check_progress(outcomes, self.barren)


@dataclass(frozen=True)
class BlockScoring:
    """The similarity work for one response's candidates (by piece index): their encodings,
    the ones already above the threshold, and the block rows of the others."""

    encoded: dict[int, str]
    settled: set[int]
    rows: dict[int, int]
    block: Block


def run(ctx: RunContext, stats: StageStats) -> None:
    Bootstrap(ctx, stats).run(ctx.config.num_instructions)


def estimate(store: RunStore | None, target: int, fingerprint: dict[str, Any]) -> Estimate:
    """Requests still needed at the yield seen so far (kept instructions per request)."""
    have = store.instruction_count() if store else 0
    done = store.completed_requests() if store else 0
    if store and done and have:
        rate, basis = have / done, f"{have / done:.1f} kept per request so far"
    else:
        rate = ASSUMED_KEPT_PER_REQUEST
        basis = f"assumes {ASSUMED_KEPT_PER_REQUEST:.0f} kept per request"
    return Estimate(math.ceil(max(0, target - have) / rate), basis)


def write_files(ctx: RunContext) -> list[Path]:
    return [paper_files.write_instructions(ctx.store)]


def fake_answer(text: FakeText, request: Request) -> str:
    """A numbered list continuing the prompt's, now and then with items the filters drop
    (too short, blocked words, repeats of the prompt) and an item that never ends."""
    rng = text.rng
    shown = re.findall(r"^\s*\d+\.\s*(.+)$", prompt_text(request), flags=re.M)
    items = [
        text.instruction() if rng.random() < 0.85 else text.flawed_instruction(shown)
        for _ in range(rng.randint(5, 9))
    ]
    if rng.random() < 0.04:
        items.append(text.rambling(request.max_tokens + 5))
    numbered = [f"{9 + i}. {item}" for i, item in enumerate(items)]
    if request.is_chat:
        preamble = rng.choice(("Here are some new tasks:\n\n", "Sure!\n", ""))
        return preamble + "\n".join(numbered)
    answer = " " + "\n".join(numbered)[len("9. ") :]
    return answer + ("\n\n" if rng.random() < 0.5 else "\n")


STAGE_DEF = Stage(
    name=STAGE,
    help="Stage 1: generate new instructions from the task pool (creates the run).",
    run=run,
    unit="instructions",
    settings=BootstrapSettings,
    templates=(TEMPLATE, CLASSIFICATION_TEMPLATE),
    stops=request_stops,
    runtime_only=frozenset({"max_requests", "similarity_workers"}),
    depends_on_seeds=True,
    records=lambda store: store.count("candidates"),
    write_files=write_files,
    estimate=estimate,
    sample_template=TEMPLATE,
    assumed_output_tokens=200.0,
    fake_answers=(
        FakeAnswer("bootstrap", fake_answer),
        FakeAnswer("bootstrap_classification", fake_answer),
    ),
    creates_run=True,
)
