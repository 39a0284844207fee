"""Run settings: a few core keys, then one [section] per stage and per backend.

Each section's dataclass belongs to the stage or backend that reads it (a stage module, a
backend module); this module only holds the container and knows no section by name. Which
sections exist is given by the caller (`run/layers.py` asks the stage and backend registries),
so a new stage or backend brings its settings without an edit here.

A settings dataclass may define `problems()`, yielding (key, message) for values out of
range; types are checked while a config is built from TOML.
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import types
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from selfinstruct.errors import InputError

PROMPT_STYLES = ("completion", "chat")
CORE_KEYS = (
    "seeds",
    "num_instructions",
    "backend",
    "model",
    "prompt_style",
    "random_seed",
    "templates",
)
PRICING = "pricing"


@dataclass(frozen=True)
class Flag:
    """A command-line flag that sets settings, declared by the stage or backend that owns them
    (any setting can also be given as --set SECTION.KEY=VALUE).

    `names`: its spellings, the first naming its parameter ("--tokenizer"; a switch:
    "--relabel/--no-relabel"). `key`: the dotted setting it sets. `kind`: "text", "int",
    "float", "path", "switch", "choice" (one of `choices`, or of the names `choices_of`
    gives when the command runs) or "count" (a whole number >= 1, or one of `words`).
    `minimum`: a number's least value; `multiple`: it may be repeated. `settings`: for a
    flag that sets several settings or reads its value (`--judge BACKEND[:MODEL]`), the
    dotted settings a given value sets, instead of `key`. `sending`: it only says how requests
    reach a model (where it is served, its key, requests in flight), so a command that sends
    none does not offer it (a backend's flags all do)."""

    names: tuple[str, ...]
    help: str
    key: str = ""
    kind: str = "text"
    choices: tuple[str, ...] = ()
    choices_of: Callable[[], Sequence[str]] | None = None
    words: tuple[str, ...] = ()
    minimum: float | None = None
    multiple: bool = False
    metavar: str = ""
    settings: Callable[[Any], dict[str, Any]] | None = None
    sending: bool = False

    @property
    def parameter(self) -> str:
        """The name its value goes by ("--judge-prompt-style" -> judge_prompt_style)."""
        return self.names[0].split("/")[0].lstrip("-").replace("-", "_")

    def given(self, value: Any) -> dict[str, Any]:
        """The settings (dotted keys) a value given on the command line sets."""
        if value is None or (self.multiple and not value):
            return {}
        if self.settings is not None:
            return self.settings(value)
        return {self.key: list(value) if self.multiple else value}


@dataclass
class RequestSettings:
    """The decoding settings of a stage that sends requests (OpenAI's names and ranges)."""

    request_batch_size: int = 5  # requests per batch window
    temperature: float = 0.0  # sampling temperature (0 to 2)
    top_p: float = 0.0  # nucleus sampling (0 to 1)
    presence_penalty: float = 0.0  # -2 to 2
    frequency_penalty: float = 0.0  # -2 to 2
    max_tokens: int = 256  # the most tokens an answer may have
    stop: list[str] | None = None  # stop sequences; unset: the stage's default.

    def problems(self) -> Iterator[tuple[str, str]]:
        if not 0.0 <= self.temperature <= 2.0:
            yield "temperature", "must be between 0 and 2"
        if not 0.0 <= self.top_p <= 1.0:
            yield "top_p", "must be between 0 and 1"
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2.0 <= getattr(self, name) <= 2.0:
                yield name, "must be between -2 and 2"
        if self.request_batch_size < 1:
            yield "request_batch_size", "must be >= 1"
        if self.max_tokens < 1:
            yield "max_tokens", "must be >= 1"


@dataclass
class PricingSettings:
    """Prices per million tokens, for cost in summaries and --estimate (0: not shown)."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0

    @property
    def priced(self) -> bool:
        return self.input_per_million > 0 or self.output_per_million > 0

    def cost(self, prompt_tokens: float, completion_tokens: float) -> float:
        """Money spent (or expected) on these tokens."""
        return (
            prompt_tokens * self.input_per_million + completion_tokens * self.output_per_million
        ) / 1_000_000


@dataclass
class Config:
    """The core settings, and the settings object of each section by name (`config.bootstrap`
    reads `sections["bootstrap"]`)."""

    seeds: str = ""  # seed tasks file (.jsonl, .txt, .csv, .yaml); empty: the packaged seeds
    num_instructions: int = 100  # machine instructions to generate in total
    # the backend's name (`selfinstruct run --help` lists those installed)
    backend: str = "embedded"
    model: str = ""  # the model asked of the backend; empty: the backend's default
    # completion (the paper's list continuation) or chat (messages)
    prompt_style: str = "completion"
    random_seed: int = 42  # seeds sampling, prompt composition and shuffling
    templates: str = ""  # a directory of templates overriding ours file by file
    pricing: PricingSettings = field(default_factory=PricingSettings)
    sections: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        sections = self.__dict__.get("sections") or {}
        if name in sections:
            return sections[name]
        raise AttributeError(f"no setting or section named {name!r}")

    def section(self, name: str) -> Any:
        """The settings of one stage or backend (None for a backend without settings)."""
        return self.sections.get(name)

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the layout of a TOML file: core keys, sections, then pricing."""
        data: dict[str, Any] = {key: getattr(self, key) for key in CORE_KEYS}
        for name, settings in self.sections.items():
            data[name] = dataclasses.asdict(settings)
        data[PRICING] = dataclasses.asdict(self.pricing)
        return data


def default_config(section_types: Mapping[str, type]) -> Config:
    return Config(sections={name: cls() for name, cls in section_types.items()})


def config_from_dict(
    data: dict[str, Any], path: Path | str, section_types: Mapping[str, type], text: str = ""
) -> Config:
    """Build a Config from a parsed TOML table, checking every key and type."""
    p = Path(path)
    known = [*CORE_KEYS, PRICING, *section_types]
    core: dict[str, Any] = {}
    sections = {name: cls() for name, cls in section_types.items()}
    hints = get_type_hints(Config)
    for key, value in data.items():
        if key in section_types or key == PRICING:
            if not isinstance(value, dict):
                raise InputError(
                    p, "expected a [section] table", line=_locate(text, "", key), field=key
                )
            cls = PricingSettings if key == PRICING else section_types[key]
            built = _build(cls, value, p, text, key)
            if key == PRICING:
                core[PRICING] = built
            else:
                sections[key] = built
        elif key in CORE_KEYS:
            core[key] = _coerce(value, hints[key], p, _locate(text, "", key), key)
        else:
            raise InputError(
                p,
                f"unknown setting (known: {', '.join(sorted(known))})",
                line=_locate(text, "", key),
                field=key,
            )
    return Config(**core, sections=sections)


def validate(
    config: Config, backends: list[str], path: Path | str = "<command line>", text: str = ""
) -> None:
    """Check value ranges and choices (types are checked while building)."""
    p = Path(path)

    def fail(key: str, message: str) -> None:
        section, _, name = key.rpartition(".")
        raise InputError(p, message, line=_locate(text, section, name), field=key)

    if config.backend not in backends:
        fail("backend", f"unknown backend '{config.backend}' (known: {', '.join(backends)})")
    if config.prompt_style not in PROMPT_STYLES:
        fail("prompt_style", f"must be one of {', '.join(PROMPT_STYLES)}")
    if config.num_instructions < 0:
        fail("num_instructions", "must be >= 0")
    for name, settings in config.sections.items():
        check = getattr(settings, "problems", None)
        for key, message in check() if check else ():
            fail(f"{name}.{key}", message)


def _build(cls: type, data: dict[str, Any], path: Path, text: str, section: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{section}.{key}"
        if key not in names:
            raise InputError(
                path,
                f"unknown setting (known: {', '.join(sorted(names))})",
                line=_locate(text, section, key),
                field=dotted,
            )
        kwargs[key] = _coerce(value, hints[key], path, _locate(text, section, key), dotted)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, path: Path, line: int | None, dotted: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if type(None) in get_args(hint) and (value is None or _unset(value, get_args(hint))):
            return None
        options = [a for a in get_args(hint) if a is not type(None)]
        for option in options[1:]:  # the first that fits; else the first one's error
            with contextlib.suppress(InputError):
                return _coerce(value, option, path, line, dotted)
        return _coerce(value, options[0], path, line, dotted)
    if origin is list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise InputError(path, "expected a list of strings", line=line, field=dotted)
        return list(value)
    if hint is bool and isinstance(value, bool):
        return value
    if hint is int and isinstance(value, int) and not isinstance(value, bool):
        return value
    if hint is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if hint is str and isinstance(value, str):
        return value
    names = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}
    raise InputError(
        path, f"expected {names.get(hint, hint)}, got {value!r}", line=line, field=dotted
    )


UNSET = ("", "none", "null")  # an optional setting given one of these is unset
_HEADER = re.compile(r"^\[\[?\s*(?P<name>[^\]]+?)\s*\]\]?\s*(?:#.*)?$")


def _unset(value: Any, options: tuple[Any, ...]) -> bool:
    """An optional number or flag given as "none" or "" (TOML has no null, and `--set
    KEY=none` unsets it)."""
    scalar = all(option in (int, float, bool) for option in options if option is not type(None))
    return scalar and isinstance(value, str) and value.strip().lower() in UNSET


def _dotted(name: str) -> list[str]:
    return [part.strip().strip("\"'") for part in name.split(".")]


def _locate(text: str, section: str, key: str) -> int | None:
    """Line number of `key = ...` inside `[section]` (top level when section is empty),
    also written as a dotted key (`section.key = ...`) or a table header (`[key]`)."""
    if not text:
        return None
    wanted = _dotted(f"{section}.{key}" if section else key)
    current: list[str] = []
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        header = _HEADER.match(line)
        if header:
            current = _dotted(header.group("name"))
            if current == wanted:
                return number
            continue
        if "=" in line and not line.startswith("#"):
            full = current + _dotted(line.split("=", 1)[0])
            if full == wanted or (full == wanted[:1] and not section):
                return number
    return None
