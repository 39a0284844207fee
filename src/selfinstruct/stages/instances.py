"""Stage 3: the model writes input/output instances for each instruction: output first
(labels, then inputs) for classification tasks, input first for the rest.

Each answer is stored as it arrives, and parsed at once into instance records with stable ids
(`views/tasks.py`), so later stages can refer to one instance."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.config import RequestSettings
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.plan import StagePlan, run_plan
from selfinstruct.engine.stage import Stage
from selfinstruct.errors import RunError
from selfinstruct.filters.reasons import NO_LABEL
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.fake_answers import FakeAnswer, FakeText
from selfinstruct.parsing.instances import parse_instances
from selfinstruct.prompts import TemplateSpec
from selfinstruct.store import paper_files
from selfinstruct.store.run_store import InstructionRow, RunStore

STAGE = "instances"
_ASKS = frozenset({"instruction"})
_MAX = frozenset({"max_instances"})
CLASSIFICATION_TEMPLATE = TemplateSpec("instances_classification", _ASKS, _MAX, fewshot=True)
GENERATION_TEMPLATE = TemplateSpec("instances_generation", _ASKS, _MAX, fewshot=True)


@dataclass
class InstancesSettings(RequestSettings):
    """Stage 3: input/output instances for each instruction."""

    max_instances: int = 5  # instances asked for per instruction (1 to 20)
    presence_penalty: float = 1.5
    max_tokens: int = 350
    # max_tokens when the batch window holds a classification task
    max_tokens_with_classification: int = 300

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if not 1 <= self.max_instances <= 20:
            yield "max_instances", "must be between 1 and 20"


def request_stops(style: str, settings: InstancesSettings) -> list[str]:
    """Configured stops, else the next example; chat models often restate the task first,
    so they stop only at a later "Task:" line."""
    if settings.stop is not None:
        return settings.stop
    return [
        f"Example {settings.max_instances + 1}",
        "Task:" if style == "completion" else "\nTask:",
    ]


def run(ctx: RunContext, stats: StageStats) -> None:
    run_plan(ctx, plan(ctx, stats))


def plan(ctx: RunContext, stats: StageStats) -> StagePlan[InstructionRow]:
    settings: InstancesSettings = ctx.config.section(STAGE)
    style = ctx.config.prompt_style
    labels = ctx.store.labels.all()
    done = set(ctx.store.instances.raw())
    rows = ctx.store.pool.instructions()
    unlabelled = [r for r in rows if r.id not in labels]
    if rows and len(unlabelled) == len(rows):
        raise RunError(
            "no instruction has a classification label yet; run the classify stage first"
        )
    waiting = _windows_waiting_for_labels(rows, labels, settings.request_batch_size)
    stop = request_stops(style, settings)

    def make_requests(
        window: Sequence[InstructionRow], batch: Sequence[InstructionRow]
    ) -> list[Request]:
        any_clf = any(labels[r.id][1] for r in window)
        max_tokens = settings.max_tokens_with_classification if any_clf else settings.max_tokens
        requests = []
        for row in batch:
            spec = CLASSIFICATION_TEMPLATE if labels[row.id][1] else GENERATION_TEMPLATE
            prompt = ctx.templates.render(
                style,
                spec,
                instruction=row.instruction.strip(),
                max_instances=settings.max_instances,
            )
            requests.append(
                ctx.request(
                    STAGE, row.id, prompt, settings, stop, max_tokens=max_tokens, task=spec.name
                )
            )
        return requests

    def record(row: InstructionRow, key: str, answer: Completion) -> str | None:
        ctx.store.instances.put(row.id, answer.text, answer.finish_reason, key)
        store_parsed(ctx.store, row.id, answer.text, answer.truncated, labels[row.id][1], style)
        return None

    missing = {NO_LABEL: len(waiting - done)} if waiting - done else {}
    return StagePlan(
        stats, rows, done | waiting, settings.request_batch_size, make_requests, record, missing
    )


def _windows_waiting_for_labels(
    rows: Sequence[InstructionRow], labels: dict, size: int
) -> set[int]:
    """Instructions in a batch window that holds an unlabelled instruction: the window's
    max_tokens depends on every label in it, so it waits until classify has them all."""
    waiting: set[int] = set()
    for start in range(0, len(rows), size):
        window = rows[start : start + size]
        if any(row.id not in labels for row in window):
            waiting |= {row.id for row in window}
    return waiting


def store_parsed(
    store: RunStore,
    instruction_id: int,
    raw: str,
    truncated: bool,
    is_classification: bool,
    style: str,
) -> None:
    """Parse one stored answer and store its records (inside the caller's transaction)."""
    store.instances.put_parsed(
        instruction_id, parse_instances(raw, truncated, is_classification, style)
    )


def backfill(store: RunStore, style: str) -> int:
    """Parse the stored answers that have no records yet (a run made before instance
    records existed); returns how many were parsed."""
    todo = store.instances.unparsed()
    if not todo:
        return 0
    labels, raw = store.labels.all(), store.instances.raw()
    with store.transaction():
        for instruction_id in todo:
            text, finish, _ = raw[instruction_id]
            store_parsed(
                store, instruction_id, text, finish == "length", labels[instruction_id][1], style
            )
    return len(todo)


def write_files(ctx: RunContext) -> list[Path]:
    return [paper_files.write_instances(ctx.store)]


def fake_classification(text: FakeText, request: Request) -> str:
    """A label set, each label with an input (output first)."""
    labels, field = text.label_set(), text.field()
    blocks = [f"Class label: {label}\n{field}: {text.sentence()}" for label in labels]
    return "\n".join(blocks) + "\n\n"


def fake_generation(text: FakeText, request: Request) -> str:
    """Examples with an input and an output, or a lone output; now and then an input given
    two different outputs."""
    rng = text.rng
    if rng.random() < 0.25:
        return f"Output: {text.sentence()} {text.sentence()}\n\n"
    field = text.field()
    blocks = []
    for n in range(1, rng.randint(2, 5) + 1):
        blocks.append(f"Example {n}\n{field}: {text.sentence()}\nOutput: {text.sentence()}")
    if rng.random() < 0.1:
        blocks.append(blocks[-1].replace("Output: ", "Output: Not ", 1))
    return "\n\n".join(blocks) + "\n\n"


STAGE_DEF = Stage(
    name=STAGE,
    help="Stage 3: generate input/output instances for each instruction.",
    run=run,
    unit="instructions",
    verb="answered",
    settings=InstancesSettings,
    templates=(CLASSIFICATION_TEMPLATE, GENERATION_TEMPLATE),
    stops=request_stops,
    record_count=lambda store: store.count("instances"),
    counts=lambda ctx: {"instances": ctx.store.count("instances")},
    backfill=lambda ctx: backfill(ctx.store, ctx.config.prompt_style),
    plan=plan,
    write_files=write_files,
    sample_template=GENERATION_TEMPLATE,
    assumed_output_tokens=150.0,
    fake_answers=(
        FakeAnswer("instances_classification", fake_classification, marker="Class label:"),
        FakeAnswer("instances_generation", fake_generation, marker="Task:"),
    ),
)
