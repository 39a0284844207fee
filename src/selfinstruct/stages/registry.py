"""The stages of a run, in order, and what is asked of all of them. A new stage is one line
here (see docs/architecture.md for the rest of what it is)."""

from __future__ import annotations

from typing import Any

from selfinstruct.config import Config
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.stage import Stage
from selfinstruct.errors import InputError
from selfinstruct.prompts import TemplateSpec
from selfinstruct.stages import bootstrap, classify, instances, judge, prepare, relabel, review

# The run, in order. Everything reads this tuple when it runs (through this module), so a
# stage added here (or, in a test, patched in) is seen everywhere.
STAGES: tuple[Stage, ...] = (
    bootstrap.STAGE_DEF,
    classify.STAGE_DEF,
    instances.STAGE_DEF,
    relabel.STAGE_DEF,
    judge.STAGE_DEF,
    prepare.STAGE_DEF,
)


def stage_names() -> list[str]:
    return [stage.name for stage in STAGES]


def get_stage(name: str) -> Stage:
    for stage in STAGES:
        if stage.name == name:
            return stage
    raise InputError("stage", f"unknown stage '{name}' (known: {', '.join(stage_names())})")


def stage_sections() -> dict[str, type]:
    """The settings section of each stage that has one, in run order."""
    return {stage.name: stage.settings for stage in STAGES if stage.settings is not None}


def generating_stages() -> list[Stage]:
    return [stage for stage in STAGES if stage.generates]


def template_specs() -> list[TemplateSpec]:
    """Every template the stages render, in run order."""
    return [spec for stage in STAGES for spec in stage.templates]


def template_spec(name: str) -> TemplateSpec:
    """A stage template by name (for tools and tests that render one)."""
    for spec in template_specs():
        if spec.name == name:
            return spec
    raise InputError("template", f"no stage renders a template named '{name}'")


def default_stops(stage: str, style: str, settings: object = None) -> list[str]:
    """The stop sequences a stage's requests use with the given settings (its defaults when
    none are given)."""
    found = get_stage(stage)
    if found.stops is None or found.settings is None:
        return []
    return found.stops(style, settings if settings is not None else found.settings())


def stage_numbers(ctx: RunContext) -> dict[str, Any]:
    """What the run's stages measured (the current judge's Table 2, the label agreement...),
    for run.json, the report, the card and the API."""
    found: dict[str, Any] = {}
    for stage in STAGES:
        if stage.numbers is not None:
            found.update(stage.numbers(ctx))
    found.update(review.numbers(ctx))  # people's review: no stage of its own
    return found


def card_lines(config: Config, numbers: dict[str, Any]) -> list[str]:
    """What the dataset card says about the stages' checks, in run order."""
    return [
        line
        for stage in STAGES
        if stage.card_lines is not None
        for line in stage.card_lines(config, numbers)
    ] + review.card_lines(config, numbers)
