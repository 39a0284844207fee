"""`selfinstruct report`: a run's HTML report (and report.json), read without writing to
the run."""

from __future__ import annotations

from pathlib import Path

import click

from selfinstruct.api import Run
from selfinstruct.commands.common import handle_errors

RUN_DIR = click.Path(path_type=Path, file_okay=False)


@click.command()
@click.option("--run", "run_dir", required=True, type=RUN_DIR, help="Run directory to report on.")
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="HTML file to write (default RUN/report.html); its numbers go beside it as .json.",
)
@click.option(
    "--compare",
    multiple=True,
    type=RUN_DIR,
    help="Another run directory to show side by side (repeatable).",
)
@click.option(
    "--no-verbs", is_flag=True, help="Leave out the verb-noun chart (skips parsing with spaCy)."
)
@handle_errors
def report(run_dir: Path, out_file: Path | None, compare: tuple[Path, ...], no_verbs: bool) -> None:
    """Write a self-contained HTML report of a run: the paper's statistics and figures, what
    was kept and dropped, cost and time, and a browser of every record."""
    written = Run.open(run_dir).report(out_file, compare, verbs=False if no_verbs else None)
    click.echo(f"Report written: {written.html}")
    click.echo(f"  numbers: {written.json}")
