"""The judge stage (off by default): a model, possibly a stronger one on another server,
reviews every parsed instance with the paper's three questions (valid task? appropriate
input? correct output?) and its A/B/C/D rating, each with a one-sentence reason.

Judgments are stored per instance and per judge (a hash of what the judge's answers depend
on), so changing the judge judges again beside the old judgments and never touches the
generated data. Prepare filters on the current judge's judgments (`prepare.min_rating`,
`prepare.require_yes`)."""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from collections.abc import Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.card.document import code
from selfinstruct.config import PROMPT_STYLES, Config, Flag, PricingSettings, RequestSettings
from selfinstruct.console.stats import StageStats
from selfinstruct.dataset.settings import PrepareSettings
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.plan import StagePlan, run_plan
from selfinstruct.engine.stage import Estimate, Stage, version_id
from selfinstruct.errors import RunError
from selfinstruct.filters.reasons import JUDGE_MISSING, JUDGE_REJECTED, JUDGE_UNPARSEABLE
from selfinstruct.filters.screen import Drop, drop_instance
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.fake_answers import FakeAnswer, FakeText, prompt_text
from selfinstruct.llm.registry import backend_class, known_backends
from selfinstruct.paper import QUESTIONS
from selfinstruct.prompts import NO_INPUT, Prompt, TemplateSet, TemplateSpec
from selfinstruct.quality.judgment import LINE_LABELS, Criteria, Judgment, parse_judgment
from selfinstruct.quality.table2 import Judged, QualityTable, quality_table, table2_markdown
from selfinstruct.store.records import RecordTable, flag_column, flag_value
from selfinstruct.store.run_store import InstanceRecord, RunStore
from selfinstruct.views.tasks import parsed_tasks

STAGE = "judge"
TEMPLATE = TemplateSpec(
    "judge_instance", frozenset({"instruction", "input", "output"}), fewshot=True
)
MARKER = "Correct output: is the output a correct and acceptable response"  # in both styles
# Judge settings that override the backend's own section, by the backend setting they set.
OVERRIDES = {"base_url": "base_url", "api_key_env": "api_key_env", "concurrency": "max_concurrency"}
ASSUMED_INSTANCES = 3.0  # per instruction, for --estimate before any instance exists
UNREADABLE_WARNING = 0.1  # warn when this share of the judge's answers cannot be read
NAMES = "judge_names"  # the store's meta: each judge's name by version
# Its records: the answers to the paper's three questions (1 yes, 0 no, NULL unreadable), the
# rating and the reasons (JSON), per instance and judge (the version: see `current_judge`).
JUDGMENTS = RecordTable(
    "judgments",
    ("instruction_ok", "input_ok", "output_ok", "rating", "reasons"),
    migration="0004_quality",
    version="judge",
)


@dataclass
class JudgeSettings(RequestSettings):
    """The judge: its backend and model (empty backend: no judge stage), how it is asked,
    where it is served and what it costs. Backend settings left empty come from the
    backend's own section ([openai] ...)."""

    backend: str = ""  # the judge's backend; empty: no judge
    model: str = ""  # the judge's model (--judge BACKEND:MODEL)
    prompt_style: str = ""  # empty: the run's
    base_url: str = ""  # empty: the backend's section ([openai] base_url)
    api_key_env: str = ""  # empty: the backend's section
    concurrency: int | str = 0  # requests in flight ("auto": adaptive); 0: the backend's
    input_per_million: float = 0.0  # the judge's prices (0: the run's, when it is the run's model)
    output_per_million: float = 0.0  # the judge's prices (0: the run's, when it is the run's model)
    max_tokens: int = 200

    def problems(self) -> Iterator[tuple[str, str]]:
        yield from super().problems()
        if self.backend and self.backend not in known_backends():
            yield "backend", f"unknown backend '{self.backend}' (known: {known_backends()})"
        if self.prompt_style and self.prompt_style not in PROMPT_STYLES:
            yield "prompt_style", f"must be one of {', '.join(PROMPT_STYLES)} or empty"
        if isinstance(self.concurrency, str):
            if self.concurrency != "auto":
                yield "concurrency", "must be a number or 'auto'"
        elif self.concurrency < 0:
            yield "concurrency", "must be >= 0 (0: the backend's setting)"
        for name in ("input_per_million", "output_per_million"):
            if getattr(self, name) < 0:
                yield name, "must be >= 0"
        if self.backend in known_backends():
            if backend_class(self.backend).needs_model and not self.model:
                yield (
                    "model",
                    f"the {self.backend} backend needs a model: --judge {self.backend}:MODEL",
                )
            yield from self._overrides_taken()

    def _overrides_taken(self) -> Iterator[tuple[str, str]]:
        settings = backend_class(self.backend).Settings
        fields = {f.name for f in dataclasses.fields(settings)} if settings else set()
        for name, target in OVERRIDES.items():
            if getattr(self, name) and target not in fields:
                yield name, f"the {self.backend} backend has no {target} setting"


def request_stops(style: str, settings: RequestSettings) -> list[str]:
    """Configured stops, else (completion) the next example, which small models go on to
    write after their review."""
    if settings.stop is not None:
        return settings.stop
    return ["\nInstruction:"] if style == "completion" else []


def settings_of(config: Config) -> JudgeSettings:
    return config.section(STAGE)


def enabled(config: Config) -> bool:
    return bool(settings_of(config).backend)


def judge_choice(config: Config) -> ModelChoice:
    """The judge's backend and model, its settings section with the judge's overrides (the
    run's own model when no judge is set)."""
    judge = settings_of(config)
    if not judge.backend:
        return ModelChoice.of(config.backend, config.model, config.sections)
    base = ModelChoice.of(judge.backend, judge.model, config.sections)
    changes = {target: getattr(judge, name) for name, target in OVERRIDES.items()}
    changes = {k: v for k, v in changes.items() if v}
    if not changes or base.settings is None:
        return base
    return ModelChoice(base.backend, base.model, dataclasses.replace(base.settings, **changes))


def judge_style(config: Config) -> str:
    return settings_of(config).prompt_style or config.prompt_style


def judge_pricing(config: Config) -> PricingSettings:
    """The judge's prices; the run's when the judge is the run's own model."""
    judge = settings_of(config)
    if judge.input_per_million or judge.output_per_million:
        return PricingSettings(judge.input_per_million, judge.output_per_million)
    same = (
        judge_choice(config).cache_identity()
        == ModelChoice.of(config.backend, config.model, config.sections).cache_identity()
    )
    return config.pricing if same else PricingSettings()


def current_judge(ctx: RunContext) -> str:
    """The id the judgments of the judge the settings in use are stored under: the judge
    stage's version (a hash of the settings its answers depend on)."""
    return STAGE_DEF.version(ctx)


def judgments(store: RunStore, judge: str) -> dict[str, Judgment]:
    """One judge's judgments by instance id ("<instruction id>.<position>")."""
    return {
        instance: Judgment(
            {q: flag_value(v) for q, v in zip(QUESTIONS, values[:3], strict=True)},
            values[3],
            json.loads(values[4]),
        )
        for instance, values in store.records.of(JUDGMENTS, judge).items()
    }


def put_judgment(
    store: RunStore, record: InstanceRecord, judge: str, key: str, found: Judgment
) -> None:
    answers = [flag_column(found.answers.get(q)) for q in QUESTIONS]
    reasons = json.dumps(found.reasons, ensure_ascii=False, sort_keys=True)
    store.records.put(JUDGMENTS, record, key, (*answers, found.rating, reasons), version=judge)


def remember_name(ctx: RunContext) -> None:
    """Keep the current judge's name by its version (`judge_names` in the store's meta), so
    its judgments are named after another judge has taken over."""
    names = judge_names(ctx.store)
    version, name = current_judge(ctx), judge_name(ctx.config)
    if names.get(version) != name and not ctx.store.readonly:
        with ctx.store.transaction():
            ctx.store.set_meta(NAMES, {**names, version: name})


def judge_names(store: RunStore) -> dict[str, str]:
    """The name of each judge the run has had, by version (judges before names were kept
    are missing)."""
    return dict(store.get_meta(NAMES) or {})


def judge_name(config: Config) -> str:
    """backend:model of the judge, for people."""
    choice = judge_choice(config)
    return f"{choice.name}:{choice.label()}"


def quality_of_run(store: RunStore, config: Config, judge: str) -> QualityTable | None:
    """The paper's Table 2 from one judge's judgments (None without a judge)."""
    if not enabled(config):
        return None
    found_judgments = judgments(store, judge)
    if not found_judgments:
        return None
    labels = store.labels.all()
    judged, unreadable = [], 0
    for instance_id, found in found_judgments.items():
        if not found.readable:
            unreadable += 1
            continue
        is_clf = labels.get(int(instance_id.split(".")[0]), ("", False))[1]
        answers = {q: bool(found.answers[q]) for q in QUESTIONS}
        judged.append(Judged(is_clf, answers, found.rating or ""))
    return quality_table(judged, unreadable)


def instance_records(store: RunStore, style: str) -> list[InstanceRecord]:
    """Every parsed instance of the run, in instruction and position order."""
    return [record for task in parsed_tasks(store, style) for record in task.instances]


def run(ctx: RunContext, stats: StageStats) -> None:
    if not enabled(ctx.config):
        raise RunError(
            "no judge is set: give --judge BACKEND[:MODEL] (e.g. --judge openai:gpt-4o-mini) "
            "or a [judge] section with backend and model"
        )
    run_plan(ctx, plan(ctx, stats))
    describe(ctx, stats)


def describe(ctx: RunContext, stats: StageStats) -> None:
    """The judge's Table 2 of the run, and a warning when many answers were unreadable."""
    remember_name(ctx)
    table = quality_of_run(ctx.store, ctx.config, current_judge(ctx))
    if table is None:
        return
    stats.details += table.format().splitlines()
    judged = table.groups["all"]["instruction"].n + table.unparseable
    if judged and table.unparseable / judged >= UNREADABLE_WARNING:
        stats.warnings.append(
            f"{table.unparseable} of {judged} judge answers ({table.unparseable / judged:.0%}) "
            "could not be read; prepare drops those instances (judge_unparseable) unless "
            "prepare.keep_unjudged is set. Try a stronger judge, a larger judge.max_tokens or "
            "the other --judge-prompt-style."
        )


def plan(ctx: RunContext, stats: StageStats) -> StagePlan[InstanceRecord]:
    settings = settings_of(ctx.config)
    style = judge_style(ctx.config)
    judge = current_judge(ctx)
    texts = {row.id: row.instruction for row in ctx.store.pool.instructions()}
    stop = request_stops(style, settings)

    def make_requests(
        window: Sequence[InstanceRecord], batch: Sequence[InstanceRecord]
    ) -> list[Request]:
        requests = []
        for record in batch:
            instruction = texts[record.instruction_id]
            prompt = review_prompt(ctx.templates, style, instruction, record.input, record.output)
            requests.append(
                ctx.request(STAGE, record.id, prompt, settings, stop, task=TEMPLATE.name)
            )
        return requests

    def record(row: InstanceRecord, key: str, answer: Completion) -> str | None:
        found = parse_judgment(answer.text, style)
        put_judgment(ctx.store, row, judge, key, found)
        if not found.readable:
            stats.notes["unparseable"] += 1  # stored as such; prepare keeps them apart
        return None

    rows = instance_records(ctx.store, ctx.config.prompt_style)
    done: set[Hashable] = set(ctx.store.records.of(JUDGMENTS, judge))
    return StagePlan(stats, rows, done, settings.request_batch_size, make_requests, record)


def review_prompt(
    templates: TemplateSet, style: str, instruction: str, input: str, output: str
) -> Prompt:
    """The judge's prompt for one instance."""
    return templates.render(
        style,
        TEMPLATE,
        instruction=instruction.strip(),
        input=input.strip() or NO_INPUT,
        output=output.strip(),
    )


def estimate(store: RunStore | None, target: int, fingerprint: dict[str, Any]) -> Estimate:
    """One request per instance: the instances per instruction seen so far (else an
    assumed number), for the target's instructions, less those this judge has judged."""
    if store is None or not store.count("parsed_instances"):
        return Estimate(round(target * ASSUMED_INSTANCES), f"{ASSUMED_INSTANCES:g} per instruction")
    answered = store.count("instances")
    per = store.count("parsed_instances") / max(answered, 1)
    judged = len(store.records.of(JUDGMENTS, version_id(fingerprint)))
    return Estimate(round(target * per) - judged, f"{per:.1f} instances per instruction so far")


@dataclass
class JudgeCheck:
    """Prepare's check on the current judge's verdicts (prepare.min_rating,
    prepare.require_yes); an instance without a readable judgment is dropped, or kept and
    counted with prepare.keep_unjudged."""

    judgments: Mapping[str, Judgment]
    criteria: Criteria
    keep_unjudged: bool = False
    rank: int = 1  # before label consistency: the judge's verdict is the broader one
    kept: Counter[str] = field(default_factory=Counter)

    def drop(self, record: InstanceRecord) -> Drop | None:
        judgment = self.judgments.get(record.id)
        if judgment is None or not judgment.readable:
            reason = JUDGE_MISSING if judgment is None else JUDGE_UNPARSEABLE
            if self.keep_unjudged:
                self.kept[reason] += 1
                return None
            why = "not judged by the current judge" if judgment is None else "answer unreadable"
            return drop_instance(record, reason, why)
        failures = self.criteria.failures(judgment)
        if not failures:
            return None
        why = "; ".join(
            f"{said} ({judgment.reasons[key]})" if judgment.reasons.get(key) else said
            for key, said in failures
        )
        return drop_instance(record, JUDGE_REJECTED, why)

    def warnings(self, dropped: Mapping[str, int], run_dir: Path) -> list[str]:
        """Warnings when instances were dropped for want of a readable judgment."""
        found = []
        if missing := dropped.get(JUDGE_MISSING, 0):
            found.append(
                f"{missing} instances have no judgment by the current judge (judge_missing): "
                f"run 'selfinstruct judge --out {run_dir}' first, or keep them with "
                "--set prepare.keep_unjudged=true"
            )
        if unreadable := dropped.get(JUDGE_UNPARSEABLE, 0):
            found.append(
                f"{unreadable} instances were dropped because the judge's answer could not be "
                "read (judge_unparseable): a stronger judge, a larger judge.max_tokens or the "
                "other prompt style may help; --set prepare.keep_unjudged=true keeps them"
            )
        return found


def screen(ctx: RunContext) -> JudgeCheck | None:
    """The check prepare applies, when a judge is set and prepare asks something of it."""
    settings: PrepareSettings = ctx.config.section("prepare")
    criteria = Criteria(settings.min_rating, tuple(settings.require_yes))
    if not enabled(ctx.config) or not criteria.active:
        return None
    return JudgeCheck(judgments(ctx.store, current_judge(ctx)), criteria, settings.keep_unjudged)


def numbers(ctx: RunContext) -> dict[str, Any]:
    """The paper's Table 2 from the current judge's answers (with the judge's name)."""
    table = quality_of_run(ctx.store, ctx.config, current_judge(ctx))
    if table is None:
        return {}
    return {"quality": {"judge": judge_name(ctx.config), **table.as_dict()}}


def card_lines(config: Config, found: Mapping[str, Any]) -> list[str]:
    """What the dataset card says of the judge: who reviewed, what prepare kept, Table 2."""
    quality = found.get("quality")
    if not quality:
        return [
            "- No model judged the instances (the paper's review questions and rating for "
            "every instance: `selfinstruct judge --judge BACKEND[:MODEL]`)."
        ]
    prepare: PrepareSettings = config.section("prepare")
    criteria = f"rating {prepare.min_rating} or better" if prepare.min_rating else ""
    if prepare.require_yes:
        criteria += (" and " if criteria else "") + "yes to " + ", ".join(prepare.require_yes)
    return [
        f"- Every instance was reviewed by {code(quality['judge'])} with the paper's three "
        f"questions and its A-D rating; prepare kept {criteria or 'every judged instance'}. "
        "The review of all judged instances (before that filter; 95% intervals):",
        "",
        table2_markdown(quality),
    ]


def counts(ctx: RunContext) -> dict[str, int]:
    """The current judge's judgments (with a judge set)."""
    if not enabled(ctx.config):
        return {}
    return {"judgments": len(ctx.store.records.of(JUDGMENTS, current_judge(ctx)))}


def judge_flag(value: str) -> dict[str, Any]:
    """--judge BACKEND[:MODEL] ('none': no judge)."""
    backend, _, model = value.strip().partition(":")
    backend = "" if backend.lower() in ("", "none") else backend
    return {f"{STAGE}.backend": backend, f"{STAGE}.model": model if backend else ""}


FLAGS = (
    Flag(
        ("--judge",),
        "Judge every instance with this model (e.g. openai:gpt-4o-mini, embedded) and filter "
        "on its verdicts in prepare (prepare.min_rating, default B); 'none' turns a run's "
        "judge off.",
        metavar="BACKEND[:MODEL]",
        settings=judge_flag,
    ),
    Flag(
        ("--judge-base-url",),
        "The judge's OpenAI-compatible server (default: the [openai] section's).",
        f"{STAGE}.base_url",
        sending=True,
    ),
    Flag(
        ("--judge-api-key-env",),
        "Environment variable holding the judge's API key (never stored).",
        f"{STAGE}.api_key_env",
        metavar="NAME",
        sending=True,
    ),
    Flag(
        ("--judge-concurrency",),
        "The judge's requests kept in flight (default: its backend's setting).",
        f"{STAGE}.concurrency",
        kind="count",
        words=("auto",),
        metavar="N|auto",
        sending=True,
    ),
    Flag(
        ("--judge-prompt-style", "--judge-style"),
        "How the judge is asked (default: the run's prompt style).",
        f"{STAGE}.prompt_style",
        kind="choice",
        choices=PROMPT_STYLES,
    ),
)


def fake_answer(text: FakeText, request: Request) -> str:
    """Mostly yes and a good rating; now and then a flaw found, or an answer in another form
    (which the stage counts as unparseable)."""
    rng = text.rng
    if rng.random() < 0.03:
        return f"I think this example is fine. {text.sentence()}"
    answers = {q: rng.random() < (0.95, 0.85, 0.7)[i] for i, q in enumerate(QUESTIONS)}
    rating = "AB"[rng.random() < 0.3] if all(answers.values()) else rng.choice("BCD")
    lines = [
        f"{LINE_LABELS[q]}: {'yes' if answers[q] else 'no'} | {text.sentence()}" for q in QUESTIONS
    ]
    lines.append(f"{LINE_LABELS['rating']}: {rating} | {text.sentence()}")
    answer = "\n".join(lines)
    if not request.is_chat and "Valid task:" in prompt_text(request)[-20:]:
        answer = answer.removeprefix(f"{LINE_LABELS['instruction']}:")
    return answer


STAGE_DEF = Stage(
    name=STAGE,
    help="Judge every instance: the paper's three review questions and an A/B/C/D rating "
    "(off unless a judge is set, --judge BACKEND[:MODEL]).",
    run=run,
    unit="instances",
    verb="judged",
    settings=JudgeSettings,
    flags=FLAGS,
    templates=(TEMPLATE,),
    stops=request_stops,
    runtime_only=frozenset(
        {"request_batch_size", *OVERRIDES, "input_per_million", "output_per_million"}
    ),
    table=JUDGMENTS,
    counts=counts,
    plan=plan,
    describe=describe,
    estimate=estimate,
    sample_template=TEMPLATE,
    assumed_output_tokens=80.0,
    fake_answers=(FakeAnswer(TEMPLATE.name, fake_answer, marker=MARKER),),
    screen=screen,
    numbers=numbers,
    card_lines=card_lines,
    enabled=enabled,
    model=judge_choice,
    prompt_style=judge_style,
    pricing=judge_pricing,
    versioned=True,
)
