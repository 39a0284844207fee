"""The `selfinstruct` command group; each command lives in a module under commands/."""

from __future__ import annotations

import click

from selfinstruct.commands.evaluate import evaluate
from selfinstruct.commands.export import export
from selfinstruct.commands.finetune import finetune
from selfinstruct.commands.prepare import prepare
from selfinstruct.commands.stages import run, stage_commands
from selfinstruct.commands.validate import validate


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="selfinstruct")
def main() -> None:
    """Generate instruction-tuning data from a few seed tasks with a language model,
    following Self-Instruct (Wang et al., 2022): bootstrap -> classify -> instances -> prepare."""


for _command in (run, prepare, export, evaluate, finetune, validate):
    main.add_command(_command)
for _command in stage_commands():  # one per stage; a command above with its name wins
    if _command.name not in main.commands:
        main.add_command(_command)
