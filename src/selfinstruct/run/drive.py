"""Running the stages of an open run: each stage's work, the paper's files it derives, its row
in the run's records, run.json and its summary; after the stage that writes the dataset, the
dataset card and the report. A stage that stops with an error (or Ctrl-C) is recorded and
summarised too, as far as it can be.

`run_stages` streams the leading stages that one server answers (bootstrap, classify,
instances, and relabel and the judge when they use the run's model) through one pool of
slots (engine/stream.py), then runs the rest (prepare) one by one; with a local engine,
which answers one request at a time, every stage runs alone, in order."""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path

from selfinstruct.card.gather import quality_text, write_run_card
from selfinstruct.console.progress import StreamBar
from selfinstruct.console.stats import StageStats
from selfinstruct.console.summary import print_summary
from selfinstruct.dataset.build import PreparedData
from selfinstruct.dataset.outputs import EXPORT_DIR
from selfinstruct.dataset.settings import STAGE as PREPARE
from selfinstruct.dataset.settings import PrepareSettings
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.stage import Stage
from selfinstruct.engine.stream import StreamPart, serve_stream
from selfinstruct.errors import SelfInstructError
from selfinstruct.report import report_line
from selfinstruct.report.parse_ahead import ParseAhead
from selfinstruct.run.run_file import write_run_file
from selfinstruct.stages import registry


def run_stages(
    ctx: RunContext, stages: list[Stage], *, stream: bool | None = None
) -> dict[str, StageStats]:
    """Run the stages in order, streaming those `streamed` picks (stream None: when their
    backend serves requests in parallel; False: never)."""
    group = streamed(ctx, stages, stream)
    found: dict[str, StageStats] = {}
    if len(group) > 1:
        target = ctx.config.num_instructions
        ahead = ParseAhead.start(ctx.store, target) if _parses_verbs(ctx, stages) else None
        try:
            found = run_stream(ctx, group)
            if ahead is not None:
                ahead.finish()
        finally:
            if ahead is not None:
                ahead.close()
    for stage in stages:
        if stage.name not in found:
            found[stage.name] = run_stage(ctx, stage)
    return {stage.name: found[stage.name] for stage in stages}


def _parses_verbs(ctx: RunContext, stages: list[Stage]) -> bool:
    """Whether a stage of these writes the dataset with a report that parses verbs (so the
    stream parses the instructions while it runs: report/parse_ahead.py)."""
    settings: PrepareSettings = ctx.config.section(PREPARE)
    writes = any(stage.writes_dataset for stage in stages)
    return writes and settings.report and settings.report_verbs


def streamed(ctx: RunContext, stages: list[Stage], stream: bool | None) -> list[Stage]:
    """The leading stages that share one stream: each can take part in one, and the same
    backend and model answer them all; none when `stream` is False, or None and that backend
    answers one request at a time."""
    if not stages or stream is False:
        return []
    if stream is None and not ctx.choice_for(stages[0].name).backend.parallel:
        return []
    group: list[Stage] = []
    for stage in stages:
        if not stage.streams() or ctx.backend_id(stage.name) != ctx.backend_id(stages[0].name):
            break
        group.append(stage)
    return group


def run_stream(ctx: RunContext, stages: list[Stage]) -> dict[str, StageStats]:
    """The stages through one stream, then each one's checks, files, record and summary in
    order; after an error every stage of the stream is recorded as far as it got."""
    stats = {stage.name: stage.new_stats() for stage in stages}
    parts: list[StreamPart] = []
    try:
        try:
            bar = StreamBar(ctx.quiet)
            for stage in stages:
                parts.append(stage.stream_part(ctx, stats[stage.name], bar))
            served = serve_stream(ctx, parts)
        finally:
            for part in parts:
                part.close()
        for stage, part, lane in zip(stages, parts, served.lanes, strict=True):
            part.finish(served.stopped and not lane.done)
            if stage.describe is not None:
                stage.describe(ctx, stats[stage.name])
    except BaseException:
        for stage in stages:
            _finish(ctx, stage, stats[stage.name], failed=True)
        raise
    for stage in stages:
        _finish(ctx, stage, stats[stage.name], failed=False)
    return stats


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
    reviewed = numbers.get("review", {}).get("rated_items", 0)
    return write_run_card(ctx, data, stats, ctx.store.run_dir / EXPORT_DIR, quality, reviewed)


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
