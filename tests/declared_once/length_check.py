"""An example stage that keeps records, as a new stage would be written: a length check. The
model says of each instance whether its output is long enough for its instruction; prepare
drops the ones it calls too short (`too_short`).

This module and its two templates (templates/completion/ and templates/chat/) are all it is.
Wired in with one line in the stage registry and one migration (`MIGRATION`), it has a
command and flags, a settings section, a fingerprint, an estimate, records that merge
copies, run.json counts, drops in prepare, the report and quality_drops.jsonl, a line in
the dataset card, and fake answers (tests/test_declared_once.py checks each)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import Config, Flag, RequestSettings
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.plan import StagePlan, run_plan
from selfinstruct.engine.stage import Estimate, Stage
from selfinstruct.filters.screen import Drop, drop_instance
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.fake_answers import FakeAnswer, FakeText
from selfinstruct.prompts import TemplateSpec
from selfinstruct.store.records import RecordTable
from selfinstruct.store.run_store import InstanceRecord, RunStore
from selfinstruct.views.tasks import parsed_tasks

STAGE = "length_check"
TEMPLATE = TemplateSpec("length_check", frozenset({"instruction", "output"}))
TOO_SHORT = "too_short"
MARKER = "Is the output long enough to answer the task?"
MIGRATION = (
    "0006_length_checks",
    """
        CREATE TABLE length_checks (
            instruction_id INTEGER NOT NULL REFERENCES instructions(id),
            position INTEGER NOT NULL, response_key TEXT NOT NULL, verdict TEXT,
            words INTEGER NOT NULL, PRIMARY KEY (instruction_id, position)
        );
    """,
)
# Its records: the model's verdict (None: neither answer) and the output's length in words.
CHECKS = RecordTable("length_checks", ("verdict", "words"), migration=MIGRATION[0])


@dataclass
class LengthCheckSettings(RequestSettings):
    """The length check (off unless enabled)."""

    enabled: bool = False
    min_words: int = 1  # outputs with fewer words are too short without asking
    max_tokens: int = 8

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.min_words < 0:
            yield "min_words", "must be >= 0"


def settings_of(config: Config) -> LengthCheckSettings:
    return config.section(STAGE)


def enabled(config: Config) -> bool:
    return settings_of(config).enabled


def verdict(text: str) -> str | None:
    said = " ".join(text.lower().split())
    if "too short" in said:
        return TOO_SHORT
    return "long_enough" if "long enough" in said else None


def instances(store: RunStore, style: str) -> list[tuple[InstanceRecord, str]]:
    """Every parsed instance with its instruction."""
    tasks = parsed_tasks(store, style)
    return [(record, task.instruction) for task in tasks for record in task.instances]


def plan(ctx: RunContext, stats: StageStats) -> StagePlan[InstanceRecord]:
    settings = settings_of(ctx.config)
    style = ctx.config.prompt_style
    texts = {record.id: instruction for record, instruction in instances(ctx.store, style)}

    def make_requests(
        window: Sequence[InstanceRecord], batch: Sequence[InstanceRecord]
    ) -> list[Request]:
        return [
            ctx.request(
                STAGE,
                record.id,
                ctx.templates.render(
                    style, TEMPLATE, instruction=texts[record.id], output=record.output
                ),
                settings,
                request_stops(style, settings),
                task=TEMPLATE.name,
            )
            for record in batch
        ]

    def record(row: InstanceRecord, key: str, answer: Completion) -> str | None:
        words = len(row.output.split())
        found = TOO_SHORT if words < settings.min_words else verdict(answer.text)
        ctx.store.records.put(CHECKS, row, key, (found, words))
        return None

    rows = [record for record, _ in instances(ctx.store, style)]
    done: set[Hashable] = set(ctx.store.records.of(CHECKS))
    return StagePlan(stats, rows, done, settings.request_batch_size, make_requests, record)


def run(ctx: RunContext, stats: StageStats) -> None:
    run_plan(ctx, plan(ctx, stats))


def request_stops(style: str, settings: RequestSettings) -> list[str]:
    return settings.stop if settings.stop is not None else ["\n"]


@dataclass
class LengthCheck:
    """Prepare's check: an instance called too short is dropped."""

    verdicts: Mapping[str, tuple[Any, ...]]
    rank: int = 3  # after the judge and label consistency
    kept: Counter[str] = field(default_factory=Counter)

    def drop(self, record: InstanceRecord) -> Drop | None:
        found = self.verdicts.get(record.id)
        if found is None or found[0] != TOO_SHORT:
            return None
        return drop_instance(record, TOO_SHORT, f"{found[1]} words")

    def warnings(self, dropped: Mapping[str, int], run_dir: Path) -> list[str]:
        return []


def screen(ctx: RunContext) -> LengthCheck | None:
    return LengthCheck(ctx.store.records.of(CHECKS)) if enabled(ctx.config) else None


def numbers(ctx: RunContext) -> dict[str, Any]:
    found = ctx.store.records.of(CHECKS)
    if not enabled(ctx.config) or not found:
        return {}
    short = sum(1 for verdict, _ in found.values() if verdict == TOO_SHORT)
    return {STAGE: {"checked": len(found), "too_short": short}}


def card_lines(config: Config, measured: Mapping[str, Any]) -> list[str]:
    found = measured.get(STAGE)
    if not found:
        return []
    return [
        f"- Length check: {found['too_short']:,} of {found['checked']:,} instances were "
        "called too short by the model and dropped."
    ]


def counts(ctx: RunContext) -> dict[str, int]:
    return {"length_checks": ctx.store.records.count(CHECKS)} if enabled(ctx.config) else {}


def estimate(store: RunStore | None, target: int, fingerprint: dict[str, Any]) -> Estimate:
    if store is None:
        return Estimate(target * 3, "assumed: 3 instances per instruction")
    pending = len(instances(store, "completion")) - store.records.count(CHECKS)
    return Estimate(pending, "one per instance not checked yet")


def fake_answer(text: FakeText, request: Request) -> str:
    return " too short" if text.rng.random() < 0.2 else " long enough"


FLAGS = (
    Flag(
        ("--length-check/--no-length-check",),
        "Ask the model whether each output is long enough; prepare drops the short ones.",
        f"{STAGE}.enabled",
        kind="switch",
    ),
    Flag(
        ("--length-min-words",),
        "Outputs with fewer words are too short without asking (1).",
        f"{STAGE}.min_words",
        kind="int",
        minimum=0,
    ),
)

STAGE_DEF = Stage(
    name=STAGE,
    help="Ask the model whether each instance's output is long enough (off unless --length-check).",
    run=run,
    unit="instances",
    verb="checked",
    settings=LengthCheckSettings,
    flags=FLAGS,
    templates=(TEMPLATE,),
    stops=request_stops,
    runtime_only=frozenset({"enabled"}),
    table=CHECKS,
    counts=counts,
    plan=plan,
    estimate=estimate,
    sample_template=TEMPLATE,
    assumed_output_tokens=3.0,
    fake_answers=(FakeAnswer(TEMPLATE.name, fake_answer, marker=MARKER),),
    screen=screen,
    numbers=numbers,
    card_lines=card_lines,
    enabled=enabled,
)
