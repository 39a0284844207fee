"""Stage 4: filter the instance records and write the fine-tuning data and exports (the
builder is dataset/; the run writes the dataset card and the report after this stage)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from selfinstruct.config import Flag
from selfinstruct.console.stats import StageStats
from selfinstruct.dataset.build import PreparedData, build
from selfinstruct.dataset.outputs import describe_screen, write_outputs, write_quality_drops
from selfinstruct.dataset.settings import STAGE, PrepareSettings, check_files, decontaminator_for
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.stage import Stage
from selfinstruct.errors import EmptyDatasetError
from selfinstruct.filters.screen import Screen
from selfinstruct.stages import review
from selfinstruct.stages.bootstrap.provenance import instruction_provenance
from selfinstruct.views.funnel import (
    empty_dataset_message,
    prepared_counts,
    run_funnel,
    shortfall_warning,
)
from selfinstruct.views.tasks import parsed_tasks


def screen_for(ctx: RunContext) -> Screen:
    """The quality checks the run's settings turn on: decontamination, and the checks the
    run's stages declare on their records."""
    checks = [check for make in ctx.screens if (check := make(ctx)) is not None]
    return Screen(decontaminator=decontaminator_for(ctx.config), checks=checks)


def prepared_data(
    ctx: RunContext,
    stats: StageStats,
    *,
    provenance: bool | None = None,
    screen: Screen | None = None,
) -> PreparedData:
    """The dataset of a run (open for writing or as a read-only view); its examples carry
    their provenance when asked (None: as the prepare.provenance setting says)."""
    tasks = parsed_tasks(ctx.store, ctx.config.prompt_style)
    settings: PrepareSettings = ctx.config.section(STAGE)
    wanted = settings.provenance if provenance is None else provenance
    sources = instruction_provenance(ctx.store, ctx.config, ctx.seeds) if wanted else None
    screen = screen or screen_for(ctx)
    return build(tasks, ctx.seeds, ctx.config, ctx.templates, stats, sources, screen)


def run(ctx: RunContext, stats: StageStats) -> PreparedData:
    """Stage 4 from the store. A dataset with no instance is an error (nothing is written);
    one far smaller than asked for gets a warning."""
    review.check_judge(ctx)
    screen = screen_for(ctx)
    data = prepared_data(ctx, stats, screen=screen)
    stats.warnings += screen.warnings(stats.dropped, ctx.store.run_dir)
    with ctx.store.transaction():
        ctx.store.set_meta("prepared", prepared_counts(stats.as_dict()))
    funnel = run_funnel(ctx.store, ctx.config.num_instructions, ctx.config.prompt_style)
    if not data.generated:
        raise EmptyDatasetError(empty_dataset_message(funnel))
    stats.outputs += write_outputs(ctx.store.run_dir, data)
    # Written even when empty (a rerun that drops nothing replaces an older run's drops),
    # listed among the files written only when it holds some.
    drops = write_quality_drops(ctx.store, data.screened)
    if data.screened:
        stats.outputs.append(drops)
        stats.details += describe_screen(data.screened)
    else:
        stats.details.append(f"no quality drops ({drops.name} is empty)")
    stats.details += review.summary_lines(review.numbers(ctx))
    if warning := shortfall_warning(funnel):
        stats.warnings.append(warning)
    return data


def decontamination_files(files: Any) -> dict[str, Any]:
    """--decontaminate FILE...: decontamination on, against these files."""
    return {
        f"{STAGE}.decontaminate": True,
        f"{STAGE}.decontaminate_files": [str(Path(path).resolve()) for path in files],
    }


FLAGS = (
    Flag(
        ("--include-seed-tasks/--no-include-seed-tasks",),
        "Add the seed tasks' instances to the fine-tuning data.",
        f"{STAGE}.include_seed_tasks",
        kind="switch",
    ),
    Flag(
        ("--max-instances-per-task",),
        "Cap on instances per task in the fine-tuning data (5).",
        f"{STAGE}.max_instances_per_task",
        kind="int",
        minimum=1,
    ),
    Flag(
        ("--decontaminate",),
        "Evaluation tasks (the paper's user-oriented JSONL) to decontaminate against, "
        "repeatable (default: our packaged evaluation tasks).",
        kind="path",
        multiple=True,
        metavar="FILE",
        settings=decontamination_files,
    ),
)

STAGE_DEF = Stage(
    name=STAGE,
    help="Stage 4: filter the instances and write fine-tuning data and exports.",
    run=run,
    unit="instances",
    settings=PrepareSettings,
    flags=FLAGS,
    writes_dataset=True,
    generates=False,
    check_inputs=check_files,
)
