"""What each generating stage's output depends on; a rerun may not change it once the stage
has produced records (that would mix two runs in one directory)."""

from __future__ import annotations

import dataclasses
from typing import Any

from selfinstruct.config import Config
from selfinstruct.errors import RunError
from selfinstruct.llm.registry import model_name
from selfinstruct.prompts import TemplateSet
from selfinstruct.store.run_store import RunStore

STAGE_TEMPLATES = {
    "bootstrap": ("bootstrap", "bootstrap_classification"),
    "classify": ("classify",),
    "instances": ("instances_classification", "instances_generation"),
}
RUNTIME_ONLY = {"bootstrap": {"max_requests"}}


# Keys added to every stage's fingerprint after runs existed, with the value that held before.
COMMON_ADDED = {"chat_format": ""}


def fingerprints(config: Config, templates: TemplateSet, seed_hash: str,
                 model_record: dict[str, Any] | None = None) -> dict[str, dict]:
    """model_record: what the backend's preflight learnt about the model (its sha256)."""
    common: dict[str, Any] = {
        "backend": config.backend,
        "model": model_name(config),
        "prompt_style": config.prompt_style,
        "random_seed": config.random_seed,
    }
    if config.backend == "embedded":
        common["chat_format"] = config.embedded.chat_format
    if model_record and model_record.get("sha256"):
        common["model_sha256"] = model_record["sha256"]
    result = {}
    for stage, names in STAGE_TEMPLATES.items():
        settings = dataclasses.asdict(getattr(config, stage))
        for key in RUNTIME_ONLY.get(stage, ()):
            settings.pop(key)
        result[stage] = {**common, "templates": templates.fingerprint(config.prompt_style, names),
                         **{f"{stage}.{k}": v for k, v in settings.items()}}
    result["bootstrap"]["seeds"] = seed_hash
    return result


def stage_has_records(store: RunStore, stage: str) -> bool:
    if stage == "bootstrap":
        return store.has_candidates()
    return store.count("labels" if stage == "classify" else "instances") > 0


def check_fingerprints(store: RunStore, current: dict[str, dict]) -> None:
    """Refuse settings that would change records already generated."""
    stored = store.get_meta("fingerprints") or {}
    for stage, now in current.items():
        before = stored.get(stage)
        if before:
            before = {**_added_since(stage, before, now), **before}
        if before and before != now and stage_has_records(store, stage):
            raise RunError(_message(store, stage, before, now))


def _added_since(stage: str, before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """Values for keys a run recorded before they existed: a setting added later had its
    default value then (the behaviour before the setting); anything else (a fact about the
    model not recorded then) is taken as it is now."""
    section = getattr(Config(), stage, None)
    defaults = dataclasses.asdict(section) if dataclasses.is_dataclass(section) else {}
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
