"""What a stage is: one small definition that everything else reads.

A run is the ordered list of stages in `stages/registry.py`. The `run` command, the per-stage
commands, fingerprints, `--estimate`, resume and Ctrl-C handling, config validation and the
fake backend all read a `Stage` instead of naming stages. Adding a stage is one module that
defines its `Stage`, its templates, one entry in the registry and (if it stores records) one
schema migration in `store/schema.py`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.config import Config, PricingSettings
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.plan import StagePlan
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.fake_answers import FakeAnswer
from selfinstruct.prompts import TemplateSpec
from selfinstruct.store.run_store import RunStore


@dataclass(frozen=True)
class Estimate:
    """A stage's expected requests (`basis` says how they were worked out)."""

    requests: int
    basis: str


@dataclass(frozen=True)
class Stage:
    name: str
    help: str  # one line, the command's help
    run: Callable[[RunContext, StageStats], None]
    unit: str = "records"  # what its summary counts
    verb: str = "kept"  # what `kept` means: kept, labelled, answered
    settings: type | None = None  # the dataclass of its [name] settings section
    templates: tuple[TemplateSpec, ...] = ()  # the templates that shape its requests
    stops: Callable[[str, Any], list[str]] | None = None  # default stops for (style, settings)
    runtime_only: frozenset[str] = frozenset()  # settings that do not change its records
    depends_on_seeds: bool = False  # the seed set is part of its fingerprint
    records: Callable[[RunStore], int] | None = None  # how many records it holds
    plan: Callable[[RunContext, StageStats], StagePlan[Any]] | None = None  # batch files too
    write_files: Callable[[RunContext], list[Path]] | None = None  # the paper's files
    # Requests still needed for (store, target instructions, the stage's fingerprint under
    # the settings given); a stage with a plan that has none sends one per instruction it
    # has no record for.
    estimate: Callable[[RunStore | None, int, dict[str, Any]], Estimate] | None = None
    sample_template: TemplateSpec | None = None  # --estimate measures a typical prompt
    assumed_output_tokens: float = 0.0  # for --estimate before any answer was seen
    fake_answers: tuple[FakeAnswer, ...] = ()
    # Runs once the stage is recorded (its time is not the stage's), also after the stage
    # stopped with an error of ours; returns the files it wrote (e.g. prepare's report).
    after: Callable[[RunContext, StageStats], list[Path]] | None = None
    creates_run: bool = False  # its command may start a new run directory
    generates: bool = True  # sends requests (so the backend is checked before it runs)
    # Whether `run` runs it (None: always); a stage that is off can still be run by name.
    enabled: Callable[[Config], bool] | None = None
    # A model of its own (the judge), with its prompt style and prices; None: the run's.
    model: Callable[[Config], ModelChoice] | None = None
    prompt_style: Callable[[Config], str] | None = None
    pricing: Callable[[Config], PricingSettings] | None = None
    # Reads and checks the files its settings name (InputError naming file, line and field),
    # before a command writes or sends anything.
    check: Callable[[Config], None] | None = None
    # Its records are kept per fingerprint: new settings (a new judge) add records beside
    # the old ones instead of being refused, and never touch other stages' records.
    versioned: bool = False

    def active(self, config: Config) -> bool:
        return self.enabled is None or self.enabled(config)

    def choice(self, config: Config) -> ModelChoice:
        """The backend and model that answer its requests."""
        if self.model is not None:
            return self.model(config)
        return ModelChoice.of(config.backend, config.model, config.sections)

    def style(self, config: Config) -> str:
        return self.prompt_style(config) if self.prompt_style else config.prompt_style

    def prices(self, config: Config) -> PricingSettings:
        return self.pricing(config) if self.pricing else config.pricing

    def new_stats(self) -> StageStats:
        return StageStats(self.name, unit=self.unit, verb=self.verb)

    def expected(
        self, store: RunStore | None, target: int, fingerprint: dict[str, Any] | None = None
    ) -> Estimate | None:
        """The requests it still needs to reach `target` instructions (None: it sends none
        or cannot say)."""
        if self.estimate is not None:
            return self.estimate(store, target, fingerprint or {})
        if self.plan is None or self.records is None:
            return None
        return Estimate(target - (self.records(store) if store else 0), "one per instruction")

    def has_records(self, store: RunStore) -> bool:
        return self.records is not None and self.records(store) > 0
