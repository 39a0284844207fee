"""`selfinstruct run` and one command per stage of the registry (bootstrap, classify,
instances, ...), all over the Python API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from selfinstruct.api import Run
from selfinstruct.commands.common import handle_errors
from selfinstruct.commands.options import run_options, run_options_from
from selfinstruct.console.summary import format_total
from selfinstruct.engine.batch_files import describe
from selfinstruct.engine.stage import Stage
from selfinstruct.report import REPORT_NAME, report_line
from selfinstruct.run.estimate import format_estimate
from selfinstruct.stages import registry


def run_from(kwargs: dict[str, Any]) -> Run:
    """The run the flags name, with the settings they give."""
    options = run_options_from(kwargs)
    return Run(options.out, options.layers, options.quiet, options.limits)


def estimated(kwargs: dict[str, Any]) -> bool:
    """With --estimate: print the estimate and tell the command to stop."""
    if kwargs["estimate"]:
        click.echo(format_estimate(run_from(kwargs).estimate()))
    return bool(kwargs["estimate"])


def run_command() -> click.Command:
    """`selfinstruct run`, with the flags of the stages and backends known when it is made."""

    @click.command(name="run")
    @run_options
    @handle_errors(resumable=True)
    def run(**kwargs: Any) -> None:
        """Run every stage into the run directory --out (resumes an existing run)."""
        if estimated(kwargs):
            return
        target = run_from(kwargs)
        stats = list(target.generate().values())
        if not kwargs["quiet"]:
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


def stage_command(stage: Stage) -> click.Command:
    """The command that runs one stage (with batch-file options when it can use them)."""

    def command(**kwargs: Any) -> None:
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
    command = handle_errors(resumable=True)(command)
    if stage.plan is not None:
        command = batch_options(command)
    return click.command(name=stage.name, help=stage.help)(run_options(command))


def print_outputs(paths: list[Path]) -> None:
    """The files written, the report last (open it in a browser)."""
    reports = [path for path in paths if path.name == REPORT_NAME]
    click.echo("Dataset written:")
    for path in paths:
        if path not in reports:
            click.echo(f"  {path}")
    for path in reports:
        click.echo(report_line(path))
