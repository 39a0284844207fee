"""The Python API: a run directory as an object. The run and stage commands, prepare, export
and report are thin layers over it.

    import selfinstruct

    run = selfinstruct.Run.create("runs/x", backend="fake", num_instructions=20)
    run.generate()                      # bootstrap, classify, instances, prepare
    for task in run.instructions():     # typed records
        print(task.id, task.instruction, task.is_classification)
    parsed = run.instances()            # every parsed instance, before prepare's filters
    kept = run.dataset()                # the instances prepare keeps: the dataset
    run.export("alpaca", "x.json")      # the dataset, in one format
    frame = run.to_pandas(kept=True)    # the dataset as a DataFrame (needs pandas)

Each call opens the run for as long as it works on it: generating takes the run's lock (one
writer at a time, the CLI included); reading opens the store read-only, so it works while
another process generates. Errors are the typed exceptions of `selfinstruct.errors`.

Settings are given as keyword arguments: the core keys (`num_instructions`, `prompt_style`,
`random_seed`, `seeds`, `templates`, `backend`, `model`) and whole sections as dicts
(`bootstrap={"temperature": 1.0}`, `openai={"base_url": ...}`), layered over the packaged
defaults and, for an existing run, over its stored settings.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfinstruct.card.document import write_card
from selfinstruct.card.gather import imported_card, quality_text
from selfinstruct.config import Config
from selfinstruct.console.stats import StageStats
from selfinstruct.console.summary import print_summary
from selfinstruct.dataset.build import build
from selfinstruct.dataset.outputs import EXPORT_DIR, write_outputs
from selfinstruct.dataset.settings import decontaminator_for
from selfinstruct.engine.batch_files import read_batch, write_batch
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.plan import StagePlan
from selfinstruct.engine.stage import Stage
from selfinstruct.errors import EmptyDatasetError, InputError, RunError
from selfinstruct.exporters import formats
from selfinstruct.filters.screen import Screen
from selfinstruct.importers.paper import read_tasks
from selfinstruct.prompts import TemplateSet
from selfinstruct.quality.judgment import Judgment
from selfinstruct.run.drive import run_stage, run_stages
from selfinstruct.run.estimate import StageEstimate, estimate_run
from selfinstruct.run.layers import Layers, layered, merge_settings
from selfinstruct.run.open import Limits, RunOptions, opened, viewed
from selfinstruct.seeds import load_seeds
from selfinstruct.stages import judge, prepare, registry
from selfinstruct.stages.bootstrap.provenance import NO_SOURCES, prompt_sources
from selfinstruct.store.reviews import StoredRating
from selfinstruct.store.run_store import PromptSources, RunStore
from selfinstruct.views.funnel import stats_losses
from selfinstruct.views.tasks import parse_task, parsed_tasks

if TYPE_CHECKING:
    from selfinstruct.report.build import Written

PANDAS_HINT = "to_pandas needs pandas: pip install pandas (or the hub extra: 'selfinstruct[hub]')"
DATASETS_HINT = "to_hf_dataset needs the datasets package: pip install 'selfinstruct[hub]'"


def provenance_refused(format: str) -> str:
    carrying = ", ".join(name for name, found in formats().items() if not found.encoded)
    return (
        f"{format} records cannot carry provenance (each is an encoded, shuffled example); "
        f"use {carrying}"
    )


@dataclass(frozen=True)
class Instruction:
    """A generated instruction (`id` is its id in the run store); `seed_ids` and
    `machine_ids` are the seed tasks and machine instructions in the bootstrap prompt that
    produced it, each in prompt order."""

    id: int
    instruction: str
    is_classification: bool | None  # None until the classify stage labelled it
    most_similar: dict[str, float]
    avg_similarity_score: float
    request_idx: int
    seed_ids: tuple[str, ...] = ()
    machine_ids: tuple[int, ...] = ()


@dataclass(frozen=True)
class Instance:
    """A parsed instance of an instruction (`id`: "<instruction id>.<position>")."""

    id: str
    instruction_id: int
    instruction: str
    input: str
    output: str
    is_classification: bool


@dataclass
class Run:
    """A run directory (created with `Run.create`, opened with `Run.open`)."""

    path: Path
    layers: Layers = field(default_factory=Layers)
    quiet: bool = False
    limits: Limits = field(default_factory=Limits)

    def with_budget(self, max_tokens: int | None = None, max_cost: float | None = None) -> Run:
        """This run, generating only while its spending (all its stored answers, priced at
        the run's prices) stays within these limits; BudgetExhausted when the next request
        could exceed them. Call again with larger limits to continue."""
        return dataclasses.replace(self, limits=Limits(max_tokens, max_cost))

    @classmethod
    def create(
        cls,
        path: str | Path,
        *,
        config_file: str | Path | None = None,
        quiet: bool = False,
        **settings: Any,
    ) -> Run:
        """Create a run directory (or reopen the same run) with these settings; the backend
        is checked (model file, chat template) before anything is written."""
        run = cls(Path(path), _layers(config_file, settings), quiet)
        with run._opened(create=True, generate=True):
            pass
        return run

    @classmethod
    def open(cls, path: str | Path, *, quiet: bool = False, **settings: Any) -> Run:
        """An existing run; `settings` apply to what it does next (a change that would alter
        records it already holds is refused, as on the command line)."""
        path = Path(path)
        if not RunStore.exists(path):
            raise RunError(f"{path} is not a run directory (start one with 'selfinstruct run')")
        return cls(path, _layers(None, settings), quiet)

    # -- generating -------------------------------------------------------------------------
    def generate(
        self, num_instructions: int | None = None, *, stream: bool | None = None, **settings: Any
    ) -> dict[str, StageStats]:
        """Run every stage in order (resuming where the run stands); returns each stage's
        counts by name. An empty dataset raises EmptyDatasetError. The stages a server
        answers share one stream of requests (`stream` None); True streams them with any
        backend, False runs them one after another."""
        if num_instructions is not None:
            settings["num_instructions"] = num_instructions
        with self._opened(create=True, generate=True, **settings) as ctx:
            stages = [stage for stage in registry.STAGES if stage.active(ctx.config)]
            return run_stages(ctx, stages, stream=stream)

    def stage(self, stage: str | Stage, **settings: Any) -> StageStats:
        """Run one stage, given as a `Stage` or by name (see
        `selfinstruct.stages.registry.STAGES`)."""
        stage = registry.get_stage(stage) if isinstance(stage, str) else stage
        with self._opened(create=stage.creates_run, generate=stage.generates, **settings) as ctx:
            return run_stage(ctx, stage)

    def write_batch(self, name: str, path: str | Path, **settings: Any) -> int:
        """Write a stage's pending requests as an OpenAI Batch API file (what `vllm
        run-batch` reads); returns how many."""
        stage, plan = _batch_stage(name)
        with self._opened(create=False, generate=True, **settings) as ctx:
            ctx.choice_for(name).require("batch", "--batch-out")
            return write_batch(ctx, plan(ctx, stage.new_stats()), Path(path))

    def read_batch(self, name: str, path: str | Path, **settings: Any) -> Counter[str]:
        """Store a batch results file's answers in the run's cache (the stage then runs
        without calling the model); returns what happened to its lines."""
        stage, plan = _batch_stage(name)
        with self._opened(create=False, generate=True, **settings) as ctx:
            ctx.choice_for(name).require("batch", "--batch-in")
            return read_batch(ctx, plan(ctx, stage.new_stats()), Path(path))

    # -- reading ----------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        """The run's stored settings."""
        with self._view() as ctx:
            return ctx.config

    def instructions(self) -> list[Instruction]:
        with self._view() as ctx:
            labels = ctx.store.labels.all()
            sources = prompt_sources(ctx.store, ctx.config, ctx.seeds)
            return [
                Instruction(
                    row.id,
                    row.instruction,
                    labels[row.id][1] if row.id in labels else None,
                    row.most_similar,
                    row.avg_similarity_score,
                    row.request_idx,
                    found.seed_ids,
                    found.machine_ids,
                )
                for row in ctx.store.pool.instructions()
                for found in [sources.get(row.request_idx, NO_SOURCES)]
            ]

    def prompt_sources(self) -> dict[int, PromptSources]:
        """Which seed tasks and machine instructions each bootstrap prompt showed (ids in
        prompt order), by request index."""
        with self._view() as ctx:
            return prompt_sources(ctx.store, ctx.config, ctx.seeds)

    def instances(self) -> list[Instance]:
        """Every parsed instance, before prepare's filters: more than the dataset holds
        (`dataset()` gives the instances prepare keeps)."""
        with self._view() as ctx:
            return [
                Instance(
                    record.id,
                    task.instruction_id,
                    task.instruction,
                    record.input,
                    record.output,
                    task.is_classification,
                )
                for task in parsed_tasks(ctx.store, ctx.config.prompt_style)
                for record in task.instances
            ]

    def dataset(self) -> list[dict[str, str]]:
        """The dataset: the instances prepare keeps (after its filters), as
        instruction/input/output dicts, what `export` writes (`instances()` gives every
        parsed one)."""
        with self._view() as ctx:
            data = prepare.prepared_data(ctx, prepare.STAGE_DEF.new_stats())
        return [
            {"instruction": e.instruction, "input": e.input, "output": e.output}
            for e in data.training
        ]

    def export(self, format: str, path: str | Path, *, provenance: bool = False) -> int:
        """Write the run's dataset in one format (`selfinstruct.exporters.formats()`:
        alpaca, openai-chat, prompt-completion, sharegpt; parquet and hf with the `hub`
        extra); returns the records written. Reads the run without writing to it.
        `provenance`: each record also gets `instruction_id`, `seed_ids` and `machine_ids`
        (not in formats of encoded records: prompt-completion)."""
        known = formats()
        if format not in known:
            raise InputError("format", f"unknown format '{format}' (known: {', '.join(known)})")
        chosen = known[format]
        if provenance and chosen.encoded:
            raise InputError("--provenance", provenance_refused(format))
        path = Path(path)
        with self._view() as ctx:
            stats = prepare.STAGE_DEF.new_stats()
            data = prepare.prepared_data(ctx, stats, provenance=provenance)
        if not data.training:
            losses = stats_losses(stats)
            raise EmptyDatasetError(
                f"{self.path} holds no instance to export ({losses}); {path} was not written"
            )
        chosen.write(path, data.training, data.encoded)
        return len(data.encoded) if chosen.encoded else len(data.training)

    def quality(self) -> dict[str, Any]:
        """The quality numbers of the checks the run has made: `quality` (the paper's Table 2
        from the current judge's answers, with 95% intervals), `label_agreement` and `review`
        (people's ratings: Table 2 from people, kappa between reviewers and against each
        judge)."""
        with self._view() as ctx:
            return registry.stage_numbers(ctx)

    def judgments(self) -> dict[str, Judgment]:
        """The current judge's judgment of each instance, by instance id (empty without a
        judge)."""
        with self._view() as ctx:
            if not judge.enabled(ctx.config):
                return {}
            return judge.judgments(ctx.store, judge.current_judge(ctx))

    def reviews(self, reviewer: str | None = None) -> list[StoredRating]:
        """People's ratings (`selfinstruct review`), of one reviewer or all, in instance and
        reviewer order: complete ones and those still in progress (`complete` says which).
        Their numbers (Table 2 from people, kappas) are `quality()["review"]`."""
        with self._view() as ctx:
            return ctx.store.reviews.ratings(reviewer)

    def report(
        self,
        out: str | Path | None = None,
        compare: Sequence[str | Path] = (),
        *,
        verbs: bool | None = None,
    ) -> Written:
        """Write the run's HTML report (default RUN/report.html) and its numbers beside it
        (report.json), compared with other runs when given. Reads the runs without writing
        to them; `verbs=False` leaves out the verb-noun chart (no spaCy parse; the default
        is the run's prepare.report_verbs)."""
        from selfinstruct.report.build import write_report

        with ExitStack() as stack:
            ctx = stack.enter_context(self._view())
            others = [stack.enter_context(viewed(Path(p), quiet=True)) for p in compare]
            return write_report(ctx, Path(out) if out else None, others, verbs=verbs)

    def estimate(self, **settings: Any) -> list[StageEstimate]:
        """Expected requests, tokens and cost of what is left to do, by stage (nothing is
        written; the run directory need not exist yet)."""
        layers = _merged(self.layers, settings)
        return estimate_run(RunOptions(self.path, layers, self.quiet))

    def to_pandas(self, *, kept: bool = False) -> Any:
        """A pandas DataFrame, one row per instance: every parsed one (as `instances()`), or
        with `kept=True` the dataset, the ones prepare keeps (as `dataset()`). Needs pandas
        (the `hub` extra brings it)."""
        try:
            import pandas
        except ImportError as exc:
            raise RunError(PANDAS_HINT) from exc
        return pandas.DataFrame(self._rows(kept))

    def to_hf_dataset(self, *, kept: bool = False) -> Any:
        """A Hugging Face `datasets.Dataset`, one row per instance: every parsed one, or with
        `kept=True` the ones prepare keeps (as `to_pandas`). Needs the `hub` extra."""
        try:
            import datasets
        except ImportError as exc:
            raise RunError(DATASETS_HINT) from exc
        return datasets.Dataset.from_list(self._rows(kept))

    def _rows(self, kept: bool) -> list[dict[str, Any]]:
        """The dataset's rows (`kept`), or every parsed instance's."""
        return list(self.dataset()) if kept else [vars(i) for i in self.instances()]

    # -- opening ----------------------------------------------------------------------------
    def _opened(
        self, *, create: bool, generate: bool, **settings: Any
    ) -> AbstractContextManager[RunContext]:
        layers = _merged(self.layers, settings)
        options = RunOptions(self.path, layers, self.quiet, self.limits)
        return opened(options, create=create, generate=generate)

    def _view(self) -> AbstractContextManager[RunContext]:
        return viewed(self.path, self.layers, quiet=self.quiet)


def _batch_stage(name: str) -> tuple[Stage, Callable[[RunContext, StageStats], StagePlan[Any]]]:
    """A stage whose requests can go through batch files, and its plan."""
    stage = registry.get_stage(name)
    if stage.plan is None:
        raise InputError("stage", f"the {name} stage cannot use batch files")
    return stage, stage.plan


def _layers(
    config_file: str | Path | None, settings: dict[str, Any], sets: tuple[str, ...] = ()
) -> Layers:
    return Layers(Path(config_file) if config_file else None, dict(settings), sets)


def _merged(layers: Layers, settings: dict[str, Any]) -> Layers:
    """Settings given to one call, over the run object's own (keyword arguments are nested
    already: core keys, and sections as dicts)."""
    return Layers(layers.config_file, merge_settings(layers.given, settings), layers.sets)


def prepare_paper_files(
    instances: str | Path,
    labels: str | Path,
    out: str | Path,
    *,
    config_file: str | Path | None = None,
    sets: tuple[str, ...] = (),
    quiet: bool = True,
    **settings: Any,
) -> list[Path]:
    """Stage 4 on the paper's intermediate files from another run
    (machine_generated_instances.jsonl and is_clf_or_not_*.jsonl): writes the fine-tuning
    data, exports and a dataset card (with what those files tell) into `out`; returns the
    paths written."""
    config = layered(_layers(config_file, settings, sets))
    templates = TemplateSet(config.templates or None)
    templates.check_all(config.prompt_style, [])  # only the fine-tuning layouts are used
    tasks = read_tasks(Path(instances), Path(labels))
    stats = prepare.STAGE_DEF.new_stats()
    parsed = [parse_task(task, "completion", number) for number, task in enumerate(tasks)]
    screen = Screen(decontaminator=decontaminator_for(config))
    data = build(parsed, load_seeds(config.seeds or None), config, templates, stats, None, screen)
    stats.stop()
    print_summary(stats, quiet=quiet)
    if not data.generated:
        losses = stats_losses(stats)
        raise EmptyDatasetError(
            f"no instance of the {len(tasks)} tasks in {instances} "
            f"survived ({losses}); nothing was written"
        )
    paths = write_outputs(Path(out), data)
    labelled = [(task.instruction, task.is_classification) for task in tasks]
    sources = [Path(instances), Path(labels)]
    quality = quality_text(config, registry.card_lines(config, {}))
    card = imported_card(config, data, stats, labelled, sources, Path(out), quality)
    paths.append(write_card(Path(out) / EXPORT_DIR, card))
    return paths
