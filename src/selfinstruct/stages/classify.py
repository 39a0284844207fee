"""Stage 2: ask the model whether each instruction is a classification task."""

from __future__ import annotations

from collections.abc import Sequence

from selfinstruct.llm.base import Completion, Request
from selfinstruct.parsing.labels import is_yes
from selfinstruct.reporting.stats import StageStats
from selfinstruct.stages.context import RunContext
from selfinstruct.stages.per_instruction import StagePlan, run_plan
from selfinstruct.store.run_store import InstructionRow

STAGE = "classify"


def run_classify(ctx: RunContext) -> StageStats:
    return run_plan(ctx, plan_classify(ctx))


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
        yes = is_yes(answer.text, style)
        ctx.store.put_label(row.id, answer.text, yes, key)
        stats.notes["classification" if yes else "not_classification"] += 1
        return None

    stats = StageStats(STAGE)
    return StagePlan(stats, ctx.store.instructions(), labelled, settings.request_batch_size,
                     make_requests, record)
