"""Backends by name. Heavy engines are imported only when chosen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from selfinstruct.errors import BackendError

if TYPE_CHECKING:
    from selfinstruct.config import Config
    from selfinstruct.llm.base import LLM


def _embedded(config: Config) -> LLM:
    from selfinstruct.llm.embedded import EmbeddedLLM

    return EmbeddedLLM.from_config(config)


def _fake(config: Config) -> LLM:
    from selfinstruct.llm.fake import FakeLLM

    return FakeLLM(model=model_name(config))


def _openai(config: Config) -> LLM:
    from selfinstruct.llm.openai_backend import OpenAIBackend

    return OpenAIBackend.from_config(config)


def _transformers(config: Config) -> LLM:
    from selfinstruct.llm.transformers_backend import TransformersLLM

    return TransformersLLM(model=config.model)


FACTORIES: dict[str, Callable[[Config], LLM]] = {
    "embedded": _embedded,
    "fake": _fake,
    "openai": _openai,
    "transformers": _transformers,
}


def _embedded_preflight(config: Config, known: dict[str, Any] | None,
                        identify: bool) -> dict[str, Any]:
    from selfinstruct.llm.model_file import check_chat_format, inspect_model, model_path

    path = model_path(config.model, config.embedded.model_path)
    found = inspect_model(path, known, identify=identify)
    check_chat_format(found, config.prompt_style, config.embedded.chat_format)
    return found.record()


# Checks a backend makes before a run sends anything; each returns what it learnt about the
# model (recorded in the run), given what the run recorded before.
PREFLIGHT: dict[str, Callable[[Config, dict[str, Any] | None, bool], dict[str, Any]]] = {
    "embedded": _embedded_preflight,
}


def preflight(config: Config, known: dict[str, Any] | None, *,
              identify: bool = True) -> dict[str, Any] | None:
    """Check that the backend can serve this config (without loading a model); returns the
    model's record (e.g. a GGUF's path and sha256), or None when there is nothing to record.
    identify False: only the checks, not the (possibly slow) identity such as a file hash."""
    check = PREFLIGHT.get(config.backend)
    return check(config, known, identify) if check else None


def known_backends() -> list[str]:
    return sorted(FACTORIES)


def model_name(config: Config) -> str:
    """The model a config asks for, known without loading it."""
    if config.backend == "embedded":
        from selfinstruct.llm.model_file import DEFAULT_MODEL

        path = config.model or config.embedded.model_path
        return str(Path(path).resolve()) if path else DEFAULT_MODEL
    if config.backend == "transformers" and config.model:
        return str(Path(config.model).resolve())
    if config.model:
        return config.model
    return "fake-1" if config.backend == "fake" else ""


def model_label(config: Config) -> str:
    """A short name of the model for file names: a model file's own name, not its path."""
    name = model_name(config)
    if config.backend in ("embedded", "transformers"):
        return Path(name).name
    return name


# Packages whose versions determine a backend's answers (recorded in the run).
BACKEND_PACKAGES = {
    "embedded": ("llama-cpp-python",),
    "openai": ("httpx",),
    "transformers": ("torch", "transformers", "peft"),
    "fake": (),
}


def create_backend(config: Config) -> LLM:
    try:
        factory = FACTORIES[config.backend]
    except KeyError:
        raise BackendError(
            f"unknown backend '{config.backend}' (known: {', '.join(known_backends())})"
        ) from None
    return factory(config)
