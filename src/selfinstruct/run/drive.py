"""Running a stage of an open run: the stage's work, the paper's files it derives, its row in
the run's records, run.json and its summary; after the stage that writes the dataset, the
dataset card and the report. A stage that stops with an error (or Ctrl-C) is recorded and
summarised too, as far as it can be."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from selfinstruct.card.gather import quality_text, write_run_card
from selfinstruct.console.stats import StageStats
from selfinstruct.console.summary import print_summary
from selfinstruct.dataset.build import PreparedData
from selfinstruct.dataset.outputs import EXPORT_DIR
from selfinstruct.dataset.settings import STAGE as PREPARE
from selfinstruct.dataset.settings import PrepareSettings
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.stage import Stage
from selfinstruct.errors import SelfInstructError
from selfinstruct.report import report_line
from selfinstruct.run.run_file import write_run_file
from selfinstruct.stages import registry


def run_stage(ctx: RunContext, stage: Stage) -> StageStats:
    """Run one stage, then write the paper's files it derives, record it in the run and print
    its summary. A stage that stops with an error (or Ctrl-C) does the same first, as far as
    it can, so the error line comes after the counts it refers to."""
    stats = stage.new_stats()
    try:
        produced = stage.run(ctx, stats)
        if stage.writes_dataset and isinstance(produced, PreparedData):
            stats.outputs.append(write_card(ctx, produced, stats))
    except BaseException as exc:
        _finish(ctx, stage, stats, failed=True)
        if isinstance(exc, SelfInstructError):
            for path in _report(ctx, stage):
                print(report_line(path), file=sys.stderr)
        raise
    _finish(ctx, stage, stats, failed=False)
    stats.outputs += _report(ctx, stage)
    return stats


def write_card(ctx: RunContext, data: PreparedData, stats: StageStats) -> Path:
    """exports/README.md for the dataset the stage has just built, with what the run's
    stages measured."""
    numbers = registry.stage_numbers(ctx)
    quality = quality_text(ctx.config, registry.card_lines(ctx.config, numbers))
    return write_run_card(ctx, data, stats, ctx.store.run_dir / EXPORT_DIR, quality)


def _report(ctx: RunContext, stage: Stage) -> list[Path]:
    """The run's report (report.html, report.json) once the stage that writes the dataset is
    recorded, also after it stopped with an error of ours (unless prepare.report is off). A
    failure here is a warning: the stage's work is saved."""
    settings: PrepareSettings = ctx.config.section(PREPARE)
    if not stage.writes_dataset or not settings.report:
        return []
    from selfinstruct.report.build import write_report  # its charts load when one is written

    try:
        return [write_report(ctx, verbs=settings.report_verbs).html]
    except Exception as exc:  # a report must never cost the user the data already written
        print(
            f"warning: {stage.name}: {exc.__class__.__name__}: {exc}; what the stage wrote is "
            f"complete (selfinstruct report --run {ctx.store.run_dir} tries the report again)",
            file=sys.stderr,
        )
        return []


def _finish(ctx: RunContext, stage: Stage, stats: StageStats, *, failed: bool) -> None:
    stats.stop()
    if not failed:
        _record(ctx, stage, stats)
        print_summary(stats, stage.prices(ctx.config), quiet=ctx.quiet)
        return
    # After a failure: the counts first, then whatever can still be recorded; a second error
    # (a full disk, say) must not hide the first, which the caller raises again.
    print_summary(stats, stage.prices(ctx.config), quiet=ctx.quiet)
    with contextlib.suppress(Exception):
        _record(ctx, stage, stats)


def _record(ctx: RunContext, stage: Stage, stats: StageStats) -> None:
    """The paper's files the stage derives, its row in the store's stage runs, run.json."""
    if stage.write_files is not None:
        stage.write_files(ctx)
    ctx.store.stage_runs.add(stats.stage, stats.started_at, stats.seconds, stats.as_dict())
    write_run_file(ctx)
