"""Running the stages of an open run: each stage's work, the paper's files it derives, its row
in the run's records, run.json and its summary; after the stage that writes the dataset, the
dataset card and the report. A stage that stops with an error (or Ctrl-C) is recorded and
summarised too, as far as it can be.

`run_stages` streams the leading stages that one server answers (bootstrap, classify,
instances, and relabel and the judge when they use the run's model) through one pool of
slots (engine/stream.py), then runs the rest (prepare) one by one; with a local engine,
which answers one request at a time, every stage runs alone, in order.

A stage that sends requests and finds nothing left to do says so in one line instead of its
counts (`Summaries`); when no stage of the command had anything to generate, one line says the
run is complete instead, and which flag would extend it."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping
from pathlib import Path

from selfinstruct.card.gather import quality_text, write_run_card
from selfinstruct.console.progress import StreamBar
from selfinstruct.console.stats import StageStats
from selfinstruct.console.summary import format_complete, format_idle, idle, print_summary
from selfinstruct.dataset.build import PreparedData
from selfinstruct.dataset.outputs import EXPORT_DIR
from selfinstruct.dataset.settings import STAGE as PREPARE
from selfinstruct.dataset.settings import PrepareSettings
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.stage import Stage
from selfinstruct.engine.stream import StreamPart, serve_stream
from selfinstruct.errors import SelfInstructError
from selfinstruct.report import report_line
from selfinstruct.report.beside import Beside
from selfinstruct.report.parse_ahead import ParseAhead
from selfinstruct.run.run_file import write_run_file
from selfinstruct.stages import registry


def run_stages(
    ctx: RunContext, stages: list[Stage], *, stream: bool | None = None
) -> dict[str, StageStats]:
    """Run the stages in order, streaming those `streamed` picks (stream None: when their
    backend serves requests in parallel; False: never). When they end with the dataset's
    report, a helper process parses the instructions for its verb-noun chart while the
    stages before it run (report/parse_ahead.py), so the parser is never loaded here."""
    group = streamed(ctx, stages, stream)
    said = Summaries(ctx, "run")
    found: dict[str, StageStats] = {}
    target = ctx.config.num_instructions
    ahead = ParseAhead.start(ctx.store, target) if _parses_verbs(ctx, stages) else None
    try:
        if len(group) > 1:
            found = run_stream(ctx, group, said)
        for stage in stages:
            if stage.name in found:
                continue
            if stage.writes_dataset and ahead is not None:
                ahead.finish()
            found[stage.name] = run_stage(ctx, stage, said)
    finally:
        if ahead is not None:
            ahead.close()
    said.close()
    return {stage.name: found[stage.name] for stage in stages}


def generated_nothing(found: Mapping[str, StageStats]) -> bool:
    """Whether no stage that sends requests had anything left to do (the run was complete)."""
    return all(idle(stats) for name, stats in found.items() if registry.get_stage(name).generates)


class Summaries:
    """The end-of-stage summaries of one command, on stderr (warnings even when quiet).

    The summary of a stage that sends requests and found nothing left to do is held back: it
    is said as one line ("nothing left to do") before the next stage that generated something
    is summarised. When none did, and the stage whose work --num-instructions bounds (the one
    that may create the run) is among them, one line says instead that the run is complete:
    its instructions, its dataset's instances, and the flag that extends it."""

    def __init__(self, ctx: RunContext, name: str) -> None:
        self.ctx = ctx
        self.name = name  # the command's, for the line about the whole run
        self.held: list[tuple[Stage, StageStats]] = []
        self.generated = False

    def stage(self, stage: Stage, stats: StageStats, *, failed: bool) -> None:
        if stage.generates and idle(stats) and not failed:
            self.held.append((stage, stats))
            return
        self.generated = self.generated or stage.generates
        if self.generated or failed:
            self._say_held()
        print_summary(stats, stage.prices(self.ctx.config), quiet=self.ctx.quiet)

    def close(self) -> None:
        """After the command's last stage: what is still held back."""
        if self.generated or not any(stage.creates_run for stage, _ in self.held):
            self._say_held()
            return
        if not self.ctx.quiet:
            store = self.ctx.store
            instances = (store.get_meta("prepared") or {}).get("instances")
            target = self.ctx.config.num_instructions
            line = format_complete(self.name, store.pool.instruction_count(), instances, target)
            print(line, file=sys.stderr)
        self._warn([stats for _, stats in self.held])
        self.held = []

    def _say_held(self) -> None:
        for stage, stats in self.held:
            if not self.ctx.quiet:
                found = stage.counts(self.ctx) if stage.counts is not None else {}
                held = next(iter(found.values())) if len(found) == 1 else None
                print(format_idle(stats, held), file=sys.stderr)
            self._warn([stats])
        self.held = []

    @staticmethod
    def _warn(found: list[StageStats]) -> None:
        for stats in found:
            for warning in stats.warnings:
                print(f"warning: {warning}", file=sys.stderr)


def _parses_verbs(ctx: RunContext, stages: list[Stage]) -> bool:
    """Whether stages that generate come before one that writes the dataset with a report
    that parses verbs (so the instructions are parsed while they run: parse_ahead.py)."""
    settings: PrepareSettings = ctx.config.section(PREPARE)
    writes = [i for i, stage in enumerate(stages) if stage.writes_dataset]
    before = writes and any(stage.generates for stage in stages[: writes[0]])
    return bool(before) and settings.report and settings.report_verbs


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
        if not stage.streams() or ctx.llm_key(stage.name) != ctx.llm_key(stages[0].name):
            break
        group.append(stage)
    return group


def run_stream(ctx: RunContext, stages: list[Stage], said: Summaries) -> dict[str, StageStats]:
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
            _finish(ctx, stage, stats[stage.name], said, failed=True)
        raise
    for stage in stages:
        _finish(ctx, stage, stats[stage.name], said, failed=False)
    return stats


def run_stage(ctx: RunContext, stage: Stage, said: Summaries | None = None) -> StageStats:
    """Run one stage, then write the paper's files it derives, record it in the run and print
    its summary (`said`: the summaries of the command it is part of; None: of its own). A
    stage that stops with an error (or Ctrl-C) does the same first, as far as it can, so the
    error line comes after the counts it refers to."""
    alone = said is None
    said = said or Summaries(ctx, stage.name)
    stats = stage.new_stats()
    beside = _beside(ctx, stage)
    try:
        produced = stage.run(ctx, stats)
        if stage.writes_dataset and isinstance(produced, PreparedData):
            stats.outputs.append(write_card(ctx, produced, stats))
    except BaseException as exc:
        _finish(ctx, stage, stats, said, failed=True)
        if isinstance(exc, SelfInstructError):
            for path in _report(ctx, stage, None, beside):
                print(report_line(path), file=sys.stderr)
        elif beside is not None:
            beside.cancel()
        raise
    _finish(ctx, stage, stats, said, failed=False)
    prepared = produced if isinstance(produced, PreparedData) else None
    stats.outputs += _report(ctx, stage, prepared, beside)
    if alone:
        said.close()
    return stats


def _beside(ctx: RunContext, stage: Stage) -> Beside | None:
    """For the stage that writes the dataset with a report: the report built beside it in a
    child process (report/beside.py), when this system allows."""
    settings: PrepareSettings = ctx.config.section(PREPARE)
    if not stage.writes_dataset or not settings.report:
        return None
    try:
        return Beside.start(ctx, settings.report_verbs)
    except Exception:  # the report is then built after the stage, as it always could be
        return None


def write_card(ctx: RunContext, data: PreparedData, stats: StageStats) -> Path:
    """exports/README.md for the dataset the stage has just built, with what the run's
    stages measured."""
    numbers = registry.stage_numbers(ctx)
    quality = quality_text(ctx.config, registry.card_lines(ctx.config, numbers))
    reviewed = numbers.get("review", {}).get("rated_items", 0)
    return write_run_card(ctx, data, stats, ctx.store.run_dir / EXPORT_DIR, quality, reviewed)


def _report(
    ctx: RunContext, stage: Stage, prepared: PreparedData | None, beside: Beside | None
) -> list[Path]:
    """The run's report (report.html, report.json) once the stage that writes the dataset is
    recorded, also after it stopped with an error of ours (unless prepare.report is off): the
    one built beside the stage when there is one, else built here on the dataset the stage
    built (`prepared`; None: the report builds it). A failure here is a warning: the
    stage's work is saved."""
    settings: PrepareSettings = ctx.config.section(PREPARE)
    if not stage.writes_dataset or not settings.report:
        return []
    if beside is not None and (written := beside.finish()) is not None:
        return [written]
    from selfinstruct.report.build import write_report  # its charts load when one is written

    try:
        return [write_report(ctx, verbs=settings.report_verbs, prepared=prepared).html]
    except Exception as exc:  # a report must never cost the user the data already written
        print(
            f"warning: {stage.name}: {exc.__class__.__name__}: {exc}; what the stage wrote is "
            f"complete (selfinstruct report --run {ctx.store.run_dir} tries the report again)",
            file=sys.stderr,
        )
        return []


def _finish(
    ctx: RunContext, stage: Stage, stats: StageStats, said: Summaries, *, failed: bool
) -> None:
    stats.stop()
    if not failed:
        _record(ctx, stage, stats)
        said.stage(stage, stats, failed=False)
        return
    # After a failure: the counts first, then whatever can still be recorded; a second error
    # (a full disk, say) must not hide the first, which the caller raises again.
    said.stage(stage, stats, failed=True)
    with contextlib.suppress(Exception):
        _record(ctx, stage, stats)


def _record(ctx: RunContext, stage: Stage, stats: StageStats) -> None:
    """The paper's files the stage derives, its row in the store's stage runs, run.json."""
    if stage.write_files is not None:
        stage.write_files(ctx)
    ctx.store.stage_runs.add(stats.stage, stats.started_at, stats.seconds, stats.as_dict())
    write_run_file(ctx)
