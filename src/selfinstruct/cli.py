"""The `selfinstruct` command group. Each command lives in a module under commands/ and is
imported when it is used (so `selfinstruct validate` does not load the stages, nor `run` the
evaluation and training code); besides the commands named here, each stage of the registry
has one."""

from __future__ import annotations

import importlib

import click

# Each a click command, or a function that makes one (commands whose options come from the
# stages, backends or export formats: made when used, so they offer those known then).
COMMANDS = {
    "run": "selfinstruct.commands.stages:run_command",
    "prepare": "selfinstruct.commands.prepare:prepare_command",
    "export": "selfinstruct.commands.export:export_command",
    "report": "selfinstruct.commands.report:report",
    "judge": "selfinstruct.commands.judge:judge_command",
    "evaluate": "selfinstruct.commands.evaluate:evaluate",
    "finetune": "selfinstruct.commands.finetune:finetune",
    "validate": "selfinstruct.commands.validate:validate",
    "merge": "selfinstruct.commands.merge:merge",
    "review": "selfinstruct.commands.review:review",
}


class Commands(click.Group):
    """The named commands, then one per stage (a named command of the same name wins)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        from selfinstruct.stages.registry import stage_names

        return sorted({*COMMANDS, *stage_names()})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in COMMANDS:
            module, _, attribute = COMMANDS[cmd_name].partition(":")
            found = getattr(importlib.import_module(module), attribute)
            command: click.Command = found if isinstance(found, click.Command) else found()
            return command
        from selfinstruct.commands.stages import stage_command
        from selfinstruct.stages.registry import get_stage, stage_names

        return stage_command(get_stage(cmd_name)) if cmd_name in stage_names() else None


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="selfinstruct")
def main() -> None:
    """Generate instruction-tuning data from a few seed tasks with a language model,
    following Self-Instruct (Wang et al., 2023): bootstrap -> classify -> instances ->
    (relabel, judge: quality checks, when turned on) -> prepare."""
