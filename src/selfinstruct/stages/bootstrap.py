"""Stage 1: grow the task pool with new instructions written by the model.

Requests go out in batches of `request_batch_size`; every prompt of a batch is composed from
the pool as it stood before the batch (its own random generator, seeded by the run seed and
the request index). Candidates are then judged strictly in order, each against the seeds and
everything accepted before it, and each decision is committed as it is made. A resumed run
recomposes the same prompts, takes the answers from the run's cache and skips candidates
already decided, so it ends exactly where an uninterrupted run would.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

from selfinstruct.errors import RunError
from selfinstruct.filters.instruction import heuristic_reason, upper_first
from selfinstruct.llm.base import Completion, Request
from selfinstruct.parsing.instructions import split_instructions
from selfinstruct.prompts import Prompt
from selfinstruct.reporting.progress import Progress
from selfinstruct.reporting.stats import StageStats
from selfinstruct.reporting.truncation import truncation_advice
from selfinstruct.similarity.prefilter import Prefilter
from selfinstruct.similarity.rouge import Block, RougePool
from selfinstruct.similarity.tokenize import get_tokenizer
from selfinstruct.stages.context import RunContext
from selfinstruct.store.run_store import InstructionRow

STAGE = "bootstrap"
MAX_BARREN_BATCHES = 50
TRUNCATED_ITEM = "truncated_item"  # the last, cut item of a response kept in part
TRUNCATION_WARNING_SHARE = 0.25


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


class Bootstrap:
    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.settings = ctx.config.bootstrap
        self.style = ctx.config.prompt_style
        self.stats = StageStats(STAGE, unit="instructions")
        seeds = ctx.seeds
        if self.settings.classification_only:
            seeds = [t for t in seeds if t.is_classification]
        self.prompt_seeds = [t.instruction for t in seeds]
        self.pool = RougePool(get_tokenizer(self.settings.tokenizer))
        for text in self.prompt_seeds:  # the paper's pool: the seeds it prompts with
            self.pool.add(text)
        self.machine: list[InstructionRow] = ctx.store.instructions()
        for row in self.machine:
            self.pool.add(row.instruction)
        self.known = set(self.pool.texts)
        self.prefilter = Prefilter(self.pool, self.settings.rouge_threshold)
        self.answers_seen = 0  # responses judged by this process
        self.truncated_items: list[int] = []  # items of each response cut at max_tokens

    def run(self, target: int) -> StageStats:
        if not self.prompt_seeds:
            raise RunError("no seed tasks to prompt with (classification_only needs "
                           "seeds marked is_classification)")
        size = self.settings.request_batch_size
        batch = self.ctx.store.completed_requests() // size
        progress = Progress(self.stats, target, min(len(self.machine), target),
                            quiet=self.ctx.quiet)
        try:
            barren = 0
            while len(self.machine) < target:
                if self.settings.max_requests and batch * size >= self.settings.max_requests:
                    self._stopped_at_max_requests(target)
                    break
                before = len(self.machine)
                outcomes = self._run_batch(batch, target, progress)
                barren = 0 if len(self.machine) > before else barren + 1
                self._check_progress(outcomes, barren)
                batch += 1
        finally:
            progress.close()
            self.stats.stop()
        self._warn_truncation()
        return self.stats

    def _stopped_at_max_requests(self, target: int) -> None:
        self.stats.warnings.append(
            f"bootstrap stopped at bootstrap.max_requests ({self.settings.max_requests} "
            f"requests) with {len(self.machine)} of the {target} instructions asked for; "
            "raise it (0: no limit) and rerun to continue")

    def _check_progress(self, outcomes: list[str], barren: int) -> None:
        """Stop instead of spending requests forever on a run that cannot get anywhere."""
        if outcomes and all(o == "failed" for o in outcomes):
            raise RunError(f"every request of a bootstrap batch failed; last error: "
                           f"{self.stats.last_failure}")
        if outcomes and all(o == "truncated" for o in outcomes):
            raise RunError(self._truncation_advice(len(outcomes), whole_batch=True))
        if barren >= MAX_BARREN_BATCHES:
            raise RunError(f"no new instruction in the last {barren} bootstrap batches: the "
                           "model repeats the pool or its answers do not parse (see the "
                           "drop reasons above); everything accepted so far is saved")

    def _truncation_advice(self, responses: int, *, whole_batch: bool) -> str:
        return truncation_advice(
            self.truncated_items, responses, settings=self.settings, style=self.style,
            has_records=self.ctx.store.has_candidates(), whole_batch=whole_batch)

    def _warn_truncation(self) -> None:
        """A warning when a large share of this run's responses were cut off."""
        cut = len(self.truncated_items)
        if cut and cut >= TRUNCATION_WARNING_SHARE * self.answers_seen:
            self.stats.warnings.append(
                self._truncation_advice(self.answers_seen, whole_batch=False))

    def _run_batch(self, batch: int, target: int, progress: Progress) -> list[str]:
        """Send one batch and judge its responses; the outcomes of the completed requests."""
        size = self.settings.request_batch_size
        before = [r.instruction for r in self.machine if r.batch_idx < batch]
        indices = range(batch * size, (batch + 1) * size)
        requests = [self._request(i, before) for i in indices]
        answers = self.ctx.complete(STAGE, requests, self.stats, progress)
        outcomes = []
        for request_idx, (key, answer) in zip(indices, answers, strict=True):
            if len(self.machine) >= target:
                break
            done = self._judge_response(request_idx, batch, key, answer, target, progress)
            if done:
                self.ctx.store.complete_request(request_idx, batch, key, done)
                outcomes.append(done)
        return outcomes

    def _request(self, request_idx: int, machine_before: list[str]) -> Request:
        rng = random.Random(f"{self.ctx.config.random_seed}:{STAGE}:{request_idx}")
        n_machine = min(self.settings.num_machine_instructions, len(machine_before))
        n_seed = min(self.settings.num_prompt_instructions - n_machine, len(self.prompt_seeds))
        chosen = rng.sample(machine_before, n_machine) + rng.sample(self.prompt_seeds, n_seed)
        rng.shuffle(chosen)
        name = "bootstrap_classification" if self.settings.classification_only else "bootstrap"
        prompt = self._render(name, [prompt_line(t) for t in chosen])
        return self.ctx.request(STAGE, request_idx, prompt)

    def _render(self, name: str, lines: list[str]) -> Prompt:
        numbered = "\n".join(f"{i}. {line}" for i, line in enumerate(lines, start=1))
        nxt = len(lines) + 1
        if self.style == "completion":
            numbered += f"\n{nxt}."
        return self.ctx.templates.render(self.style, name, tasks=numbered, next_number=nxt,
                                         last_number=nxt + len(lines) - 1)

    def _judge_response(self, request_idx: int, batch: int, key: str,
                        answer: Completion | None, target: int,
                        progress: Progress) -> str | None:
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
        reasons = [TRUNCATED_ITEM if i == cut else heuristic_reason(text, self.settings)
                   for i, text in todo]
        scoring = self._score_block([(i, t) for (i, t), r in zip(todo, reasons, strict=True)
                                     if r is None])
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
        self.ctx.store.record_candidate(c.request_idx, c.piece_idx, text, reason or "kept", kept)
        if kept is None:
            self.stats.dropped[reason or ""] += 1
            return False
        self.machine.append(kept)
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
            id=0, instruction=c.text,
            most_similar=similarity.top(self.pool.texts, self.settings.most_similar),
            avg_similarity_score=similarity.mean, request_idx=c.request_idx,
            batch_idx=c.batch, response_key=c.key,
        )


@dataclass(frozen=True)
class BlockScoring:
    """The similarity work for one response's candidates (by piece index): their encodings,
    the ones already above the threshold, and the block rows of the others."""

    encoded: dict[int, str]
    settled: set[int]
    rows: dict[int, int]
    block: Block
