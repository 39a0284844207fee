"""`selfinstruct prepare`: stage 4 on a run, or on the paper's intermediate files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from selfinstruct.api import prepare_paper_files
from selfinstruct.commands.common import handle_errors
from selfinstruct.commands.options import run_directory, run_options, run_options_from
from selfinstruct.commands.stages import StageCommand, print_outputs, run_from
from selfinstruct.stages import prepare as prepare_stage

PREPARE_OUT = (
    "Run directory: an existing run (made by 'selfinstruct run' or 'bootstrap'); with "
    "--import-instances, the directory to write the dataset into."
)


def prepare_command() -> click.Command:
    """`selfinstruct prepare`, with the flags of the stages known when it is made."""

    @click.command(name="prepare", cls=StageCommand)
    @run_options(prepare_stage.STAGE_DEF, out_help=PREPARE_OUT)
    @click.option(
        "--import-instances",
        type=click.Path(path_type=Path),
        help="The paper's machine_generated_instances.jsonl from another run.",
    )
    @click.option(
        "--import-labels",
        type=click.Path(path_type=Path),
        help="The paper's is_clf_or_not_*.jsonl matching --import-instances.",
    )
    @handle_errors(resumable=True)
    def prepare(import_instances: Path | None, import_labels: Path | None, **kwargs: Any) -> None:
        """Stage 4: filter the instances and write fine-tuning data and exports. With
        --import-instances and --import-labels, works on the paper's intermediate files instead
        of a run."""
        if (import_instances is None) != (import_labels is None):
            raise click.UsageError("--import-instances and --import-labels go together")
        if import_instances is None or import_labels is None:
            run_directory(kwargs, creates=False)
            print_outputs(run_from(kwargs).stage(prepare_stage.STAGE_DEF).outputs)
            return
        if kwargs.get("run_dir") is not None:
            raise click.UsageError(
                "--run names an existing run; with --import-instances, give the directory "
                "to write the dataset into as --out"
            )
        run_directory(kwargs, creates=True)
        options = run_options_from(kwargs)
        layers = options.layers
        paths = prepare_paper_files(
            import_instances,
            import_labels,
            options.out,
            config_file=layers.config_file,
            quiet=options.quiet,
            sets=layers.sets,
            **layers.given,
        )
        print_outputs(paths)

    return prepare
