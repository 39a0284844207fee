"""Stage 4: filter the instance records and format the fine-tuning data."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.card.document import card_problems
from selfinstruct.card.gather import write_run_card
from selfinstruct.config import Config
from selfinstruct.console.stats import StageStats
from selfinstruct.dataset.finetune_format import augment_input, encode
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.stage import Stage
from selfinstruct.errors import EmptyDatasetError
from selfinstruct.exporters import FORMATS, Example, PromptCompletion
from selfinstruct.exporters.records import Provenance
from selfinstruct.filters.instance import count_verdicts, instance_verdicts
from selfinstruct.filters.screen import Drop, Screen
from selfinstruct.io.atomic import write_jsonl
from selfinstruct.prompts import TemplateSet
from selfinstruct.quality.contamination import Decontaminator, load_eval_tasks
from selfinstruct.quality.judgment import Criteria, check_choices
from selfinstruct.seeds.task import SeedTask
from selfinstruct.similarity.tokenize import get_tokenizer
from selfinstruct.stages import judge, relabel
from selfinstruct.stages.bootstrap.provenance import instruction_provenance, seed_provenance
from selfinstruct.views.funnel import (
    empty_dataset_message,
    prepared_counts,
    run_funnel,
    shortfall_warning,
)
from selfinstruct.views.tasks import ParsedTask, parsed_tasks

STAGE = "prepare"
FINETUNE_DIR = "finetuning_data"
EXPORT_DIR = "exports"
QUALITY_DROPS = "quality_drops.jsonl"


@dataclass
class PrepareSettings:
    """Stage 4: filter and format for fine-tuning."""

    max_instances_per_task: int = 5
    include_seed_tasks: bool = False
    classification_tasks_only: bool = False
    field_removal_probability: float = 0.5
    end_of_text: str = "<|endoftext|>"
    provenance: bool = False  # exports/ records carry instruction_id, seed_ids, machine_ids
    # The dataset card (exports/README.md); none of these changes the data.
    license: str = "unknown"  # a Hub license identifier: cc-by-4.0, apache-2.0, other...
    language: str = "en"
    dataset_name: str = ""  # the card's pretty_name; empty: the run directory's name
    # The run's HTML report (report.html, report.json); `report_verbs`: its verb-noun chart
    # (a spaCy parse of every instruction, when the report extra is installed).
    report: bool = True
    report_verbs: bool = True
    # The judge's verdicts, when a judge is set: the worst rating kept (A best; empty: any)
    # and the questions that must be answered yes (instruction, input, output).
    min_rating: str = "B"
    require_yes: list[str] = field(default_factory=list)
    # Instances without a readable judgment (an unparseable answer, or none yet): dropped
    # (judge_unparseable, judge_missing), or kept and counted apart.
    keep_unjudged: bool = False
    # Decontamination against evaluation tasks (the paper's user-oriented format; none
    # given: our packaged evaluation tasks): an instruction with ROUGE-L above
    # `decontaminate_rouge` to an evaluation instruction, or an instance sharing
    # `decontaminate_ngram` consecutive words with an evaluation task.
    decontaminate: bool = True
    decontaminate_files: list[str] = field(default_factory=list, metadata={"paths": True})
    decontaminate_rouge: float = 0.7
    decontaminate_ngram: int = 13

    def problems(self) -> Any:
        if self.max_instances_per_task < 1:
            yield "max_instances_per_task", "must be >= 1"
        if not 0.0 <= self.field_removal_probability <= 1.0:
            yield "field_removal_probability", "must be between 0 and 1"
        yield from card_problems(self.license, self.language, self.dataset_name)
        yield from check_choices(self.min_rating, self.require_yes)
        if not 0.0 < self.decontaminate_rouge <= 1.0:
            yield "decontaminate_rouge", "must be above 0 and at most 1"
        if self.decontaminate_ngram < 1:
            yield "decontaminate_ngram", "must be >= 1"


@dataclass
class PreparedData:
    generated: list[Example] = field(default_factory=list)
    training: list[Example] = field(default_factory=list)
    encoded: list[PromptCompletion] = field(default_factory=list)
    screened: list[Drop] = field(default_factory=list)  # what the quality screen dropped

    @property
    def task_count(self) -> int:
        """Generated tasks with at least one instance in the data."""
        return len({example.instruction for example in self.generated})


def build(
    tasks: Sequence[ParsedTask],
    seeds: Sequence[SeedTask],
    config: Config,
    templates: TemplateSet,
    stats: StageStats,
    provenance: Mapping[int, Provenance] | None = None,
    screen: Screen | None = None,
) -> PreparedData:
    """The dataset; with `provenance` (by instruction id) its examples carry their sources;
    with a `screen`, its quality checks drop tasks and instances first."""
    settings: PrepareSettings = config.section(STAGE)
    rng = random.Random(f"{config.random_seed}:{STAGE}")
    data = PreparedData()
    screen = screen or Screen()
    considered = [t for t in tasks if not _left_out(t, settings)]
    screen.check_instructions([(t.instruction_id, t.instruction) for t in considered])
    for task in tasks:
        if _left_out(task, settings):
            stats.lose("tasks", "not_classification")
            continue
        if not task.pairs:
            stats.lose("tasks", "unparseable")
        verdicts, drops = task_verdicts(task, screen)
        data.screened += drops
        if drops and drops[0].position is None:
            stats.lose("tasks", drops[0].reason)
        count_verdicts(verdicts, stats.dropped)
        pairs = [pair for pair, v in zip(task.pairs, verdicts, strict=True) if v is None]
        if len(pairs) > settings.max_instances_per_task:
            stats.drop("over_task_cap", len(pairs) - settings.max_instances_per_task)
            pairs = rng.sample(pairs, settings.max_instances_per_task)
        source = provenance[task.instruction_id] if provenance is not None else None
        data.generated.extend(Example(task.instruction, i, o, source) for i, o in pairs)
    stats.notes.update({f"{k}_kept": n for k, n in screen.kept_unjudged.items()})
    data.training = list(data.generated)
    if settings.include_seed_tasks:
        data.training += [
            Example(
                t.instruction,
                x.input,
                x.output,
                seed_provenance(t) if provenance is not None else None,
            )
            for t in clean_seeds(seeds, screen, stats)
            for x in t.instances
        ]
    layouts = templates.finetune_layouts()
    encoded: dict[PromptCompletion, None] = {}
    for example in data.training:
        augmented = Example(
            example.instruction,
            augment_input(example.input, rng, settings.field_removal_probability),
            example.output,
        )
        encoded.setdefault(encode(augmented, layouts, rng, settings.end_of_text))
    stats.lose("examples", "duplicate_prompt_completion", len(data.training) - len(encoded))
    data.encoded = list(encoded)
    rng.shuffle(data.encoded)
    stats.kept = len(data.generated)
    stats.notes["tasks_kept"] = data.task_count
    stats.notes["examples_written"] = len(data.encoded)
    return data


def clean_seeds(seeds: Sequence[SeedTask], screen: Screen, stats: StageStats) -> list[SeedTask]:
    """The seed tasks whose instruction and instances pass decontamination (a seed set may
    hold evaluation tasks too); the others are counted as seed tasks lost."""
    if screen.decontaminator is None:
        return list(seeds)
    matched = screen.decontaminator.instruction_matches([t.instruction for t in seeds])
    kept = []
    for task, match in zip(seeds, matched, strict=True):
        hit = match or next(
            (
                m
                for x in task.instances
                if (m := screen.decontaminator.instance_match(x.input, x.output))
            ),
            None,
        )
        if hit is None:
            kept.append(task)
        else:
            stats.lose("seed tasks", "contaminated")
    return kept


def _left_out(task: ParsedTask, settings: PrepareSettings) -> bool:
    """Whether prepare leaves the task out whole (only classification tasks wanted)."""
    return settings.classification_tasks_only and not task.is_classification


def task_verdicts(task: ParsedTask, screen: Screen) -> tuple[list[str | None], list[Drop]]:
    """Each instance's drop reason before the per-task cap (None: kept), and the quality
    screen's drops with their details: the screen first, then the paper's filters on what
    the screen keeps."""
    whole = screen.task_drop(task.instruction_id)
    if whole is not None:
        return [whole.reason] * len(task.instances), [whole]
    drops = [screen.instance_drop(record) for record in task.instances]
    verdicts: list[str | None] = [drop.reason if drop else None for drop in drops]
    passed = [i for i, reason in enumerate(verdicts) if reason is None]
    for i, reason in zip(passed, instance_verdicts([task.pairs[i] for i in passed]), strict=True):
        verdicts[i] = reason
    return verdicts, [drop for drop in drops if drop is not None]


def write_quality_drops(ctx: RunContext, drops: Sequence[Drop]) -> Path:
    """quality_drops.jsonl: every task and instance the quality screen dropped, with the
    reason and its detail (the evaluation task matched, the judge's reasons...)."""
    texts = {row.id: row.instruction for row in ctx.store.instructions()}
    records = {r.id: r for rs in ctx.store.parsed_instances().values() for r in rs}
    rows = []
    for drop in drops:
        record = records.get(f"{drop.instruction_id}.{drop.position}")
        rows.append(
            {
                "instruction_id": drop.instruction_id,
                "position": drop.position,
                "instruction": texts.get(drop.instruction_id, ""),
                "input": record.input if record else None,
                "output": record.output if record else None,
                "reason": drop.reason,
                "detail": drop.detail,
            }
        )
    path = ctx.store.run_dir / QUALITY_DROPS
    write_jsonl(path, rows)
    return path


def describe_screen(drops: Sequence[Drop]) -> list[str]:
    """Summary lines: the quality screen's drops by reason (whole tasks and instances apart),
    with one example detail each."""
    lines = []
    kinds = Counter((drop.reason, drop.position is None) for drop in drops)
    for (reason, whole), count in sorted(kinds.items(), key=lambda kv: -kv[1]):
        example = next(d for d in drops if d.reason == reason and (d.position is None) == whole)
        unit = "tasks" if whole else "instances"
        lines.append(
            f"{reason}: {count} {unit}, e.g. instruction {example.instruction_id}: {example.detail}"
        )
    return lines


def unjudged_warnings(stats: StageStats, run_dir: Path) -> list[str]:
    """Warnings when instances were dropped for want of a readable judgment."""
    found = []
    missing = stats.dropped.get("judge_missing", 0)
    if missing:
        found.append(
            f"{missing} instances have no judgment by the current judge (judge_missing): run "
            f"'selfinstruct judge --out {run_dir}' first, or keep them with "
            "--set prepare.keep_unjudged=true"
        )
    unreadable = stats.dropped.get("judge_unparseable", 0)
    if unreadable:
        found.append(
            f"{unreadable} instances were dropped because the judge's answer could not be read "
            "(judge_unparseable): a stronger judge, a larger judge.max_tokens or the other "
            "prompt style may help; --set prepare.keep_unjudged=true keeps them"
        )
    return found


def decontaminator_for(config: Config) -> Decontaminator | None:
    """The evaluation tasks to decontaminate against (None: decontamination is off)."""
    settings: PrepareSettings = config.section(STAGE)
    if not settings.decontaminate:
        return None
    tasks = load_eval_tasks([Path(p) for p in settings.decontaminate_files])
    tokenizer = get_tokenizer(config.section("bootstrap").tokenizer)
    return Decontaminator(
        tasks, settings.decontaminate_rouge, settings.decontaminate_ngram, tokenizer
    )


def check_files(config: Config) -> None:
    """The evaluation files decontamination reads exist and are valid (checked up front, so
    a bad one stops a run before it generates anything)."""
    settings: PrepareSettings = config.section(STAGE)
    if settings.decontaminate and settings.decontaminate_files:
        load_eval_tasks([Path(p) for p in settings.decontaminate_files])


def screen_for(ctx: RunContext) -> Screen:
    """The quality checks the run's settings turn on, with what they need from the store."""
    settings: PrepareSettings = ctx.config.section(STAGE)
    screen = Screen(
        decontaminator=decontaminator_for(ctx.config),
        criteria=Criteria(settings.min_rating, tuple(settings.require_yes)),
        keep_unjudged=settings.keep_unjudged,
    )
    if judge.enabled(ctx.config):
        screen.judgments = ctx.store.judgments(judge.current_judge(ctx))
    if relabel.enabled(ctx.config):
        screen.relabels = ctx.store.relabels()
    return screen


def write_outputs(run_dir: Path, data: PreparedData) -> list[Path]:
    """The paper's fine-tuning files and every export format; returns the paths written."""
    ft = run_dir / FINETUNE_DIR
    paths = [
        ft / "all_generated_instances.jsonl",
        ft / f"gpt3_finetuning_data_{len(data.encoded)}.jsonl",
    ]
    write_jsonl(
        paths[0],
        (
            {"instruction": e.instruction, "input": e.input, "output": e.output}
            for e in data.generated
        ),
    )
    for old in ft.glob("gpt3_finetuning_data_*.jsonl"):
        if old != paths[1]:
            old.unlink()
    write_jsonl(paths[1], ({"prompt": r.prompt, "completion": r.completion} for r in data.encoded))
    for filename, writer in FORMATS.values():
        path = run_dir / EXPORT_DIR / filename
        writer(path, data.training, data.encoded)
        paths.append(path)
    return paths


def prepared_data(
    ctx: RunContext, stats: StageStats, *, provenance: bool | None = None
) -> PreparedData:
    """The dataset of a run (open for writing or as a read-only view); its examples carry
    their provenance when asked (None: as the prepare.provenance setting says)."""
    tasks = parsed_tasks(ctx.store, ctx.config.prompt_style)
    settings: PrepareSettings = ctx.config.section(STAGE)
    wanted = settings.provenance if provenance is None else provenance
    sources = instruction_provenance(ctx.store, ctx.config, ctx.seeds) if wanted else None
    return build(tasks, ctx.seeds, ctx.config, ctx.templates, stats, sources, screen_for(ctx))


def run(ctx: RunContext, stats: StageStats) -> None:
    """Stage 4 from the store. A dataset with no instance is an error (nothing is written);
    one far smaller than asked for gets a warning."""
    data = prepared_data(ctx, stats)
    stats.warnings += unjudged_warnings(stats, ctx.store.run_dir)
    with ctx.store.transaction():
        ctx.store.set_meta("prepared", prepared_counts(stats.as_dict()))
    funnel = run_funnel(ctx.store, ctx.config.num_instructions, ctx.config.prompt_style)
    if not data.generated:
        raise EmptyDatasetError(empty_dataset_message(funnel))
    stats.outputs += write_outputs(ctx.store.run_dir, data)
    stats.outputs.append(write_quality_drops(ctx, data.screened))
    stats.details += describe_screen(data.screened)
    stats.outputs.append(write_run_card(ctx, data, stats, ctx.store.run_dir / EXPORT_DIR))
    if warning := shortfall_warning(funnel):
        stats.warnings.append(warning)


def write_run_report(ctx: RunContext, stats: StageStats) -> list[Path]:
    """The run's report (report.html, report.json), once prepare is recorded, unless
    prepare.report is off."""
    settings: PrepareSettings = ctx.config.section(STAGE)
    if not settings.report:
        return []
    from selfinstruct.report.build import write_report

    return [write_report(ctx, verbs=settings.report_verbs).html]


STAGE_DEF = Stage(
    name=STAGE,
    help="Stage 4: filter the instances and write fine-tuning data and exports.",
    run=run,
    unit="instances",
    settings=PrepareSettings,
    after=write_run_report,
    generates=False,
    check=check_files,
)
