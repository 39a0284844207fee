"""Backends by name. Heavy engines are imported only when chosen."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

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


def known_backends() -> list[str]:
    return sorted(FACTORIES)


def model_name(config: Config) -> str:
    """The model a config asks for, known without loading it."""
    if config.backend == "embedded":
        from selfinstruct.llm.embedded import DEFAULT_MODEL

        path = config.model or config.embedded.model_path
        return str(Path(path).resolve()) if path else DEFAULT_MODEL
    if config.backend == "transformers" and config.model:
        return str(Path(config.model).resolve())
    if config.model:
        return config.model
    return "fake-1" if config.backend == "fake" else ""


def create_backend(config: Config) -> LLM:
    try:
        factory = FACTORIES[config.backend]
    except KeyError:
        raise BackendError(
            f"unknown backend '{config.backend}' (known: {', '.join(known_backends())})"
        ) from None
    return factory(config)
