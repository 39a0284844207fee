"""Run settings: paper defaults, a TOML file on top, command-line flags on top of that."""

from __future__ import annotations

import dataclasses
import re
import types
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from selfinstruct.errors import InputError

PROMPT_STYLES = ("completion", "chat")
# What bootstrap does with a response cut off at max_tokens: the paper discards it whole;
# Alpaca keeps its complete items and drops only the last, cut one.
TRUNCATED_RESPONSES = ("discard", "keep_complete_items")
TOKENIZERS = ("rouge", "unicode")
BLOCKED_KEYWORDS = [
    "image", "images", "graph", "graphs", "picture", "pictures", "file", "files",
    "map", "maps", "draw", "plot", "go to",
]


@dataclass
class BootstrapSettings:
    """Stage 1: new instructions from the task pool."""

    num_prompt_instructions: int = 8
    num_machine_instructions: int = 2
    request_batch_size: int = 5
    classification_only: bool = False
    temperature: float = 0.7
    top_p: float = 0.5
    presence_penalty: float = 2.0
    frequency_penalty: float = 0.0
    max_tokens: int = 1024
    stop: list[str] | None = None
    truncated_responses: str = "discard"
    min_words: int = 4
    max_words: int = 150
    blocked_keywords: list[str] = field(default_factory=lambda: list(BLOCKED_KEYWORDS))
    blocked_prefixes: list[str] = field(default_factory=lambda: ["Write a program"])
    rouge_threshold: float = 0.7
    tokenizer: str = "rouge"
    most_similar: int = 10
    max_requests: int = 0


@dataclass
class ClassifySettings:
    """Stage 2: is each instruction a classification task?"""

    request_batch_size: int = 5
    temperature: float = 0.0
    top_p: float = 0.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    max_tokens: int = 3
    stop: list[str] | None = None


@dataclass
class InstancesSettings:
    """Stage 3: input/output instances for each instruction."""

    request_batch_size: int = 5
    max_instances: int = 5
    temperature: float = 0.0
    top_p: float = 0.0
    presence_penalty: float = 1.5
    frequency_penalty: float = 0.0
    max_tokens: int = 350
    max_tokens_with_classification: int = 300
    stop: list[str] | None = None


@dataclass
class PrepareSettings:
    """Stage 4: parse, filter and format for fine-tuning."""

    max_instances_per_task: int = 5
    include_seed_tasks: bool = False
    classification_tasks_only: bool = False
    field_removal_probability: float = 0.5
    end_of_text: str = "<|endoftext|>"


@dataclass
class EmbeddedSettings:
    """The embedded llama.cpp engine."""

    model_path: str = ""
    n_ctx: int = 4096
    n_threads: int = 0
    n_batch: int = 512
    chat_format: str = ""


@dataclass
class OpenAISettings:
    """Any OpenAI-compatible server."""

    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 16
    timeout: float = 120.0
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    requests_per_minute: float = 0.0
    tokens_per_minute: float = 0.0


@dataclass
class PricingSettings:
    """Prices per million tokens, for cost in summaries and --estimate (0: not shown)."""

    input_per_million: float = 0.0
    output_per_million: float = 0.0


@dataclass
class Config:
    seeds: str = ""
    num_instructions: int = 100
    backend: str = "embedded"
    model: str = ""
    prompt_style: str = "completion"
    random_seed: int = 42
    templates: str = ""
    bootstrap: BootstrapSettings = field(default_factory=BootstrapSettings)
    classify: ClassifySettings = field(default_factory=ClassifySettings)
    instances: InstancesSettings = field(default_factory=InstancesSettings)
    prepare: PrepareSettings = field(default_factory=PrepareSettings)
    embedded: EmbeddedSettings = field(default_factory=EmbeddedSettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)
    pricing: PricingSettings = field(default_factory=PricingSettings)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)




def default_stops(stage: str, style: str, max_instances: int = 5) -> list[str]:
    """Stop sequences per stage and prompt style (the paper's for completion)."""
    if stage == "bootstrap":
        item16 = ["\n16", "16.", "16 ."]
        return ["\n\n", *item16] if style == "completion" else item16
    if stage == "classify":
        return ["\n", "Task"] if style == "completion" else ["\n"]
    # Chat models often restate the task first: stop only at a later "Task:" line.
    return [f"Example {max_instances + 1}", "Task:" if style == "completion" else "\nTask:"]


def config_from_dict(data: dict[str, Any], path: Path, text: str = "") -> Config:
    """Build a Config from a parsed TOML table, checking every key and type."""
    return _build(Config, data, path, text, section="")


def load_config(path: str | Path) -> Config:
    from selfinstruct.inputs.text import read_text
    from selfinstruct.inputs.toml import parse_toml

    p = Path(path)
    text = read_text(p, allow_empty=True)
    data = parse_toml(text, p)
    config = config_from_dict(data, p, text)
    validate(config, p, text)
    return config


def validate(config: Config, path: Path | str = "<command line>", text: str = "") -> None:
    """Check value ranges and choices (types are checked while building)."""
    p = Path(path)

    def fail(key: str, message: str) -> None:
        section, _, name = key.rpartition(".")
        raise InputError(p, message, line=_locate(text, section, name), field=key)

    from selfinstruct.llm.registry import known_backends

    if config.backend not in known_backends():
        fail("backend", f"unknown backend '{config.backend}' (known: "
                        f"{', '.join(known_backends())})")
    if config.prompt_style not in PROMPT_STYLES:
        fail("prompt_style", f"must be one of {', '.join(PROMPT_STYLES)}")
    if config.bootstrap.tokenizer not in TOKENIZERS:
        fail("bootstrap.tokenizer", f"must be one of {', '.join(TOKENIZERS)}")
    if config.bootstrap.truncated_responses not in TRUNCATED_RESPONSES:
        fail("bootstrap.truncated_responses", f"must be one of {', '.join(TRUNCATED_RESPONSES)}")
    if config.num_instructions < 0:
        fail("num_instructions", "must be >= 0")
    b = config.bootstrap
    if not 1 <= b.num_prompt_instructions <= 64:
        fail("bootstrap.num_prompt_instructions", "must be between 1 and 64")
    if not 0 <= b.num_machine_instructions <= b.num_prompt_instructions:
        fail("bootstrap.num_machine_instructions", "must be between 0 and num_prompt_instructions")
    if not 0 <= b.min_words <= b.max_words:
        fail("bootstrap.min_words", "must be between 0 and max_words")
    if b.most_similar < 0:
        fail("bootstrap.most_similar", "must be >= 0")
    o = config.openai
    if not 1 <= o.max_concurrency <= 4096:
        fail("openai.max_concurrency", "must be between 1 and 4096")
    if o.max_attempts < 1:
        fail("openai.max_attempts", "must be >= 1")
    if o.timeout <= 0:
        fail("openai.timeout", "must be > 0")
    if config.backend == "openai" and not config.model:
        fail("model", "the openai backend needs a model name (--model)")
    if config.embedded.n_ctx < 256:
        fail("embedded.n_ctx", "must be >= 256")
    if not 0.0 <= b.rouge_threshold <= 1.0:
        fail("bootstrap.rouge_threshold", "must be between 0 and 1")
    for section in ("bootstrap", "classify", "instances"):
        settings = getattr(config, section)
        if not 0.0 <= settings.temperature <= 2.0:
            fail(f"{section}.temperature", "must be between 0 and 2")
        if not 0.0 <= settings.top_p <= 1.0:
            fail(f"{section}.top_p", "must be between 0 and 1")
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2.0 <= getattr(settings, name) <= 2.0:
                fail(f"{section}.{name}", "must be between -2 and 2")
        if settings.request_batch_size < 1:
            fail(f"{section}.request_batch_size", "must be >= 1")
        if settings.max_tokens < 1:
            fail(f"{section}.max_tokens", "must be >= 1")
    if not 1 <= config.instances.max_instances <= 20:
        fail("instances.max_instances", "must be between 1 and 20")
    if config.prepare.max_instances_per_task < 1:
        fail("prepare.max_instances_per_task", "must be >= 1")
    if not 0.0 <= config.prepare.field_removal_probability <= 1.0:
        fail("prepare.field_removal_probability", "must be between 0 and 1")


def _build(cls: type, data: dict[str, Any], path: Path, text: str, section: str) -> Any:
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{section}.{key}" if section else key
        if key not in names:
            raise InputError(path, f"unknown setting (known: {', '.join(sorted(names))})",
                             line=_locate(text, section, key), field=dotted)
        hint = hints[key]
        if dataclasses.is_dataclass(hint):
            if not isinstance(value, dict):
                raise InputError(path, "expected a [section] table", line=_locate(text, "", key),
                                 field=dotted)
            kwargs[key] = _build(hint, value, path, text, key)
        else:
            kwargs[key] = _coerce(value, hint, path, _locate(text, section, key), dotted)
    return cls(**kwargs)


def _coerce(value: Any, hint: Any, path: Path, line: int | None, dotted: str) -> Any:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        if value is None and type(None) in get_args(hint):
            return None
        options = [a for a in get_args(hint) if a is not type(None)]
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
    raise InputError(path, f"expected {names.get(hint, hint)}, got {value!r}", line=line,
                     field=dotted)


_HEADER = re.compile(r"^\[\[?\s*(?P<name>[^\]]+?)\s*\]\]?\s*(?:#.*)?$")


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


def merge_overrides(config: Config, overrides: dict[str, Any]) -> Config:
    """Apply dotted-key overrides (from command-line flags) and return a new Config."""
    data = config.to_dict()
    for dotted, value in overrides.items():
        if value is None:
            continue
        section, _, name = dotted.rpartition(".")
        target = data[section] if section else data
        target[name] = value
    return config_from_dict(data, Path("<command line>"))
