"""Open a run directory with the right settings, and run its stages.

`open_run` opens a run to work on it (the run's lock, settings checked against what it holds,
the backend checked first when the command may send requests). `open_view` opens one to read
it: no lock, nothing written, safe while another process generates into it. `run_stage` runs
one stage of the registry and prints its summary, also when the stage stops with an error."""

from __future__ import annotations

import contextlib
import platform
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from selfinstruct.config import Config, PricingSettings
from selfinstruct.console.stats import StageStats
from selfinstruct.console.summary import print_summary
from selfinstruct.engine.budget import Budget
from selfinstruct.engine.context import RunContext
from selfinstruct.engine.stage import Stage
from selfinstruct.errors import RunError, SelfInstructError
from selfinstruct.io.atomic import remove_stale_temporaries, write_json
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.model_file import MODEL_DISTRIBUTION
from selfinstruct.prompts import TemplateSet
from selfinstruct.report import report_line
from selfinstruct.run.estimate import StageEstimate, estimate
from selfinstruct.run.fingerprints import check_fingerprints, fingerprints
from selfinstruct.run.layers import Layers, explicit, layered
from selfinstruct.seeds import SeedTask, load_seeds, seed_hash
from selfinstruct.stages import judge, relabel
from selfinstruct.stages.bootstrap.provenance import backfill_prompt_sources
from selfinstruct.stages.quality import quality_numbers
from selfinstruct.stages.registry import STAGES
from selfinstruct.store.run_store import RunStore
from selfinstruct.store.schema import FORMAT, FORMAT_VERSION, now
from selfinstruct.version import __version__
from selfinstruct.views.funnel import run_funnel
from selfinstruct.views.tasks import backfill

VERSIONED = ("numpy", "rapidfuzz")  # what every run uses; backends add their own


@dataclass(frozen=True)
class Limits:
    """What a command may spend on the run: its tokens and its cost, in all (None: no
    limit). Not a setting of the run: each command gives its own."""

    max_tokens: int | None = None
    max_cost: float | None = None


@dataclass
class RunOptions:
    out: Path
    layers: Layers = field(default_factory=Layers)
    quiet: bool = False
    limits: Limits = field(default_factory=Limits)


def open_run(options: RunOptions, *, create: bool, generate: bool = True) -> RunContext:
    """Resolve settings, check them against the run (if any), then open or create it.
    Every input is read and checked before anything is written. `generate`: the command may
    send requests, so the backend is checked first (model file, chat template) and the
    model's identity recorded; commands that only read the store pass False."""
    given = explicit(options.layers)
    out = options.out
    exists = RunStore.exists(out)
    if not exists and not create:
        raise RunError(f"{out} is not a run directory (start one with 'selfinstruct run')")
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} exists and is not a directory")
    if not exists and out.is_dir() and any(out.iterdir()):
        raise RunError(
            f"{out} is a non-empty directory without a run in it; "
            "choose a new or empty --out directory"
        )
    store = RunStore.open(out) if exists else None
    try:
        config, templates, seeds = resolve(options.layers, store, given)
        prices = budget_prices(options.limits, config)
        choice = ModelChoice.of(config.backend, config.model, config.sections)
        known = store.get_meta("model_file") if store else None
        model_record = choice.preflight(config.prompt_style, known) if generate else known
        if generate:
            preflight_stage_models(config)
        prints = fingerprints(config, choice, templates, seed_hash(seeds), model_record)
        if store is None:
            store = RunStore.open(out)
        check_fingerprints(store, prints)
        with store.transaction():
            store.set_meta("fingerprints", prints)
            if not store.has_candidates():
                store.save_seeds(seeds)
            store.set_meta("config", config.to_dict())
            if store.get_meta("created_at") is None:
                store.set_meta("created_at", now())
            if generate:
                store.set_meta("model_file", model_record)
                store.set_meta("versions", versions(choice, model_record))
        backfill(store, config.prompt_style)
        backfill_prompt_sources(store, config, seeds)
        remove_stale_temporaries(out)
        ctx = context(config, store, templates, seeds, quiet=options.quiet, prints=prints)
        ctx.budget = budget(options.limits, prices, store)
        write_run_file(ctx)
        return ctx
    except BaseException:
        if store is not None:
            store.close()
        raise


def open_view(run_dir: Path, layers: Layers | None = None, *, quiet: bool = False) -> RunContext:
    """A run opened to read: its stored settings (under `layers`, when given), seeds and
    templates; the store in read-only mode (no lock taken, nothing written)."""
    layers = layers or Layers()
    store = RunStore.open_readonly(run_dir)
    try:
        config, templates, seeds = resolve(layers, store, explicit(layers))
        return context(config, store, templates, seeds, quiet=quiet)
    except BaseException:
        store.close()
        raise


def context(
    config: Config,
    store: RunStore,
    templates: TemplateSet,
    seeds: list[SeedTask],
    *,
    quiet: bool = False,
    prints: dict[str, dict] | None = None,
) -> RunContext:
    """A run's context, with the models of the stages that have their own (the judge) and
    each stage's fingerprint under these settings (`prints`, when already computed)."""
    models = {stage.name: stage.choice(config) for stage in STAGES if stage.model is not None}
    if prints is None:
        choice = ModelChoice.of(config.backend, config.model, config.sections)
        known = store.get_meta("model_file")
        prints = fingerprints(config, choice, templates, seed_hash(seeds), known)
    return RunContext(
        config, store, templates, seeds, quiet=quiet, models=models, fingerprints=prints
    )


def budget_prices(limits: Limits, config: Config) -> dict[str, PricingSettings]:
    """Each stage's prices, checked before anything is written: a cost limit needs some."""
    prices = {stage.name: stage.prices(config) for stage in STAGES}
    if limits.max_cost is not None and not any(
        p.input_per_million or p.output_per_million for p in prices.values()
    ):
        raise RunError(
            "--max-cost needs prices: set pricing.input_per_million and "
            "pricing.output_per_million (e.g. --set pricing.input_per_million=0.15), and "
            "judge.input_per_million and judge.output_per_million for a judge"
        )
    return prices


def budget(limits: Limits, prices: dict[str, PricingSettings], store: RunStore) -> Budget | None:
    """The run's budget, its spending so far counted from the answers it has stored; None
    without limits."""
    if limits.max_tokens is None and limits.max_cost is None:
        return None
    found = Budget(limits.max_tokens, limits.max_cost, prices=prices)
    for stage, (prompt, completion) in store.usage_by_stage().items():
        found.spent_tokens += prompt + completion
        found.spent_cost += found.price(stage, prompt, completion)
    return found


def preflight_stage_models(config: Config) -> None:
    """Check the model of each stage that has its own and will run (the judge), in its
    prompt style, before anything is written."""
    for stage in STAGES:
        if stage.model is not None and stage.active(config):
            stage.choice(config).preflight(stage.style(config), identify=False)


def estimate_run(options: RunOptions) -> tuple[list[StageEstimate], Config]:
    """--estimate for a run directory, existing or not (with the settings it would run
    with); nothing is written."""
    if not RunStore.exists(options.out):
        config, templates, seeds = resolve(options.layers, None, explicit(options.layers))
        return estimate(config, templates, seeds, None), config
    ctx = open_view(options.out, options.layers, quiet=options.quiet)
    try:
        return estimate(ctx.config, ctx.templates, ctx.seeds, ctx.store), ctx.config
    finally:
        ctx.store.close()


def resolve(
    layers: Layers, store: RunStore | None, given: dict[str, Any]
) -> tuple[Config, TemplateSet, list[SeedTask]]:
    """Settings (the run's stored ones under what the user gave), templates and seeds."""
    config = layered(layers, store.get_meta("config") if store else None, given)
    templates = TemplateSet(config.templates or None)
    for stage in STAGES:
        templates.check_all(stage.style(config), stage.templates)
        if stage.check is not None:
            stage.check(config)
    stored_seeds = store.load_seeds() if store and "seeds" not in given else []
    return config, templates, stored_seeds or load_seeds(config.seeds or None)


def versions(choice: ModelChoice, model_record: dict[str, Any] | None) -> dict[str, str]:
    """Versions of the packages this run's settings use (the model's package only when the
    packaged model is the one run)."""
    found = {"python": platform.python_version(), "selfinstruct": __version__}
    packages = [*VERSIONED, *choice.backend.packages]
    if model_record and model_record.get("packaged"):
        packages.append(MODEL_DISTRIBUTION)
    for name in packages:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def write_run_file(ctx: RunContext) -> None:
    """run.json: a human-readable description of the run (the database is authoritative)."""
    store, config = ctx.store, ctx.config
    funnel = run_funnel(store, config.num_instructions, config.prompt_style)
    write_json(
        store.run_dir / "run.json",
        {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": store.get_meta("created_at"),
            "updated_at": now(),
            "model": model_description(ctx, store.get_meta("model_file")),
            "seeds": {
                "path": config.seeds or "(packaged)",
                "count": len(ctx.seeds),
                "sha256": seed_hash(ctx.seeds),
            },
            "versions": store.get_meta("versions"),
            "counts": run_counts(ctx),
            "labels": funnel.labels,
            "funnel": funnel.as_dict(),
            **quality_numbers(ctx),
            "config": config.to_dict(),
        },
    )


def run_counts(ctx: RunContext) -> dict[str, int]:
    """Records of each kind (judgments: the current judge's; only with the checks on)."""
    store, config = ctx.store, ctx.config
    counts = {
        "instructions": store.instruction_count(),
        "labels": store.count("labels"),
        "instances": store.count("instances"),
    }
    if judge.enabled(config):
        counts["judgments"] = len(store.judgments(judge.current_judge(ctx)))
    if relabel.enabled(config) and store.has_quality:
        counts["relabels"] = store.count("relabels")
    return counts


def model_description(ctx: RunContext, model_record: dict[str, Any] | None) -> dict[str, Any]:
    """Which model answered: backend and name, plus what identifies it (a model file's path
    and sha256; a server's address without credentials)."""
    choice = ctx.choice
    found: dict[str, Any] = {"backend": choice.name, "model": choice.label()}
    if model_record:
        found.update({k: model_record[k] for k in ("file", "sha256", "size") if k in model_record})
    found.update(choice.describe(ctx.config.prompt_style))
    return found


def run_stage(ctx: RunContext, stage: Stage) -> StageStats:
    """Run one stage, then write the paper's files it derives, record it in the run and print
    its summary. A stage that stops with an error (or Ctrl-C) does the same first, as far as
    it can, so the error line comes after the counts it refers to."""
    stats = stage.new_stats()
    try:
        stage.run(ctx, stats)
    except BaseException as exc:
        _finish(ctx, stage, stats, failed=True)
        if isinstance(exc, SelfInstructError):
            for path in _after(ctx, stage, stats):
                print(report_line(path), file=sys.stderr)
        raise
    _finish(ctx, stage, stats, failed=False)
    stats.outputs += _after(ctx, stage, stats)
    return stats


def _after(ctx: RunContext, stage: Stage, stats: StageStats) -> list[Path]:
    """The stage's `after` step; a failure there is a warning (the stage's work is saved)."""
    if stage.after is None:
        return []
    try:
        return stage.after(ctx, stats)
    except Exception as exc:  # a report must never cost the user the data already written
        print(
            f"warning: {stage.name}: {exc.__class__.__name__}: {exc}; what the stage wrote is "
            f"complete (selfinstruct report --run {ctx.store.run_dir} tries the report again)",
            file=sys.stderr,
        )
        return []


def _finish(ctx: RunContext, stage: Stage, stats: StageStats, *, failed: bool) -> None:
    stats.stop()
    if not failed:
        _record(ctx, stage, stats)
        print_summary(stats, stage.prices(ctx.config), quiet=ctx.quiet)
        return
    # After a failure: the counts first, then whatever can still be recorded; a second error
    # (a full disk, say) must not hide the first, which the caller raises again.
    print_summary(stats, stage.prices(ctx.config), quiet=ctx.quiet)
    with contextlib.suppress(Exception):
        _record(ctx, stage, stats)


def _record(ctx: RunContext, stage: Stage, stats: StageStats) -> None:
    """The paper's files the stage derives, its row in the store's stage runs, run.json."""
    if stage.write_files is not None:
        stage.write_files(ctx)
    ctx.store.add_stage_run(stats.stage, stats.started_at, stats.seconds, stats.as_dict())
    write_run_file(ctx)
