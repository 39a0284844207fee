"""`selfinstruct judge`: the judge stage of a run (`--run DIR`), or with `--calibrate FILE`
the judge's agreement with human labels (the packaged file: `--calibrate packaged`)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from selfinstruct.commands.common import handle_errors
from selfinstruct.commands.options import run_directory, run_options_from
from selfinstruct.commands.stages import StageCommand, stage_callback, stage_options
from selfinstruct.config import Config
from selfinstruct.engine.context import settings_request
from selfinstruct.errors import InputError
from selfinstruct.evaluation.respond import collect
from selfinstruct.io.atomic import write_json, write_jsonl
from selfinstruct.llm.base import Completion
from selfinstruct.prompts import TemplateSet
from selfinstruct.quality.calibration import (
    PACKAGED,
    CalibrationResult,
    Labelled,
    agreement,
    packaged_path,
    read_labelled,
)
from selfinstruct.quality.judgment import parse_judgment
from selfinstruct.run.layers import layered
from selfinstruct.run.open import viewed
from selfinstruct.stages import judge as judge_stage
from selfinstruct.store.run_store import RunStore

CALIBRATION_FILE = "calibration.json"
ANSWERS_FILE = "calibration_answers.jsonl"


@dataclass
class Calibration:
    result: CalibrationResult
    answers: list[dict[str, Any]]  # per labelled instance: its labels and the judge's answer


def calibrate(kwargs: dict[str, Any], source: str) -> Calibration:
    """Run the configured judge on a labelled file and measure its agreement."""
    path = packaged_path() if source == PACKAGED else Path(source)
    items = read_labelled(path)
    config = calibration_config(kwargs)
    if not judge_stage.enabled(config):
        raise InputError("--judge", "calibration needs a judge: give --judge BACKEND[:MODEL]")
    style = judge_stage.judge_style(config)
    texts = ask_judge(config, style, items, kwargs["quiet"])
    judgments = [None if text is None else parse_judgment(text, style) for text in texts]
    result = agreement(judge_stage.judge_name(config), items, judgments)
    answers = [
        {
            "id": item.id,
            "flaw": item.flaw,
            "labels": item.answers,
            "rating": item.rating,
            "answer": text,
            "judged": None if found is None else {**found.answers, "rating": found.rating},
        }
        for item, text, found in zip(items, texts, judgments, strict=True)
    ]
    return Calibration(result, answers)


def calibration_config(kwargs: dict[str, Any]) -> Config:
    """The settings given; over a run's own when --out names a run (its judge, say)."""
    options = run_options_from({**kwargs, "out": kwargs.get("out") or Path(".")})
    if not (kwargs.get("out") and RunStore.exists(kwargs["out"])):
        return layered(options.layers)
    with viewed(kwargs["out"], options.layers, quiet=True) as view:
        return view.config


def ask_judge(
    config: Config, style: str, items: Sequence[Labelled], quiet: bool
) -> list[str | None]:
    """The judge's answer to each labelled instance (None: the request failed)."""
    choice = judge_stage.judge_choice(config)
    choice.preflight(style, identify=False)
    templates = TemplateSet(config.templates or None)
    settings = judge_stage.settings_of(config)
    stop = judge_stage.request_stops(style, settings)
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
        results = collect(llm, requests, "calibrate", quiet)
    finally:
        llm.close()
    return [r.text if isinstance(r, Completion) else None for r in results]


JUDGE_OUT = (
    "Run directory: an existing run (made by 'selfinstruct run' or 'bootstrap'). With "
    "--calibrate it is optional, and any directory: calibration.json is written there."
)


def judge_command() -> click.Command:
    """The judge stage's command, with --calibrate (which needs no run directory)."""
    stage = judge_stage.STAGE_DEF
    run_stage = stage_callback(stage)

    @click.command(
        name=stage.name,
        cls=StageCommand,
        help=f"{stage.help} With --calibrate FILE (no --out needed): measure the judge's "
        "agreement with human labels instead.",
    )
    @stage_options(stage, out_help=JUDGE_OUT)
    @click.option(
        "--calibrate",
        "source",
        metavar="FILE",
        default=None,
        help="Measure the judge's agreement with a human-labelled file (JSONL; "
        "'packaged': our 130 labelled instances) instead of judging a run.",
    )
    @handle_errors
    def judge(source: str | None, **kwargs: Any) -> None:
        if source is None:
            if kwargs.get("out") is None and kwargs.get("run_dir") is None:
                raise click.UsageError(
                    "Missing option '--out' (or '--run'; or give --calibrate FILE)."
                )
            run_stage(**kwargs)
            return
        if kwargs.pop("batch_out", None) or kwargs.pop("batch_in", None):
            raise click.UsageError("--batch-out and --batch-in judge a run, not --calibrate")
        out = run_directory(kwargs, creates=False, required=False)
        found = calibrate(kwargs, source)
        click.echo(found.result.format())
        if out is not None:
            path = Path(out) / CALIBRATION_FILE
            write_json(path, found.result.as_dict())
            answers = path.with_name(ANSWERS_FILE)
            write_jsonl(answers, found.answers)
            click.echo(f"written to {path} and {answers}")

    return judge
