"""Stage 3: the model writes input/output instances for each instruction: output first
(labels, then inputs) for classification tasks, input first for the rest."""

from __future__ import annotations

from collections.abc import Sequence

from selfinstruct.config import default_stops
from selfinstruct.errors import RunError
from selfinstruct.llm.base import Completion, Request
from selfinstruct.reporting.stats import StageStats
from selfinstruct.stages.context import RunContext
from selfinstruct.stages.per_instruction import StagePlan, run_plan
from selfinstruct.store.run_store import InstructionRow

STAGE = "instances"


def run_instances(ctx: RunContext) -> StageStats:
    return run_plan(ctx, plan_instances(ctx))


def plan_instances(ctx: RunContext) -> StagePlan:
    settings = ctx.config.instances
    style = ctx.config.prompt_style
    labels = ctx.store.labels()
    done = set(ctx.store.raw_instances())
    rows = ctx.store.instructions()
    unlabelled = [r for r in rows if r.id not in labels]
    if rows and len(unlabelled) == len(rows):
        raise RunError("no instruction has a classification label yet; "
                       "run the classify stage first")
    stats = StageStats(STAGE, unit="instructions", verb="answered")
    waiting = _windows_waiting_for_labels(rows, labels, settings.request_batch_size)
    if waiting - done:
        stats.drop("no_label", len(waiting - done))

    def make_requests(window: Sequence[InstructionRow],
                      batch: Sequence[InstructionRow]) -> list[Request]:
        any_clf = any(labels[r.id][1] for r in window)
        max_tokens = settings.max_tokens_with_classification if any_clf else settings.max_tokens
        stop = settings.stop
        if stop is None:
            stop = default_stops(STAGE, style, max_instances=settings.max_instances)
        requests = []
        for row in batch:
            name = ("instances_classification" if labels[row.id][1]
                    else "instances_generation")
            prompt = ctx.templates.render(style, name, instruction=row.instruction.strip(),
                                          max_instances=settings.max_instances)
            requests.append(ctx.request(STAGE, row.id, prompt, max_tokens=max_tokens,
                                        stop=stop, task=name))
        return requests

    def record(row: InstructionRow, key: str, answer: Completion) -> str | None:
        ctx.store.put_instances(row.id, answer.text, answer.finish_reason, key)
        return None

    return StagePlan(stats, rows, done | waiting, settings.request_batch_size, make_requests,
                     record)


def _windows_waiting_for_labels(rows: Sequence[InstructionRow], labels: dict,
                                size: int) -> set[int]:
    """Instructions in a batch window that holds an unlabelled instruction: the window's
    max_tokens depends on every label in it, so it waits until classify has them all."""
    waiting: set[int] = set()
    for start in range(0, len(rows), size):
        window = rows[start : start + size]
        if any(row.id not in labels for row in window):
            waiting |= {row.id for row in window}
    return waiting
