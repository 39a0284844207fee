"""`selfinstruct validate`: check a chat fine-tuning file before uploading it."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from selfinstruct.commands.common import handle_errors
from selfinstruct.training.hosted import DEFAULT_TOKEN_LIMIT, check_chat_file, format_report


@click.command()
@click.argument("file", type=click.Path(path_type=Path))
@click.option(
    "--token-limit",
    type=click.IntRange(min=1),
    default=DEFAULT_TOKEN_LIMIT,
    help="Longest example the target model trains on, in tokens.",
)
@click.option(
    "--epochs", type=click.IntRange(min=1), default=3, help="Epochs, for the billed-token estimate."
)
@handle_errors
def validate(file: Path, token_limit: int, epochs: int) -> None:
    """Check an OpenAI chat fine-tuning JSONL file (e.g. exports/openai_chat.jsonl) the way
    the service checks uploads: format errors exit non-zero, long examples are warned about,
    and token counts are reported."""
    report = check_chat_file(file, token_limit)
    click.echo(format_report(report, epochs))
    if not report.ok:
        sys.exit(1)
