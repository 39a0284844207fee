"""`selfinstruct judge`: the judge stage of a run (`--out DIR`), or with `--calibrate FILE`
the judge's agreement with human labels (the packaged file: `--calibrate packaged`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from selfinstruct.commands.common import handle_errors
from selfinstruct.commands.options import run_options_from
from selfinstruct.commands.stages import stage_command
from selfinstruct.errors import InputError
from selfinstruct.evaluation.respond import collect
from selfinstruct.exporters.jsonl import write_json
from selfinstruct.llm.base import Completion
from selfinstruct.pipeline import open_view
from selfinstruct.prompts import TemplateSet
from selfinstruct.quality.calibration import (
    PACKAGED,
    CalibrationResult,
    agreement,
    packaged_path,
    read_labelled,
)
from selfinstruct.quality.judgment import Judgment, parse_judgment
from selfinstruct.settings import layered
from selfinstruct.stages import judge as judge_stage
from selfinstruct.stages.context import settings_request
from selfinstruct.store.run_store import RunStore

CALIBRATION_FILE = "calibration.json"


def calibrate(kwargs: dict[str, Any], source: str) -> CalibrationResult:
    """Run the configured judge on a labelled file and measure its agreement."""
    path = packaged_path() if source == PACKAGED else Path(source)
    items = read_labelled(path)
    options = run_options_from({**kwargs, "out": kwargs.get("out") or Path(".")})
    if kwargs.get("out") and RunStore.exists(kwargs["out"]):
        view = open_view(kwargs["out"], options.layers, quiet=True)
        config = view.config
        view.store.close()
    else:
        config = layered(options.layers)
    if not judge_stage.enabled(config):
        raise InputError("--judge", "calibration needs a judge: give --judge BACKEND[:MODEL]")
    choice = judge_stage.judge_choice(config)
    style = judge_stage.judge_style(config)
    choice.preflight(style, identify=False)
    templates = TemplateSet(config.templates or None)
    settings = judge_stage.settings_of(config)
    stop = settings.stop or []
    requests = [
        settings_request(
            judge_stage.review_prompt(templates, style, i.instruction, i.input, i.output),
            settings,
            stop,
            None,
            judge_stage.TEMPLATE.name,
        )
        for i in items
    ]
    llm = choice.create()
    try:
        results = collect(llm, requests, "calibrate", kwargs["quiet"])
    finally:
        llm.close()
    judgments: list[Judgment | None] = [
        parse_judgment(r.text, style) if isinstance(r, Completion) else None for r in results
    ]
    return agreement(choice.label(), items, judgments)


def judge_command() -> click.Command:
    """The judge stage's command, with --calibrate (which needs no run directory)."""
    command = stage_command(judge_stage.STAGE_DEF)
    for param in command.params:
        if param.name == "out":
            param.required = False
    run_stage = command.callback
    assert run_stage is not None

    def callback(**kwargs: Any) -> None:
        source = kwargs.pop("calibrate")
        if source is None:
            if kwargs.get("out") is None:
                raise click.UsageError("Missing option '--out' (or give --calibrate FILE).")
            run_stage(**kwargs)
            return
        result = calibrate(kwargs, source)
        click.echo(result.format())
        if kwargs.get("out"):
            path = Path(kwargs["out"]) / CALIBRATION_FILE
            write_json(path, result.as_dict())
            click.echo(f"written to {path}")

    command.callback = handle_errors(callback)
    command.params.append(
        click.Option(
            ["--calibrate"],
            metavar="FILE",
            default=None,
            help="Measure the judge's agreement with a human-labelled file (JSONL; "
            "'packaged': our 130 labelled instances) instead of judging a run.",
        )
    )
    return command


judge = judge_command()
