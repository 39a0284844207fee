"""Opening a run directory with the right settings.

`open_run` opens a run to work on it (the run's lock, settings checked against what it holds,
the backend checked first when the command may send requests, records older releases did not
make backfilled). `open_view` opens one to read it: no lock, nothing written, safe while
another process generates into it. Both give the `RunContext` stages work with."""

from __future__ import annotations

import platform
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from selfinstruct.config import Config, PricingSettings
from selfinstruct.engine.budget import Budget
from selfinstruct.engine.context import RunContext
from selfinstruct.errors import RunError
from selfinstruct.io.atomic import remove_stale_temporaries
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.model_file import MODEL_DISTRIBUTION
from selfinstruct.prompts import TemplateSet
from selfinstruct.run.fingerprints import check_fingerprints, fingerprints
from selfinstruct.run.layers import Layers, explicit, layered
from selfinstruct.run.run_file import write_run_file
from selfinstruct.seeds import SeedTask, load_seeds, seed_hash
from selfinstruct.stages import registry, review
from selfinstruct.store.run_store import RunStore
from selfinstruct.store.schema import now
from selfinstruct.version import __version__

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
            if not store.pool.has_candidates():
                store.seeds.save(seeds)
            store.set_meta("config", config.to_dict())
            if store.get_meta("created_at") is None:
                store.set_meta("created_at", now())
            if generate:
                store.set_meta("model_file", model_record)
                store.set_meta("versions", versions(choice, model_record))
        ctx = context(config, store, templates, seeds, quiet=options.quiet, prints=prints)
        for stage in registry.STAGES:  # records a run made by an older release lacks
            if stage.backfill is not None:
                stage.backfill(ctx)
        remove_stale_temporaries(out)
        ctx.budget = budget(options.limits, prices, store)
        write_run_file(ctx)
        return ctx
    except BaseException:
        if store is not None:
            store.close()
        raise


@contextmanager
def opened(options: RunOptions, *, create: bool, generate: bool) -> Iterator[RunContext]:
    """`open_run` for as long as the block lasts (the backends and the store closed after)."""
    ctx = open_run(options, create=create, generate=generate)
    try:
        yield ctx
    finally:
        try:
            ctx.close()
        finally:
            ctx.store.close()


@contextmanager
def viewed(
    run_dir: Path, layers: Layers | None = None, *, quiet: bool = False
) -> Iterator[RunContext]:
    """`open_view` for as long as the block lasts."""
    ctx = open_view(run_dir, layers, quiet=quiet)
    try:
        yield ctx
    finally:
        ctx.store.close()


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
    stages = registry.STAGES
    models = {stage.name: stage.choice(config) for stage in stages if stage.model is not None}
    if prints is None:
        choice = ModelChoice.of(config.backend, config.model, config.sections)
        known = store.get_meta("model_file")
        prints = fingerprints(config, choice, templates, seed_hash(seeds), known)
    screens = (
        *(stage.screen for stage in stages if stage.screen is not None),
        review.screen,  # people's verdicts (not a stage: it sends no request)
    )
    return RunContext(
        config,
        store,
        templates,
        seeds,
        quiet=quiet,
        models=models,
        fingerprints=prints,
        screens=screens,
    )


def budget_prices(limits: Limits, config: Config) -> dict[str, PricingSettings]:
    """Each stage's prices, checked before anything is written: a cost limit needs some."""
    prices = {stage.name: stage.prices(config) for stage in registry.STAGES}
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
    for stage, (prompt, completion) in store.responses.usage_by_stage().items():
        found.spent_tokens += prompt + completion
        found.spent_cost += found.price(stage, prompt, completion)
    return found


def preflight_stage_models(config: Config) -> None:
    """Check the model of each stage that has its own and will run (the judge), in its
    prompt style, before anything is written."""
    for stage in registry.STAGES:
        if stage.model is not None and stage.active(config):
            stage.choice(config).preflight(stage.style(config), identify=False)


def resolve(
    layers: Layers, store: RunStore | None, given: dict[str, Any]
) -> tuple[Config, TemplateSet, list[SeedTask]]:
    """Settings (the run's stored ones under what the user gave), templates and seeds."""
    config = layered(layers, store.get_meta("config") if store else None, given)
    templates = TemplateSet(config.templates or None)
    for stage in registry.STAGES:
        templates.check_all(stage.style(config), stage.templates)
        if stage.check_inputs is not None:
            stage.check_inputs(config)
    stored_seeds = store.seeds.load() if store and "seeds" not in given else []
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
