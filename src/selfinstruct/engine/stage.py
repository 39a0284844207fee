"""What a stage is: one declaration that everything else reads.

A run is the ordered list of stages in `stages/registry.py`. The `run` command and the
per-stage commands with their flags, settings sections, fingerprints, `--estimate`, budgets,
resume, run.json's counts, prepare's quality screen, merge, the report's and the card's
numbers and the fake backend all read a `Stage` instead of naming stages. Adding a stage is
its module (which declares its `Stage`), its templates, one line in the registry and, if it
keeps records about instances, one migration in `store/schema.py` that creates its
`RecordTable`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.config import Config, Flag, PricingSettings
from selfinstruct.console.progress import Progress, StreamBar
from selfinstruct.console.stats import StageStats
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.plan import StagePlan
from selfinstruct.engine.stream import PlanPart, StreamPart
from selfinstruct.filters.screen import InstanceCheck
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.fake_answers import FakeAnswer, teach
from selfinstruct.prompts import TemplateSpec
from selfinstruct.store.records import RecordTable
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
    # Does the stage's work; may return what it produced (prepare: the dataset), which the
    # run hands to what it writes after the stage (the card and the report).
    run: Callable[[RunContext, StageStats], object]
    unit: str = "records"  # what its summary counts
    verb: str = "kept"  # what `kept` means: kept, labelled, answered
    settings: type | None = None  # the dataclass of its [name] settings section
    flags: tuple[Flag, ...] = ()  # command-line flags that set its settings
    templates: tuple[TemplateSpec, ...] = ()  # the templates that shape its requests
    stops: Callable[[str, Any], list[str]] | None = None  # default stops for (style, settings)
    runtime_only: frozenset[str] = frozenset()  # settings that do not change its records
    depends_on_seeds: bool = False  # the seed set is part of its fingerprint
    record_count: Callable[[RunStore], int] | None = None  # how many records it holds
    table: RecordTable | None = None  # its records about instances (merge copies them)
    # What run.json counts of its records ({"labels": 40}; {} when there is nothing to say).
    counts: Callable[[RunContext], dict[str, int]] | None = None
    plan: Callable[[RunContext, StageStats], StagePlan[Any]] | None = None  # batch files too
    # What its summary says once its work is done (classify: the labels; the judge: its
    # Table 2): after its own `run`, and after a stream of stages it was part of.
    describe: Callable[[RunContext, StageStats], None] | None = None
    # Its part in a stream of stages (engine/stream.py) for a stage without a plan
    # (bootstrap), given its stats and the stream's progress bar; a stage with a plan streams
    # through it.
    stream: Callable[[RunContext, StageStats, StreamBar], StreamPart] | None = None
    write_files: Callable[[RunContext], list[Path]] | None = None  # the paper's files
    # Requests still needed for (store, target instructions, the stage's fingerprint under
    # the settings given); a stage with a plan that has none sends one per instruction it
    # has no record for.
    estimate: Callable[[RunStore | None, int, dict[str, Any]], Estimate] | None = None
    sample_template: TemplateSpec | None = None  # --estimate measures a typical prompt
    assumed_output_tokens: float = 0.0  # for --estimate before any answer was seen
    fake_answers: tuple[FakeAnswer, ...] = ()
    # Records a run made by an older release lacks, made when the run is opened for writing
    # (and computed in memory by readers of such a run).
    backfill: Callable[[RunContext], object] | None = None
    # Prepare's check on the stage's records (None for a run where it does not apply): an
    # instance it rejects is dropped with its reason, counted and written to
    # quality_drops.jsonl.
    screen: Callable[[RunContext], InstanceCheck | None] | None = None
    # What it measured, by name (run.json, report.json, the card, `Run.quality()`), and the
    # lines the dataset card says about it given every stage's numbers.
    numbers: Callable[[RunContext], dict[str, Any]] | None = None
    card_lines: Callable[[Config, dict[str, Any]], list[str]] | None = None
    writes_dataset: bool = False  # the run writes the dataset card and report after it
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
    check_inputs: Callable[[Config], None] | None = None
    # Its records are kept per version (a hash of its fingerprint): new settings (a new
    # judge) add records beside the old ones instead of being refused, and never touch other
    # stages' records.
    versioned: bool = False

    def __post_init__(self) -> None:
        teach(self.fake_answers)  # the fake backend learns how its requests are answered

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

    def streams(self) -> bool:
        """Whether it can take part in a stream of stages."""
        return self.generates and (self.stream is not None or self.plan is not None)

    def stream_part(self, ctx: RunContext, stats: StageStats, bar: StreamBar) -> StreamPart:
        """Its part in a stream: its own, else its plan built again as records come."""
        if self.stream is not None:
            return self.stream(ctx, stats, bar)
        plan = self.plan
        if plan is None:
            raise ValueError(f"stage {self.name} cannot take part in a stream")
        total = ctx.config.num_instructions if self.unit == "instructions" else None
        done = self.record_count(ctx.store) if self.record_count and total else 0
        progress = Progress(stats, total, done, quiet=ctx.quiet, stream=bar)
        return PlanPart(ctx, lambda: plan(ctx, stats), stats, progress)

    def expected(
        self, store: RunStore | None, target: int, fingerprint: dict[str, Any] | None = None
    ) -> Estimate | None:
        """The requests it still needs to reach `target` instructions (None: it sends none
        or cannot say)."""
        if self.estimate is not None:
            return self.estimate(store, target, fingerprint or {})
        if self.plan is None or self.record_count is None:
            return None
        return Estimate(target - (self.record_count(store) if store else 0), "one per instruction")

    def has_records(self, store: RunStore) -> bool:
        if self.table is not None and store.records.count(self.table):
            return True
        return self.record_count is not None and self.record_count(store) > 0

    def version(self, ctx: RunContext) -> str:
        """The version of its records the settings in use name (a versioned stage's)."""
        return version_id(ctx.fingerprints.get(self.name, {}))


def version_id(fingerprint: dict[str, Any]) -> str:
    """The version a versioned stage's records are stored under: a hash of its fingerprint
    (the settings its answers depend on)."""
    blob = json.dumps(fingerprint, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
