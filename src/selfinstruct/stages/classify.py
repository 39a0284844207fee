"""Stage 2: ask the model whether each instruction is a classification task."""

from __future__ import annotations

from collections.abc import Sequence

from selfinstruct.llm.base import Completion, Request
from selfinstruct.parsing.labels import UNREADABLE, is_yes, label_counts, unreadable_answers
from selfinstruct.reporting.stats import StageStats
from selfinstruct.stages.context import RunContext
from selfinstruct.stages.per_instruction import StagePlan, run_plan
from selfinstruct.store.run_store import InstructionRow, RunStore

STAGE = "classify"


def run_classify(ctx: RunContext) -> StageStats:
    stats = run_plan(ctx, plan_classify(ctx))
    stats.details.append(describe_labels(ctx.store, ctx.config.prompt_style))
    return stats


def plan_classify(ctx: RunContext) -> StagePlan:
    settings = ctx.config.classify
    style = ctx.config.prompt_style
    labelled = set(ctx.store.labels())

    def make_requests(window: Sequence[InstructionRow],
                      batch: Sequence[InstructionRow]) -> list[Request]:
        requests = []
        for row in batch:
            prompt = ctx.templates.render(style, "classify", instruction=row.instruction.strip())
            requests.append(ctx.request(STAGE, row.id, prompt))
        return requests

    def record(row: InstructionRow, key: str, answer: Completion) -> str | None:
        ctx.store.put_label(row.id, answer.text, is_yes(answer.text, style), key)
        return None

    stats = StageStats(STAGE, unit="instructions", verb="labelled")
    return StagePlan(stats, ctx.store.instructions(), labelled, settings.request_batch_size,
                     make_requests, record)


def describe_labels(store: RunStore, style: str) -> str:
    """The label distribution of the whole run, unreadable answers shown as written."""
    raws = [raw for raw, _ in store.labels().values()]
    found = label_counts(raws, style)
    text = "labels: " + ", ".join(f"{name} {n}" for name, n in found.items())
    if found[UNREADABLE]:
        shown = ", ".join(f"{raw!r} {n}" for raw, n in unreadable_answers(raws, style))
        text += (f" (unreadable answers count as not classification, the paper's rule; "
                 f"most common: {shown})")
    return text
