"""`selfinstruct export`: a run's dataset in one format, read without writing to the run."""

from __future__ import annotations

from pathlib import Path

import click

from selfinstruct.api import Run
from selfinstruct.commands.common import handle_errors
from selfinstruct.exporters import formats


def export_command() -> click.Command:
    """`selfinstruct export`, offering the formats known when it is made."""

    @click.command(name="export")
    @click.option(
        "--run",
        "run_dir",
        required=True,
        type=click.Path(path_type=Path),
        help="Run directory to export from.",
    )
    @click.option(
        "--format",
        "fmt",
        required=True,
        type=click.Choice(list(formats())),
        help="; ".join(f"{found.name}: {found.help}" for found in formats().values()) + ".",
    )
    @click.option(
        "--out",
        "out_file",
        required=True,
        type=click.Path(path_type=Path),
        help="File to write (a directory for hf).",
    )
    @click.option(
        "--provenance",
        is_flag=True,
        help="Each record also gets instruction_id, seed_ids and machine_ids: the seed tasks and "
        "machine instructions in the bootstrap prompt that produced it (not for "
        "prompt-completion).",
    )
    @click.option("--quiet", "-q", is_flag=True, help="No summary.")
    @handle_errors
    def export(run_dir: Path, fmt: str, out_file: Path, provenance: bool, quiet: bool) -> None:
        """Write a run's dataset in one format to a file."""
        count = Run.open(run_dir, quiet=quiet).export(fmt, out_file, provenance=provenance)
        click.echo(f"wrote {count} records to {out_file}")
        if fmt == "openai-chat" and provenance and not quiet:
            click.echo(
                "not checked for OpenAI fine-tuning: its service refuses the provenance keys"
            )
        elif fmt == "openai-chat" and not quiet:
            from selfinstruct.training.hosted import check_chat_file, format_report

            click.echo(format_report(check_chat_file(out_file)))

    return export
