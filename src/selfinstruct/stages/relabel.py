"""Label consistency (off by default; `relabel.enabled = true` or --relabel): the generator
labels each input of a classification task the ordinary way (input first, choosing among the
task's labels), and prepare drops the instances whose label disagrees with the output-first
one as `label_disagrees`. Answers naming no label, or several, are unreadable: counted and
kept, never guessed."""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import Config, Flag, RequestSettings
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.plan import StagePlan, run_plan
from selfinstruct.engine.stage import Estimate, Stage
from selfinstruct.errors import RunError
from selfinstruct.filters.reasons import LABEL_DISAGREES
from selfinstruct.filters.screen import Drop, drop_instance
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.fake_answers import FakeAnswer, FakeText, prompt_text
from selfinstruct.prompts import NO_INPUT, TemplateSpec
from selfinstruct.quality.agreement import Share
from selfinstruct.quality.consistency import agrees, label_set
from selfinstruct.store.records import RecordTable, flag_column, flag_value
from selfinstruct.store.run_store import InstanceRecord, RunStore
from selfinstruct.views.tasks import ParsedTask, parsed_tasks

STAGE = "relabel"
TEMPLATE = TemplateSpec("relabel", frozenset({"instruction", "labels", "input"}))
UNREADABLE = "unreadable"
ASSUMED_CLASSIFICATION = 0.25  # share of classification tasks, for --estimate before any label
ASSUMED_INSTANCES = 3
# Its records: the input-first label of each instance asked about, and whether it agrees with
# the output-first one (1, 0; NULL: unreadable).
RELABELS = RecordTable("relabels", ("answer", "agrees"), migration="0004_quality")


@dataclass
class RelabelSettings(RequestSettings):
    """Label consistency of classification instances (asks the run's model)."""

    enabled: bool = False  # run it (--relabel), and drop the instances whose labels disagree
    max_tokens: int = 16


def enabled(config: Config) -> bool:
    return bool(config.section(STAGE).enabled)


def request_stops(style: str, settings: RequestSettings) -> list[str]:
    return settings.stop if settings.stop is not None else ["\n"]


UNCHECKED = "relabel_unchecked"  # prepare's note on instances kept without an answer


def classification_tasks(store: RunStore, style: str) -> list[ParsedTask]:
    """The classification tasks with at least two labels among their instances (with one,
    the model could only agree or name no label: there is nothing to check)."""
    return [
        task
        for task in parsed_tasks(store, style)
        if task.is_classification and len(label_set([r.output for r in task.instances])) >= 2
    ]


def run(ctx: RunContext, stats: StageStats) -> None:
    if not enabled(ctx.config):
        raise RunError(
            "label consistency is off: give --relabel (or set relabel.enabled = true), "
            "so that prepare also uses its answers"
        )
    run_plan(ctx, plan(ctx, stats))
    describe(ctx, stats)


def describe(ctx: RunContext, stats: StageStats) -> None:
    stats.details.append(describe_agreement(ctx.store))


def plan(ctx: RunContext, stats: StageStats) -> StagePlan[InstanceRecord]:
    settings: RelabelSettings = ctx.config.section(STAGE)
    style = ctx.config.prompt_style
    tasks = classification_tasks(ctx.store, style)
    by_id = {task.instruction_id: task for task in tasks}
    labels = {task.instruction_id: label_set([r.output for r in task.instances]) for task in tasks}
    stop = request_stops(style, settings)

    def make_requests(
        window: Sequence[InstanceRecord], batch: Sequence[InstanceRecord]
    ) -> list[Request]:
        requests = []
        for record in batch:
            prompt = ctx.templates.render(
                style,
                TEMPLATE,
                instruction=by_id[record.instruction_id].instruction.strip(),
                labels=", ".join(labels[record.instruction_id]),
                input=record.input.strip() or NO_INPUT,
            )
            requests.append(
                ctx.request(STAGE, record.id, prompt, settings, stop, task=TEMPLATE.name)
            )
        return requests

    def record(row: InstanceRecord, key: str, answer: Completion) -> str | None:
        verdict = agrees(answer.text, row.output, labels[row.instruction_id])
        ctx.store.records.put(RELABELS, row, key, (answer.text, flag_column(verdict)))
        if verdict is None:
            stats.notes[UNREADABLE] += 1  # kept: an unreadable answer is no disagreement
        return None

    rows = [record for task in tasks for record in task.instances]
    done: set[Hashable] = set(ctx.store.records.of(RELABELS))
    return StagePlan(stats, rows, done, settings.request_batch_size, make_requests, record)


def relabels(store: RunStore) -> dict[str, tuple[str, bool | None]]:
    """The input-first label of each instance asked about: (answer, agrees), by id."""
    return {
        instance: (answer, flag_value(agrees))
        for instance, (answer, agrees) in store.records.of(RELABELS).items()
    }


def agreement(store: RunStore) -> dict[str, Any]:
    """How often the input-first label agrees with the output-first one: over readable
    answers, with a 95% interval; unreadable answers counted apart."""
    verdicts = [agreed for _, agreed in relabels(store).values()]
    readable = [v for v in verdicts if v is not None]
    share = Share(sum(readable), len(readable))
    return {**share.as_dict(), "unreadable": len(verdicts) - len(readable)}


def describe_agreement(store: RunStore) -> str:
    found = agreement(store)
    if not found["n"]:
        return f"label agreement: no readable answer ({found['unreadable']} unreadable)"
    return (
        f"label agreement: {found['percent']:.1f}% [{found['low']:.1f}, {found['high']:.1f}] "
        f"({found['yes']} of {found['n']} readable answers agree with the output-first "
        f"label; {found['unreadable']} unreadable, kept)"
    )


def estimate(store: RunStore | None, target: int, fingerprint: dict[str, Any]) -> Estimate:
    """One request per instance of a classification task not asked about yet."""
    if store is None or not store.count("parsed_instances"):
        assumed = round(target * ASSUMED_CLASSIFICATION * ASSUMED_INSTANCES)
        return Estimate(assumed, "assumed: a quarter classification tasks, 3 instances each")
    pending = sum(len(t.instances) for t in classification_tasks(store, "completion"))
    return Estimate(pending - store.records.count(RELABELS), "one per classification instance")


@dataclass
class RelabelCheck:
    """Prepare's check on label consistency: an instance whose input-first label disagrees
    with its output-first one is dropped (an unreadable answer is no disagreement)."""

    relabels: Mapping[str, tuple[str, bool | None]]
    asked: frozenset[str] = frozenset()  # the instances relabel asks about
    rank: int = 2  # after the judge's verdict
    kept: Counter[str] = field(default_factory=Counter)

    def drop(self, record: InstanceRecord) -> Drop | None:
        if record.id in self.asked and record.id not in self.relabels:
            self.kept[UNCHECKED] += 1  # its request failed, or relabel has not run on it
            return None
        answer, agrees = self.relabels.get(record.id, ("", None))
        if agrees is not False:
            return None
        shown = " ".join(answer.split())[:80]
        detail = f"output-first {record.output!r}, input-first {shown!r}"
        return drop_instance(record, LABEL_DISAGREES, detail)

    def warnings(self, dropped: Mapping[str, int], run_dir: Path) -> list[str]:
        """A warning when instances relabel should have checked have no answer: they are
        kept unchecked (counted as relabel_unchecked_kept)."""
        unchecked = self.kept[UNCHECKED]
        if not unchecked:
            return []
        return [
            f"{unchecked} classification instances have no input-first label (their relabel "
            "requests failed, or relabel has not run on them): they were kept unchecked; "
            f"'selfinstruct relabel --run {run_dir}' asks again"
        ]


def screen(ctx: RunContext) -> RelabelCheck | None:
    if not enabled(ctx.config):
        return None
    tasks = classification_tasks(ctx.store, ctx.config.prompt_style)
    asked = frozenset(record.id for task in tasks for record in task.instances)
    return RelabelCheck(relabels(ctx.store), asked)


def numbers(ctx: RunContext) -> dict[str, Any]:
    """The label agreement, once some instance was asked about."""
    store = ctx.store
    if not enabled(ctx.config) or not store.records.count(RELABELS):
        return {}
    return {"label_agreement": agreement(store)}


def card_lines(config: Config, found: Mapping[str, Any]) -> list[str]:
    agreement = found.get("label_agreement")
    if not agreement or not agreement["n"]:
        return []
    return [
        f"- Label consistency: the model's input-first label agreed with the output-first one "
        f"for {agreement['percent']:.1f}% of {agreement['n']:,} classification instances; "
        "those that disagreed were dropped."
    ]


def counts(ctx: RunContext) -> dict[str, int]:
    if not enabled(ctx.config) or not ctx.store.records.has(RELABELS):
        return {}
    return {"relabels": ctx.store.records.count(RELABELS)}


FLAGS = (
    Flag(
        ("--relabel/--no-relabel",),
        "Label consistency: the model labels each classification input again, input first; "
        "prepare drops the instances whose labels disagree.",
        f"{STAGE}.enabled",
        kind="switch",
    ),
)


def fake_answer(text: FakeText, request: Request) -> str:
    """One of the listed labels (so agreement is a matter of chance), now and then a
    sentence naming none."""
    found = [line for line in prompt_text(request).splitlines() if line.startswith("Labels:")]
    options = [x.strip() for x in found[-1].removeprefix("Labels:").split(",")] if found else []
    if not options or text.rng.random() < 0.05:
        return f" {text.sentence()}"
    return f" {text.rng.choice(options)}"


STAGE_DEF = Stage(
    name=STAGE,
    help="Ask the model to label each classification input the ordinary way (input first) "
    "and record whether it agrees (off unless relabel.enabled, --relabel).",
    run=run,
    unit="instances",
    verb="relabelled",
    settings=RelabelSettings,
    flags=FLAGS,
    templates=(TEMPLATE,),
    stops=request_stops,
    runtime_only=frozenset({"enabled"}),
    table=RELABELS,
    counts=counts,
    plan=plan,
    describe=describe,
    estimate=estimate,
    sample_template=TEMPLATE,
    assumed_output_tokens=3.0,
    fake_answers=(FakeAnswer(TEMPLATE.name, fake_answer, marker="answer with the correct label"),),
    screen=screen,
    numbers=numbers,
    card_lines=card_lines,
    enabled=enabled,
)
