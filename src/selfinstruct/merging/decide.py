"""Deciding every candidate of the merge: the runs' instructions in merge order, under the
ROUGE-L rule over their union. What a run dropped itself stays dropped for its own reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from selfinstruct.console.progress import Progress
from selfinstruct.console.stats import StageStats
from selfinstruct.merging.order import Slot, merge_order
from selfinstruct.merging.select import Selector, Verdict
from selfinstruct.merging.source import Candidate, SourceRun
from selfinstruct.similarity.tokenize import get_tokenizer
from selfinstruct.stages.bootstrap.compose import prompt_seeds
from selfinstruct.store.run_store import InstructionRow

# Candidates scored against the pool in one call (a block holds BLOCK rows of pool size).
BLOCK = 64


@dataclass(frozen=True)
class Decision:
    """A candidate's decision in the merged run: `kept` (`row` is its merged instruction), the
    merge's drop reason (`duplicate`, `rouge`) or the drop reason its run recorded."""

    candidate: Candidate
    decision: str
    row: InstructionRow | None


@dataclass
class MergePlan:
    runs: Sequence[SourceRun]  # in merge order
    slots: list[tuple[Slot, list[Decision]]] = field(default_factory=list)
    ids: dict[tuple[int, int], int] = field(default_factory=dict)  # (run, its id) -> merged id
    judged: list[Counter[str]] = field(default_factory=list)  # per run: kept, duplicate, rouge

    @property
    def instructions(self) -> int:
        return len(self.ids)


def decide(runs: Sequence[SourceRun], stats: StageStats, *, quiet: bool) -> MergePlan:
    """Every batch of every run in merge order, each run's instructions judged again."""
    first = runs[0]
    settings = first.settings
    seeds = [task.instruction for task in prompt_seeds(first.ctx.seeds, settings)]
    selector = Selector(
        seeds, settings.rouge_threshold, get_tokenizer(settings.tokenizer), settings.most_similar
    )
    plan = MergePlan(runs, judged=[Counter() for _ in runs])
    slots = merge_order(runs)
    texts = [c.text for slot in slots for c in runs[slot.run].batches[slot.batch] if c.row]
    progress = Progress(stats, len(texts), 0, quiet=quiet)
    try:
        verdicts = _verdicts(selector, texts, progress)
        for slot in slots:
            plan.slots.append((slot, _decide_slot(plan, slot, verdicts, stats)))
    finally:
        progress.close()
        selector.close()
    return plan


def _verdicts(selector: Selector, texts: list[str], progress: Progress) -> Iterator[Verdict]:
    """The verdicts in order, judged BLOCK candidates at a time (across batches and runs:
    the blocks only group the scoring, every decision is made at its own turn)."""
    for start in range(0, len(texts), BLOCK):
        found = selector.decide(texts[start : start + BLOCK])
        yield from found
        progress.advance(len(found))


def _decide_slot(
    plan: MergePlan, slot: Slot, verdicts: Iterator[Verdict], stats: StageStats
) -> list[Decision]:
    run = plan.runs[slot.run]
    decisions = []
    for candidate in run.batches[slot.batch]:
        if candidate.row is None:
            decisions.append(Decision(candidate, candidate.decision, None))
            continue
        verdict = next(verdicts)
        plan.judged[slot.run][verdict.reason or "kept"] += 1
        if verdict.reason is not None:
            stats.drop(verdict.reason)
            decisions.append(Decision(candidate, verdict.reason, None))
            continue
        merged_id = len(plan.ids) + 1
        plan.ids[(slot.run, candidate.row.id)] = merged_id
        stats.kept += 1
        row = InstructionRow(
            id=merged_id,
            instruction=candidate.text,
            most_similar=verdict.most_similar,
            avg_similarity_score=verdict.avg_similarity_score,
            request_idx=slot.request(candidate.request_idx, run.batch_size),
            batch_idx=slot.merged_batch,
            response_key=candidate.row.response_key,
        )
        decisions.append(Decision(candidate, "kept", row))
    return decisions
