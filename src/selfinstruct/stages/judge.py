"""The judge stage (off by default): a model, possibly a stronger one on another server,
reviews every parsed instance with the paper's three questions (valid task? appropriate
input? correct output?) and its A/B/C/D rating, each with a one-sentence reason.

Judgments are stored per instance and per judge (a hash of what the judge's answers depend
on), so changing the judge judges again beside the old judgments and never touches the
generated data. Prepare filters on the current judge's judgments (`prepare.min_rating`,
`prepare.require_yes`)."""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from selfinstruct.config import PROMPT_STYLES, Config, PricingSettings, RequestSettings
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.plan import StagePlan, run_plan
from selfinstruct.engine.stage import Estimate, Stage
from selfinstruct.errors import RunError
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.fake_answers import FakeAnswer, FakeText, prompt_text
from selfinstruct.llm.registry import backend_class, known_backends
from selfinstruct.prompts import Prompt, TemplateSet, TemplateSpec
from selfinstruct.quality.judgment import LINE_LABELS, QUESTIONS, parse_judgment
from selfinstruct.quality.table2 import Judged, QualityTable, quality_table
from selfinstruct.store.run_store import InstanceRecord, RunStore
from selfinstruct.views.tasks import parsed_tasks

STAGE = "judge"
TEMPLATE = TemplateSpec(
    "judge_instance", frozenset({"instruction", "input", "output"}), fewshot=True
)
NO_INPUT = "(none)"
MARKER = "Correct output: is the output a correct and acceptable response"  # in both styles
# Judge settings that override the backend's own section, by the backend setting they set.
OVERRIDES = {"base_url": "base_url", "api_key_env": "api_key_env", "concurrency": "max_concurrency"}
ASSUMED_INSTANCES = 3.0  # per instruction, for --estimate before any instance exists
UNREADABLE_WARNING = 0.1  # warn when this share of the judge's answers cannot be read


@dataclass
class JudgeSettings(RequestSettings):
    """The judge: its backend and model (empty backend: no judge stage), how it is asked,
    where it is served and what it costs. Backend settings left empty come from the
    backend's own section ([openai] ...)."""

    backend: str = ""
    model: str = ""
    prompt_style: str = ""  # empty: the run's
    base_url: str = ""
    api_key_env: str = ""
    concurrency: int | str = 0  # requests in flight ("auto": adaptive); 0: the backend's
    input_per_million: float = 0.0
    output_per_million: float = 0.0
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


def judge_id(fingerprint: dict[str, Any]) -> str:
    """The id a judge's judgments are stored under: a hash of the judge stage's fingerprint
    (the settings its answers depend on)."""
    blob = json.dumps(fingerprint, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def current_judge(ctx: RunContext) -> str:
    """The id of the judge the settings in use name."""
    return judge_id(ctx.fingerprints.get(STAGE, {}))


def judge_name(config: Config) -> str:
    """backend:model of the judge, for people."""
    choice = judge_choice(config)
    return f"{choice.name}:{choice.label()}"


def quality_of_run(store: RunStore, config: Config, judge: str) -> QualityTable | None:
    """The paper's Table 2 from one judge's judgments (None without a judge)."""
    if not enabled(config):
        return None
    judgments = store.judgments(judge)
    if not judgments:
        return None
    labels = store.labels()
    judged, unreadable = [], 0
    for instance_id, found in judgments.items():
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
    texts = {row.id: row.instruction for row in ctx.store.instructions()}
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
        ctx.store.put_judgment(row, judge, key, found)
        if not found.readable:
            stats.notes["unparseable"] += 1  # stored as such; prepare keeps them apart
        return None

    rows = instance_records(ctx.store, ctx.config.prompt_style)
    done: set[Hashable] = set(ctx.store.judgments(judge))
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
    judged = len(store.judgments(judge_id(fingerprint)))
    return Estimate(round(target * per) - judged, f"{per:.1f} instances per instruction so far")


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
    templates=(TEMPLATE,),
    stops=request_stops,
    runtime_only=frozenset(
        {"request_batch_size", *OVERRIDES, "input_per_million", "output_per_million"}
    ),
    records=lambda store: sum(store.judge_counts().values()),
    plan=plan,
    estimate=estimate,
    sample_template=TEMPLATE,
    assumed_output_tokens=80.0,
    fake_answers=(FakeAnswer(TEMPLATE.name, fake_answer, marker=MARKER),),
    enabled=enabled,
    model=judge_choice,
    prompt_style=judge_style,
    pricing=judge_pricing,
    versioned=True,
)
