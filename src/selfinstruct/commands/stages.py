"""`selfinstruct run` and one command per stage of the registry (bootstrap, classify,
instances, ...), all over the Python API."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import click

from selfinstruct.api import Run
from selfinstruct.commands.common import handle_errors
from selfinstruct.commands.options import (
    RUN_FLAGS,
    Decorator,
    run_directory,
    run_options,
    run_options_from,
    setting_flags,
)
from selfinstruct.config import Flag
from selfinstruct.console.summary import format_total
from selfinstruct.engine.batch_files import describe
from selfinstruct.engine.stage import Stage
from selfinstruct.report import REPORT_NAME, report_line
from selfinstruct.run.drive import generated_nothing
from selfinstruct.run.estimate import format_estimate
from selfinstruct.stages import registry


class StageCommand(click.Command):
    """A stage's command: an option of `run` it does not offer is refused saying why, not
    only as unknown (what a run is made with, on a stage that cannot start one: the run
    keeps its own)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except click.NoSuchOption as exc:
            name = exc.option_name
            if name in spellings(RUN_FLAGS):
                why = (
                    f"{self.name} uses the run's own, set when 'selfinstruct run' or "
                    "'bootstrap' starts it"
                )
            elif name in spellings(setting_flags()):
                why = f"{self.name} does not use it ('selfinstruct run' does)"
            else:
                raise
            raise click.NoSuchOption(name, f"No such option '{name}': {why}.", ctx=ctx) from exc


def spellings(flags: Iterable[Flag]) -> set[str]:
    return {name for flag in flags for spelling in flag.names for name in spelling.split("/")}


def run_from(kwargs: dict[str, Any]) -> Run:
    """The run the flags name, with the settings they give."""
    options = run_options_from(kwargs)
    return Run(options.out, options.layers, options.quiet, options.limits)


def estimated(kwargs: dict[str, Any]) -> bool:
    """With --estimate: print the estimate and tell the command to stop."""
    if kwargs.get("estimate"):
        click.echo(format_estimate(run_from(kwargs).estimate()))
    return bool(kwargs.get("estimate"))


def run_command() -> click.Command:
    """`selfinstruct run`, with the flags of the stages and backends known when it is made."""

    @click.command(name="run")
    @run_options()
    @handle_errors(resumable=True)
    def run(**kwargs: Any) -> None:
        """Run every stage into the run directory --out (created if missing; resumes an
        existing run), or continue the existing run --run."""
        run_directory(kwargs, creates=True)
        if estimated(kwargs):
            return
        target = run_from(kwargs)
        found = target.generate()
        stats = list(found.values())
        if not kwargs["quiet"] and not generated_nothing(found):  # else: said it is complete
            config = target.config
            prices = {stage.name: stage.prices(config) for stage in registry.STAGES}
            click.echo(format_total(stats, prices), err=True)
        print_outputs([path for s in stats for path in s.outputs])

    return run


def batch_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option(
        "--batch-in",
        type=click.Path(path_type=Path),
        help="Read a batch results file (OpenAI Batch API or vllm run-batch "
        "output) into the run, then run the stage.",
    )(func)
    return click.option(
        "--batch-out",
        type=click.Path(path_type=Path),
        help="Write the stage's pending requests as OpenAI Batch API JSONL "
        "(what vllm run-batch reads) and stop.",
    )(func)


def stage_options(stage: Stage, out_help: str | None = None) -> Decorator:
    """The options of a stage's command: those it uses (see `run_options`), and batch files
    when it can use them."""
    options = run_options(stage, out_help=out_help)
    if stage.plan is None:
        return options
    return lambda func: options(batch_options(func))


def stage_callback(stage: Stage) -> Callable[..., None]:
    """What a stage's command does with its options (errors become one line; an
    interruption keeps what was committed)."""

    def command(**kwargs: Any) -> None:
        run_directory(kwargs, creates=stage.creates_run)
        batch_out, batch_in = kwargs.pop("batch_out", None), kwargs.pop("batch_in", None)
        if batch_out and batch_in:
            raise click.UsageError("--batch-out and --batch-in go in separate runs")
        if estimated(kwargs):
            return
        target = run_from(kwargs)
        if batch_out:
            count = target.write_batch(stage.name, batch_out)
            click.echo(f"wrote {count} {stage.name} requests to {batch_out}")
            return
        if batch_in:
            click.echo(
                f"read {batch_in}: {describe(target.read_batch(stage.name, batch_in))}", err=True
            )
        stats = target.stage(stage)
        if stats.outputs:
            print_outputs(stats.outputs)

    command.__name__ = stage.name
    wrapped: Callable[..., None] = handle_errors(resumable=True)(command)
    return wrapped


def stage_command(stage: Stage) -> click.Command:
    """The command that runs one stage."""
    return click.command(name=stage.name, cls=StageCommand, help=stage.help)(
        stage_options(stage)(stage_callback(stage))
    )


def print_outputs(paths: list[Path]) -> None:
    """The files written, the report last (open it in a browser)."""
    reports = [path for path in paths if path.name == REPORT_NAME]
    click.echo("Dataset written:")
    for path in paths:
        if path not in reports:
            click.echo(f"  {path}")
    for path in reports:
        click.echo(report_line(path))
