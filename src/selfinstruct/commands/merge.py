"""`selfinstruct merge`: independent runs combined into one run directory."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from selfinstruct.commands.common import handle_errors
from selfinstruct.commands.stages import print_outputs


@click.command()
@click.argument(
    "run_dir", nargs=-1, required=True, type=click.Path(path_type=Path, file_okay=False)
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="New run directory for the merged run (must not exist, or be empty).",
)
@click.option(
    "--no-prepare",
    is_flag=True,
    help="Write the merged run only; 'selfinstruct prepare --out DIR' writes its dataset later.",
)
@click.option("--quiet", "-q", is_flag=True, help="No progress bar or summary.")
@handle_errors
def merge(run_dir: tuple[Path, ...], out: Path, no_prepare: bool, quiet: bool) -> None:
    """Merge runs made independently (each run_dir a run directory, e.g. one per machine)
    into one new run directory --out.
    Their instructions are taken in a fixed order (runs sorted by random seed and creation
    time, bootstrap batches round-robin) and each is dropped when it repeats, or is too
    similar to (ROUGE-L above the threshold), the seeds or an instruction kept before it.
    Labels, instances and judgments follow their instruction, which records its source run
    (merge.json says what was kept and dropped per run). Then prepare writes the dataset."""
    from selfinstruct.merging import merge_runs, prepare_merged

    result = merge_runs(list(run_dir), out, prepare=False, quiet=quiet)
    click.echo(f"Merged run written: {result.out} ({result.instructions} instructions)")
    if no_prepare:
        return
    try:
        outputs = prepare_merged(result, quiet=quiet)
    except KeyboardInterrupt:
        click.echo(
            f"\ninterrupted: the merged run {out} is complete; 'selfinstruct prepare --out "
            f"{out}' writes its dataset",
            err=True,
        )
        sys.exit(130)
    if outputs:
        print_outputs(outputs)
