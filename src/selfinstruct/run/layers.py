"""One way to layer settings, for every command: packaged defaults < the run's stored
settings (when resuming) < a config file < flags < `--set SECTION.KEY=VALUE`.

The sections are those of the registered stages and backends (see config.py); this module
is where the two registries meet the config container."""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.config import (
    CORE_KEYS,
    PRICING,
    Config,
    config_from_dict,
    default_config,
    validate,
)
from selfinstruct.errors import InputError
from selfinstruct.io.text import read_text
from selfinstruct.io.toml import parse_toml
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.registry import backend_sections, known_backends
from selfinstruct.stages.registry import stage_sections

PATH_KEYS = ("seeds", "templates")  # paths in a config file are relative to the file
SET_OPTION = "--set"


@dataclass
class Layers:
    """What the user gave, top layer last: a config file, settings given as values (flags,
    the API's keyword arguments; nested as in a TOML file: {"bootstrap": {"top_p": 0.3}}),
    and `--set` assignments as written."""

    config_file: Path | None = None
    given: dict[str, Any] = field(default_factory=dict)
    sets: tuple[str, ...] = ()


def nest(dotted: dict[str, Any]) -> dict[str, Any]:
    """Settings by dotted key ({"bootstrap.top_p": 0.3}) as nested tables, None values left
    out (a flag not given)."""
    found: dict[str, Any] = {}
    for key, value in dotted.items():
        if value is not None:
            section, _, name = key.rpartition(".")
            (found.setdefault(section, {}) if section else found)[name] = value
    return found


def section_types() -> dict[str, type]:
    """Every settings section: the stages' in run order, then the backends'."""
    return {**stage_sections(), **backend_sections()}


def defaults() -> Config:
    return default_config(section_types())


def from_dict(data: dict[str, Any], path: Path | str = "<settings>", text: str = "") -> Config:
    """A checked Config from plain data (types and value ranges)."""
    config = config_from_dict(data, path, section_types(), text)
    validate(config, known_backends(), path, text)
    if (
        ModelChoice.of(config.backend, config.model, config.sections).backend.needs_model
        and not config.model
    ):
        raise InputError(
            path, f"the {config.backend} backend needs a model name (--model)", field="model"
        )
    return config


def load_config(path: Path) -> Config:
    """A config file on its own (defaults under it), checked with file/line/field errors."""
    return _checked_file(path)[1]


def _checked_file(path: Path) -> tuple[dict[str, Any], Config]:
    """A config file's table as written, and the Config it makes on its own (the check that
    names file, line and field)."""
    text = read_text(path, allow_empty=True)
    data = parse_toml(text, path)
    return data, from_dict(data, path, text)


def explicit(layers: Layers) -> dict[str, Any]:
    """The settings the user gave (nested, as in a TOML file): the config file's, then flags,
    then --set. Paths are made absolute (a config file's relative to the file)."""
    found: dict[str, Any] = {}
    if layers.config_file is not None:
        found = dict(_checked_file(layers.config_file)[0])
        base_dir = layers.config_file.resolve().parent
        for key in PATH_KEYS:
            if found.get(key):
                found[key] = str((base_dir / found[key]).resolve())
        _resolve_section_paths(found, base_dir)
    found = merge_settings(found, _absolute_paths(layers.given))
    for text in layers.sets:
        _assign(found, *parse_set(text))
    return found


def _absolute_paths(given: dict[str, Any]) -> dict[str, Any]:
    """The core settings that hold paths, made absolute (relative to where the command runs)."""
    return {key: _absolute(key, value) for key, value in given.items()}


def _absolute(name: str, value: Any) -> Any:
    """A path setting's value made absolute (relative to where the command runs)."""
    return str(Path(value).resolve()) if name in PATH_KEYS and value else value


def _resolve_section_paths(found: dict[str, Any], base_dir: Path) -> None:
    """Section settings that hold file paths (fields with `metadata={"paths": True}`), made
    absolute relative to the config file."""
    for section, cls in section_types().items():
        table = found.get(section)
        if not isinstance(table, dict):
            continue
        for item in dataclasses.fields(cls):
            value = table.get(item.name)
            if item.metadata.get("paths") and isinstance(value, list):
                table[item.name] = [str((base_dir / v).resolve()) for v in value]


def _assign(target: dict[str, Any], dotted: str, value: Any) -> None:
    section, _, name = dotted.rpartition(".")
    if section in CORE_KEYS:
        raise InputError(SET_OPTION, f"'{section}' is a setting, not a section", field=dotted)
    table = target.setdefault(section, {}) if section else target
    if not isinstance(table, dict):
        raise InputError(SET_OPTION, f"'{section}' is a setting, not a section", field=dotted)
    table[name] = _absolute(name, value)


def parse_set(text: str) -> tuple[str, Any]:
    """("section.key", value) from "section.key=VALUE". VALUE is read as a TOML value
    (numbers, true/false, ["a", "b"], "quoted text"); anything else is a plain string."""
    dotted, sep, raw = text.partition("=")
    dotted = dotted.strip()
    if not sep or not dotted or any(not part.strip() for part in dotted.split(".")):
        raise InputError(SET_OPTION, f"expected SECTION.KEY=VALUE, got '{text}'")
    try:
        value = tomllib.loads(f"value = {raw.strip()}")["value"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return dotted, value


def layered(
    layers: Layers, base: dict[str, Any] | None = None, given: dict[str, Any] | None = None
) -> Config:
    """The settings of a command: `base` (packaged defaults, or a run's stored settings)
    under what the user gave (`given`: `explicit(layers)`, when the caller has it already)."""
    top = explicit(layers) if given is None else given
    data = merge_settings(_known(base) if base else defaults().to_dict(), top)
    try:
        return from_dict(data, "<command line>")
    except InputError as exc:  # name --set when the setting came from there
        field = exc.field or ""
        set_keys = [parse_set(text)[0] for text in layers.sets]
        if any(key == field or key.startswith(field + ".") for key in set_keys):
            raise InputError(SET_OPTION, exc.detail, field=exc.field) from None
        raise


def _known(stored: dict[str, Any]) -> dict[str, Any]:
    """A run's stored settings without the sections of backends no longer installed (a
    plug-in's section is stored in every run made while it was installed), and with the
    settings added since the run was made at the value it behaved by (a class's EARLIER)."""
    sections = section_types()
    known = {
        key: value
        for key, value in stored.items()
        if not isinstance(value, dict) or key in sections or key == PRICING
    }
    for key, value in known.items():
        earlier = getattr(sections.get(key), "EARLIER", {})
        if isinstance(value, dict) and earlier:
            known[key] = {**earlier, **value}
    return known


def merge_settings(base: dict[str, Any], top: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in top.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = merge_settings(merged[key], value)
        else:
            merged[key] = value
    return merged
