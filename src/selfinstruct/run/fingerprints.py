"""What each generating stage's output depends on; a rerun may not change it once the stage
has produced records (that would mix two runs in one directory)."""

from __future__ import annotations

import dataclasses
from typing import Any

from selfinstruct.config import Config
from selfinstruct.errors import RunError
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.prompts import TemplateSet
from selfinstruct.stages import registry
from selfinstruct.store.run_store import RunStore

# Keys added to every stage's fingerprint after runs existed, with the value that held before.
COMMON_ADDED = {"chat_format": ""}


def fingerprints(
    config: Config,
    choice: ModelChoice,
    templates: TemplateSet,
    seed_hash: str,
    model_record: dict[str, Any] | None = None,
) -> dict[str, dict]:
    """Per generating stage: what its records depend on. model_record: what the backend's
    preflight learnt about the run's model (its sha256). A stage with a model of its own (the
    judge) depends on that model instead."""
    common: dict[str, Any] = _model_part(choice, config.prompt_style, config.random_seed)
    if model_record and model_record.get("sha256"):
        common["model_sha256"] = model_record["sha256"]
    result = {}
    for stage in registry.generating_stages():
        style = stage.style(config)
        settings = dataclasses.asdict(config.section(stage.name)) if stage.settings else {}
        for key in stage.runtime_only:
            settings.pop(key)
        own = stage.model is not None
        result[stage.name] = {
            **(_model_part(stage.choice(config), style, config.random_seed) if own else common),
            "templates": templates.fingerprint(style, stage.templates),
            **{f"{stage.name}.{k}": v for k, v in settings.items()},
        }
        if stage.depends_on_seeds:
            result[stage.name]["seeds"] = seed_hash
    return result


def _model_part(choice: ModelChoice, style: str, random_seed: int) -> dict[str, Any]:
    return {
        "backend": choice.name,
        "model": choice.model_name(),
        "prompt_style": style,
        "random_seed": random_seed,
        **choice.fingerprint(),
    }


def check_fingerprints(store: RunStore, current: dict[str, dict]) -> None:
    """Refuse settings that would change records already generated (a versioned stage keeps
    records per fingerprint, so any change is allowed there)."""
    stored = store.get_meta("fingerprints") or {}
    for stage, now in current.items():
        if registry.get_stage(stage).versioned:
            continue
        before = stored.get(stage)
        if before:
            before = {**_added_since(stage, before, now), **before}
        if before and before != now and registry.get_stage(stage).has_records(store):
            raise RunError(_message(store, stage, before, now))


def _added_since(stage: str, before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """Values for keys a run recorded before they existed: a setting added later had its
    default value then, or the value its settings class names in EARLIER (the behaviour
    before the setting, where the default differs from it); anything else (a fact about the
    model not recorded then) is taken as it is now."""
    settings = registry.get_stage(stage).settings
    defaults = dataclasses.asdict(settings()) if settings is not None else {}
    defaults.update(getattr(settings, "EARLIER", {}))
    added = {}
    for key in now.keys() - before.keys():
        name = key.removeprefix(f"{stage}.")
        if name != key and name in defaults:
            added[key] = defaults[name]
        else:
            added[key] = COMMON_ADDED.get(key, now[key])
    return added


def _message(store: RunStore, stage: str, before: dict[str, Any], now: dict[str, Any]) -> str:
    changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))
    details = "; ".join(f"{k}: {_show(before.get(k))} -> {_show(now.get(k))}" for k in changed)
    return (
        f"{store.run_dir} already holds {stage} records made with other settings ({details}). "
        "Rerun with the original settings to continue this run, or use a new --out directory."
    )


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
