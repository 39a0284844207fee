"""The backend interface: batches of requests in, completions with usage out.

A backend implements `generate` (blocking) or `agenerate` (async); each has a default built
on the other, so a local engine and an HTTP client both fit. Every completion reports its
finish reason ("stop" or "length") and token usage. `stream` hands each result over as soon
as it is ready (so callers can store it at once); a request that failed for good, after the
backend's own retries, comes back as a `Failure` and the others go on.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

Messages = tuple[tuple[str, str], ...]


@dataclass(frozen=True)
class Request:
    """One generation request: a raw prompt (completion style) or messages (chat style)."""

    prompt: str | None = None
    messages: Messages | None = None
    max_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    task: str = ""

    def __post_init__(self) -> None:
        if (self.prompt is None) == (self.messages is None):
            raise ValueError("a request has either a prompt or messages")

    @property
    def is_chat(self) -> bool:
        return self.messages is not None

    def canonical(self) -> dict[str, Any]:
        """The fields that determine the answer, as plain JSON-able data."""
        data = asdict(self)
        data["messages"] = [list(m) for m in self.messages] if self.messages else None
        data["stop"] = list(self.stop)
        return data

    def key(self, backend_id: str) -> str:
        """A stable hash of the backend and the canonical request (the response cache key)."""
        blob = json.dumps([backend_id, self.canonical()], sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Completion:
    text: str
    finish_reason: str
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


@dataclass(frozen=True)
class Failure:
    """A request that got no usable answer (after retries): why, and how often it was tried."""

    reason: str
    attempts: int = 1
    detail: str = ""


Result = Completion | Failure
OnResult = Callable[[int, Result], None]


class LLM:
    """Base class of every backend: override `generate` or `agenerate` (or both).

    A backend is also its own description, read without creating it: its `name`, its
    `Settings` dataclass (the `[name]` section of a config; None when it has none), what it
    `supports` ("completion", "chat", "batch": requests as OpenAI batch files), the packages
    whose versions shape its answers, and the class methods below, which work from the model
    name and settings alone. Backends are found by name in `llm/registry.py`, third-party
    ones through the `selfinstruct.backends` entry-point group.
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type | None] = None
    supports: ClassVar[frozenset[str]] = frozenset({"completion", "chat"})
    packages: ClassVar[tuple[str, ...]] = ()
    needs_model: ClassVar[bool] = False  # a run must name a model (--model)
    concurrency: int = 1

    def __init__(self, model: str = "") -> None:
        self.model = model
        self.counters: Counter[str] = Counter()  # retries, errors by kind (in summaries)

    @classmethod
    def create(cls, model: str, settings: Any) -> LLM:
        """The backend for a model, with its settings section."""
        return cls(model)

    @classmethod
    def model_name(cls, model: str, settings: Any) -> str:
        """The model a run asks for, known without loading it (part of cache keys)."""
        return model

    @classmethod
    def model_label(cls, model: str, settings: Any) -> str:
        """A short name of the model, for file names."""
        return cls.model_name(model, settings)

    @classmethod
    def cache_identity(cls, model: str, settings: Any) -> str:
        """Identifies who answers, in every cache key: backend and model, plus any setting
        that changes the answers."""
        return f"{cls.name}:{cls.model_name(model, settings)}"

    @classmethod
    def fingerprint(cls, model: str, settings: Any) -> dict[str, Any]:
        """Settings beyond the model name that a run's records depend on."""
        return {}

    @classmethod
    def describe(cls, model: str, settings: Any, style: str) -> dict[str, Any]:
        """What run.json records about the model beyond backend and name (no secrets)."""
        return {}

    @classmethod
    def preflight(
        cls,
        model: str,
        settings: Any,
        style: str,
        known: dict[str, Any] | None,
        identify: bool = True,
    ) -> dict[str, Any] | None:
        """Check, before anything is sent or written, that the backend can serve this model
        in this prompt style; returns what it learnt about the model (e.g. a file's sha256),
        given what the run recorded before. identify False: checks only."""
        return None

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        import asyncio  # here, not at the top: it costs every command 50 ms to start

        return asyncio.run(self.agenerate(requests))

    async def agenerate(self, requests: Sequence[Request]) -> list[Completion]:
        import asyncio

        if type(self).generate is LLM.generate:
            raise NotImplementedError(f"{type(self).__name__} implements neither generate")
        return await asyncio.to_thread(self.generate, requests)

    def stream(self, requests: Sequence[Request], on_result: OnResult) -> None:
        """Call on_result(index, result) for each request as its result is ready."""
        for index, request in enumerate(requests):
            on_result(index, self.generate([request])[0])

    def close(self) -> None:
        """Release resources (engines, connections)."""
