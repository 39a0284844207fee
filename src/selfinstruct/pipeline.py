"""Open a run directory with the right settings, and run stages on it."""

from __future__ import annotations

import platform
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from selfinstruct import __version__
from selfinstruct.config import Config, config_from_dict, load_config, validate
from selfinstruct.errors import RunError
from selfinstruct.estimate import estimate, format_estimate
from selfinstruct.exporters.jsonl import remove_stale_temporaries, write_json
from selfinstruct.inputs.text import read_text
from selfinstruct.llm.model_file import MODEL_DISTRIBUTION
from selfinstruct.llm.registry import BACKEND_PACKAGES, model_label, model_name, preflight
from selfinstruct.llm.urls import public_url
from selfinstruct.prompts import TemplateSet
from selfinstruct.reporting.funnel import (
    EmptyDatasetError,
    empty_dataset_message,
    prepared_counts,
    run_funnel,
    shortfall_warning,
)
from selfinstruct.reporting.stats import StageStats
from selfinstruct.reporting.summary import print_summary
from selfinstruct.seeds import SeedTask, load_seeds, seed_hash
from selfinstruct.stages.bootstrap import Bootstrap
from selfinstruct.stages.classify import run_classify
from selfinstruct.stages.context import RunContext
from selfinstruct.stages.instances import run_instances
from selfinstruct.stages.prepare import GeneratedTask, build, prepare_stats, write_outputs
from selfinstruct.store import paper_files
from selfinstruct.store.fingerprint import check_fingerprints, fingerprints
from selfinstruct.store.run_store import RunStore
from selfinstruct.store.schema import FORMAT, FORMAT_VERSION, now

PATH_KEYS = ("seeds", "templates")
VERSIONED = ("numpy", "rapidfuzz")  # what every run uses; backends add their own


@dataclass
class RunOptions:
    out: Path
    config_file: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    quiet: bool = False


def open_run(options: RunOptions, *, create: bool, generate: bool = True) -> RunContext:
    """Resolve settings, check them against the run (if any), then open or create it.
    Every input is read and checked before anything is written. `generate`: the command may
    send requests, so the backend is checked first (model file, chat template) and the
    model's identity recorded; commands that only read the store pass False."""
    explicit = explicit_settings(options)
    out = options.out
    exists = RunStore.exists(out)
    if not exists and not create:
        raise RunError(f"{out} is not a run directory (start one with 'selfinstruct run')")
    if out.exists() and not out.is_dir():
        raise RunError(f"{out} exists and is not a directory")
    if not exists and out.is_dir() and any(out.iterdir()):
        raise RunError(f"{out} is a non-empty directory without a run in it; "
                       "choose a new or empty --out directory")
    store = RunStore.open(out) if exists else None
    try:
        config, templates, seeds = resolve(explicit, store)
        known = store.get_meta("model_file") if store else None
        model_record = preflight(config, known) if generate else known
        prints = fingerprints(config, templates, seed_hash(seeds), model_record)
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
                store.set_meta("versions", versions(config, model_record))
        remove_stale_temporaries(out)
        ctx = RunContext(config, store, templates, seeds, quiet=options.quiet)
        write_run_file(ctx)
        return ctx
    except BaseException:
        if store is not None:
            store.close()
        raise


def resolve(explicit: dict[str, Any],
            store: RunStore | None) -> tuple[Config, TemplateSet, list[SeedTask]]:
    """Settings (the run's stored ones under what the user gave), templates and seeds."""
    base = store.get_meta("config") if store else None
    config = config_from_dict(merge(base or Config().to_dict(), explicit), Path("<settings>"))
    validate(config)
    templates = TemplateSet(config.templates or None)
    templates.check_all(config.prompt_style)
    stored_seeds = store.load_seeds() if store and "seeds" not in explicit else []
    return config, templates, stored_seeds or load_seeds(config.seeds or None)


def print_estimate(options: RunOptions) -> str:
    """The --estimate table for a run (existing or not); nothing is written."""
    explicit = explicit_settings(options)
    store = RunStore.open(options.out) if RunStore.exists(options.out) else None
    try:
        config, templates, seeds = resolve(explicit, store)
        return format_estimate(estimate(config, templates, seeds, store), config)
    finally:
        if store is not None:
            store.close()


def explicit_settings(options: RunOptions) -> dict[str, Any]:
    """Settings the user gave: the config file's, then flags on top (nested dict)."""
    explicit: dict[str, Any] = {}
    if options.config_file is not None:
        load_config(options.config_file)  # full check with file/line/field errors
        explicit = tomllib.loads(read_text(options.config_file, allow_empty=True))
        base_dir = options.config_file.resolve().parent
        for key in PATH_KEYS:
            if explicit.get(key):
                explicit[key] = str((base_dir / explicit[key]).resolve())
    for dotted, value in options.overrides.items():
        if value is None:
            continue
        section, _, name = dotted.rpartition(".")
        target = explicit.setdefault(section, {}) if section else explicit
        target[name] = str(Path(value).resolve()) if name in PATH_KEYS and value else value
    return explicit


def merge(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def versions(config: Config, model_record: dict[str, Any] | None) -> dict[str, str]:
    """Versions of the packages this run's settings use (the model's package only when the
    packaged model is the one run)."""
    found = {"python": platform.python_version(), "selfinstruct": __version__}
    packages = [*VERSIONED, *BACKEND_PACKAGES.get(config.backend, ())]
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
    write_json(store.run_dir / "run.json", {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "created_at": store.get_meta("created_at"),
        "updated_at": now(),
        "model": model_description(config, store.get_meta("model_file")),
        "seeds": {"path": config.seeds or "(packaged)", "count": len(ctx.seeds),
                  "sha256": seed_hash(ctx.seeds)},
        "versions": store.get_meta("versions"),
        "counts": {"instructions": store.instruction_count(), "labels": store.count("labels"),
                   "instances": store.count("instances")},
        "labels": funnel.labels,
        "funnel": funnel.as_dict(),
        "config": config.to_dict(),
    })


def model_description(config: Config, model_record: dict[str, Any] | None) -> dict[str, Any]:
    """Which model answered: backend and name, plus what identifies it (a model file's path
    and sha256; a server's address without credentials)."""
    found: dict[str, Any] = {"backend": config.backend, "model": model_label(config)}
    if model_record:
        found.update({k: model_record[k] for k in ("file", "sha256", "size") if k in model_record})
        if config.prompt_style == "chat" and config.embedded.chat_format:
            found["chat_format"] = config.embedded.chat_format
    if config.backend == "openai":
        found["base_url"] = public_url(config.openai.base_url)
    return found


def _finish(ctx: RunContext, stats: StageStats) -> StageStats:
    ctx.store.add_stage_run(stats.stage, stats.started_at, stats.seconds, stats.as_dict())
    write_run_file(ctx)
    print_summary(stats, ctx.config.pricing, quiet=ctx.quiet)
    return stats


def stage_bootstrap(ctx: RunContext) -> StageStats:
    try:
        stats = Bootstrap(ctx).run(ctx.config.num_instructions)
    finally:
        paper_files.write_instructions(ctx.store)
    return _finish(ctx, stats)


def stage_classify(ctx: RunContext) -> StageStats:
    try:
        stats = run_classify(ctx)
    finally:
        paper_files.write_labels(ctx.store, model_label(ctx.config), ctx.config.prompt_style,
                                 old_engine=model_name(ctx.config))
    return _finish(ctx, stats)


def stage_instances(ctx: RunContext) -> StageStats:
    try:
        stats = run_instances(ctx)
    finally:
        paper_files.write_instances(ctx.store)
    return _finish(ctx, stats)


def generated_tasks(store: RunStore) -> list[GeneratedTask]:
    labels, raw = store.labels(), store.raw_instances()
    return [
        GeneratedTask(row.instruction, labels[row.id][1], raw[row.id][0],
                      raw[row.id][1] == "length")
        for row in store.instructions() if row.id in raw and row.id in labels
    ]


def stage_prepare(ctx: RunContext) -> tuple[StageStats, list[Path]]:
    """Stage 4 from the store. A dataset with no instance is an error (nothing is written);
    one far smaller than asked for gets a warning."""
    stats = prepare_stats()
    data = build(generated_tasks(ctx.store), ctx.seeds, ctx.config, ctx.templates,
                 ctx.config.prompt_style, stats)
    with ctx.store.transaction():
        ctx.store.set_meta("prepared", prepared_counts(stats.as_dict()))
    funnel = run_funnel(ctx.store, ctx.config.num_instructions, ctx.config.prompt_style)
    paths = write_outputs(ctx.store.run_dir, data) if data.generated else []
    if data.generated and (warning := shortfall_warning(funnel)):
        stats.warnings.append(warning)
    stats.stop()
    _finish(ctx, stats)
    if not data.generated:
        raise EmptyDatasetError(empty_dataset_message(funnel))
    return stats, paths
