"""Models named on the command line: `LABEL=BACKEND[:MODEL]` for candidates (e.g.
`base=embedded`, `tuned=transformers:out/merged`, `gpt=openai:gpt-4o-mini`) and
`BACKEND[:MODEL]` for the judge. Settings other than backend and model (server URL, key
variable, embedded threads...) come from the config file and flags, shared by all."""

from __future__ import annotations

from selfinstruct.config import Config
from selfinstruct.errors import InputError
from selfinstruct.llm.base import LLM
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.registry import known_backends


def parse_spec(spec: str, option: str) -> tuple[str, str]:
    """(backend, model) from BACKEND[:MODEL]."""
    backend, _, model = spec.partition(":")
    if backend not in known_backends():
        raise InputError(
            option,
            f"unknown backend '{backend}' in '{spec}' (known: {', '.join(known_backends())})",
        )
    return backend, model


def parse_candidate(text: str) -> tuple[str, str, str]:
    """(label, backend, model) from LABEL=BACKEND[:MODEL] (the label defaults to the spec)."""
    label, sep, spec = text.partition("=")
    if not sep:
        label, spec = text, text
    if not label.strip() or not spec:
        raise InputError("--candidate", f"expected LABEL=BACKEND[:MODEL], got '{text}'")
    backend, model = parse_spec(spec, "--candidate")
    return label.strip(), backend, model


def build(config: Config, backend: str, model: str, style: str) -> LLM:
    """The backend for one model spec, checked first for the prompt style it will get (a
    GGUF without a chat template cannot take chat prompts)."""
    choice = ModelChoice.of(backend, model, config.sections)
    choice.preflight(style, identify=False)
    return choice.create()
