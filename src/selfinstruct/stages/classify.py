"""Stage 2: ask the model whether each instruction is a classification task."""

from __future__ import annotations

import re
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.config import RequestSettings
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.plan import StagePlan, run_plan
from selfinstruct.engine.stage import Stage
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.fake_answers import FakeAnswer, FakeText, prompt_text
from selfinstruct.parsing.labels import UNREADABLE, is_yes, label_counts, unreadable_answers
from selfinstruct.prompts import TemplateSpec
from selfinstruct.store import paper_files
from selfinstruct.store.run_store import InstructionRow, RunStore

STAGE = "classify"
TEMPLATE = TemplateSpec("classify", frozenset({"instruction"}), fewshot=True)


@dataclass
class ClassifySettings(RequestSettings):
    """Stage 2: is each instruction a classification task?"""

    max_tokens: int = 3


def request_stops(style: str, settings: RequestSettings) -> list[str]:
    """Configured stops, else the paper's (end of line, the next "Task") for completion."""
    if settings.stop is not None:
        return settings.stop
    return ["\n", "Task"] if style == "completion" else ["\n"]


def run(ctx: RunContext, stats: StageStats) -> None:
    run_plan(ctx, plan(ctx, stats))
    describe(ctx, stats)


def describe(ctx: RunContext, stats: StageStats) -> None:
    stats.details.append(describe_labels(ctx.store, ctx.config.prompt_style))


def plan(ctx: RunContext, stats: StageStats) -> StagePlan[InstructionRow]:
    settings: ClassifySettings = ctx.config.section(STAGE)
    style = ctx.config.prompt_style
    labelled: set[Hashable] = set(ctx.store.labels.all())
    stop = request_stops(style, settings)

    def make_requests(
        window: Sequence[InstructionRow], batch: Sequence[InstructionRow]
    ) -> list[Request]:
        requests = []
        for row in batch:
            prompt = ctx.templates.render(style, TEMPLATE, instruction=row.instruction.strip())
            requests.append(ctx.request(STAGE, row.id, prompt, settings, stop))
        return requests

    def record(row: InstructionRow, key: str, answer: Completion) -> str | None:
        ctx.store.labels.put(row.id, answer.text, is_yes(answer.text, style), key)
        return None

    return StagePlan(
        stats,
        ctx.store.pool.instructions(),
        labelled,
        settings.request_batch_size,
        make_requests,
        record,
    )


def describe_labels(store: RunStore, style: str) -> str:
    """The label distribution of the whole run, unreadable answers shown as written."""
    raws = [raw for raw, _ in store.labels.all().values()]
    found = label_counts(raws, style)
    text = "labels: " + ", ".join(f"{name} {n}" for name, n in found.items())
    if found[UNREADABLE]:
        shown = ", ".join(f"{raw!r} {n}" for raw, n in unreadable_answers(raws, style))
        text += (
            f" (unreadable answers count as not classification, the paper's rule; "
            f"most common: {shown})"
        )
    return text


def write_files(ctx: RunContext) -> list[Path]:
    return [
        paper_files.write_labels(
            ctx.store, ctx.model_label(), ctx.config.prompt_style, old_engine=ctx.model_name()
        )
    ]


def fake_answer(text: FakeText, request: Request) -> str:
    """Yes for instructions that sound like classification (and now and then others)."""
    found = re.findall(r"Task:\s*(.+)", prompt_text(request))
    target = found[-1] if found else ""
    yes = any(word in target.lower() for word in ("classify", "rank", "identify", "which"))
    yes = yes or text.rng.random() < 0.2
    answer = "Yes" if yes else "No"
    return f"{answer}." if request.is_chat else f" {answer}"


STAGE_DEF = Stage(
    name=STAGE,
    help="Stage 2: decide which instructions are classification tasks.",
    run=run,
    unit="instructions",
    verb="labelled",
    settings=ClassifySettings,
    templates=(TEMPLATE,),
    stops=request_stops,
    record_count=lambda store: store.count("labels"),
    counts=lambda ctx: {"labels": ctx.store.count("labels")},
    plan=plan,
    describe=describe,
    write_files=write_files,
    sample_template=TEMPLATE,
    assumed_output_tokens=2.0,
    fake_answers=(FakeAnswer("classify", fake_answer, marker="Is it classification?"),),
)
