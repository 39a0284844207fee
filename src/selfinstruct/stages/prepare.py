"""Stage 4: filter the instance records and format the fine-tuning data."""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import Config
from selfinstruct.errors import EmptyDatasetError
from selfinstruct.exporters import FORMATS, Example, PromptCompletion
from selfinstruct.exporters.card import card_problems
from selfinstruct.exporters.jsonl import write_jsonl
from selfinstruct.exporters.records import Provenance
from selfinstruct.filters.instance import filter_instances
from selfinstruct.prompts import TemplateSet
from selfinstruct.reporting.funnel import (
    empty_dataset_message,
    prepared_counts,
    run_funnel,
    shortfall_warning,
)
from selfinstruct.reporting.stats import StageStats
from selfinstruct.seeds.task import SeedTask
from selfinstruct.stages.context import RunContext
from selfinstruct.stages.dataset_card import write_run_card
from selfinstruct.stages.finetune_format import augment_input, encode
from selfinstruct.stages.parse import ParsedTask, parsed_tasks
from selfinstruct.stages.provenance import instruction_provenance, seed_provenance
from selfinstruct.stages.stage import Stage

STAGE = "prepare"
FINETUNE_DIR = "finetuning_data"
EXPORT_DIR = "exports"


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

    def problems(self) -> Any:
        if self.max_instances_per_task < 1:
            yield "max_instances_per_task", "must be >= 1"
        if not 0.0 <= self.field_removal_probability <= 1.0:
            yield "field_removal_probability", "must be between 0 and 1"
        yield from card_problems(self.license, self.language, self.dataset_name)


@dataclass
class PreparedData:
    generated: list[Example] = field(default_factory=list)
    training: list[Example] = field(default_factory=list)
    encoded: list[PromptCompletion] = field(default_factory=list)

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
) -> PreparedData:
    """The dataset; with `provenance` (by instruction id) its examples carry their sources."""
    settings: PrepareSettings = config.section(STAGE)
    rng = random.Random(f"{config.random_seed}:{STAGE}")
    data = PreparedData()
    for task in tasks:
        if settings.classification_tasks_only and not task.is_classification:
            stats.lose("tasks", "not_classification")
            continue
        pairs = task.pairs
        if not pairs:
            stats.lose("tasks", "unparseable")
        pairs = filter_instances(pairs, stats.dropped)
        if len(pairs) > settings.max_instances_per_task:
            stats.drop("over_task_cap", len(pairs) - settings.max_instances_per_task)
            pairs = rng.sample(pairs, settings.max_instances_per_task)
        source = provenance[task.instruction_id] if provenance is not None else None
        data.generated.extend(Example(task.instruction, i, o, source) for i, o in pairs)
    data.training = list(data.generated)
    if settings.include_seed_tasks:
        data.training += [
            Example(
                t.instruction,
                x.input,
                x.output,
                seed_provenance(t) if provenance is not None else None,
            )
            for t in seeds
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
    return build(tasks, ctx.seeds, ctx.config, ctx.templates, stats, sources)


def run(ctx: RunContext, stats: StageStats) -> None:
    """Stage 4 from the store. A dataset with no instance is an error (nothing is written);
    one far smaller than asked for gets a warning."""
    data = prepared_data(ctx, stats)
    with ctx.store.transaction():
        ctx.store.set_meta("prepared", prepared_counts(stats.as_dict()))
    funnel = run_funnel(ctx.store, ctx.config.num_instructions, ctx.config.prompt_style)
    if not data.generated:
        raise EmptyDatasetError(empty_dataset_message(funnel))
    stats.outputs += write_outputs(ctx.store.run_dir, data)
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
)
