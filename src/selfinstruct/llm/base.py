"""The backend interface: batches of requests in, completions with usage out.

A backend implements `generate` (blocking) or `agenerate` (async); each has a default built
on the other, so a local engine and an HTTP client both fit. Every completion reports its
finish reason ("stop" or "length") and token usage. `stream` hands each result over as soon
as it is ready (so callers can store it at once); a request that failed for good, after the
backend's own retries, comes back as a `Failure` and the others go on.

`serve` answers a `Feed`: requests that become ready over time (a stage's next requests may
depend on the answers to its earlier ones). A server backend keeps its slots busy by taking a
new request from the feed whenever one is free; the default takes up to `concurrency`
requests at a time and streams them.
"""

from __future__ import annotations

import functools
import hashlib
import json
import operator
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Protocol

from selfinstruct.config import Flag
from selfinstruct.llm.json_text import object_format, value_text

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
        """The fields that determine the answer, as plain JSON-able data (a new dict)."""
        return json.loads(self._canonical_json)

    @functools.cached_property
    def _canonical_fields(self) -> dict[str, str]:
        """Each field of canonical() as JSON text, in field order, encoded once: every
        request is keyed, stored and logged, and the canonical JSON and the key's blob are
        both made of these (llm/json_text.py)."""
        data = {name: getattr(self, name) for name in _FIELD_NAMES}
        data["messages"] = [list(m) for m in self.messages] if self.messages else None
        data["stop"] = list(self.stop)
        return {name: value_text(value) for name, value in data.items()}

    @functools.cached_property
    def _canonical_json(self) -> str:
        return _CANONICAL % tuple(self._canonical_fields.values())

    def canonical_json(self) -> str:
        """json.dumps(self.canonical(), ensure_ascii=False), without the round trip."""
        return self._canonical_json

    def field_json(self, name: str) -> str:
        """One field of canonical() as JSON text (json.dumps(..., ensure_ascii=False))."""
        return self._canonical_fields[name]

    def key(self, backend_id: str) -> str:
        """A stable hash of the backend and the canonical request (the response cache key):
        of json.dumps([backend_id, self.canonical()], sort_keys=True, ensure_ascii=False),
        made from the encoded fields (no value is a dict, so sorting the top-level keys is
        all sort_keys does)."""
        blob = _KEYED % (value_text(backend_id), *_sorted_texts(self._canonical_fields))
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()


_FIELD_NAMES = tuple(f.name for f in fields(Request))
_CANONICAL = object_format(_FIELD_NAMES)
_KEYED = f"[%s, {object_format(sorted(_FIELD_NAMES))}]"
_sorted_texts = operator.itemgetter(*sorted(_FIELD_NAMES))


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


class Feed(Protocol):
    """Requests that become ready over time, and where their results go.

    `take(limit)` hands over up to `limit` requests that may be sent now, each with a ticket
    of the feed's choosing; it returns [] when none is ready. `put(ticket, result)` hands a
    result back, which may make more requests ready; `put_all` hands back the results that
    ended together, in order (the feed may store them in one commit). A backend serves a
    feed until `take` returns [] with nothing in flight, or until `finished`: the feed wants
    no more answers, and the backend drops those still in flight (a server stops generating
    them). `abandoned()` names requests in flight whose answers are no longer wanted while
    others still are (a stage of a stream that has finished): a backend that can stops them
    and frees their slots; their results, if any arrive, are not handed back.
    """

    def take(self, limit: int) -> list[tuple[int, Request]]: ...

    def put(self, ticket: int, result: Result) -> None: ...

    def put_all(self, results: Sequence[tuple[int, Result]]) -> None: ...

    def abandoned(self) -> list[int]: ...

    @property
    def finished(self) -> bool: ...


class ListFeed:
    """A fixed list of requests; results go to `on_result(index, result)`."""

    def __init__(self, requests: Sequence[Request], on_result: OnResult) -> None:
        self.requests = requests
        self.on_result = on_result
        self.next = 0

    def take(self, limit: int) -> list[tuple[int, Request]]:
        start, self.next = self.next, min(len(self.requests), self.next + max(0, limit))
        return [(i, self.requests[i]) for i in range(start, self.next)]

    def put(self, ticket: int, result: Result) -> None:
        self.on_result(ticket, result)

    def put_all(self, results: Sequence[tuple[int, Result]]) -> None:
        for ticket, result in results:
            self.on_result(ticket, result)

    def abandoned(self) -> list[int]:
        return []

    finished = False


class LLM:
    """Base class of every backend: override `generate` or `agenerate` (or both).

    A backend is also its own description, read without creating it: its `name`, its
    `Settings` dataclass (the `[name]` section of a config; None when it has none) and the
    command-line `flags` that set them, what it
    `supports` ("completion", "chat", "batch": requests as OpenAI batch files), the packages
    whose versions shape its answers, and the class methods below, which work from the model
    name and settings alone. Backends are found by name in `llm/registry.py`, third-party
    ones through the `selfinstruct.backends` entry-point group.
    """

    name: ClassVar[str] = ""
    Settings: ClassVar[type | None] = None
    flags: ClassVar[tuple[Flag, ...]] = ()  # command-line flags that set its settings
    supports: ClassVar[frozenset[str]] = frozenset({"completion", "chat"})
    packages: ClassVar[tuple[str, ...]] = ()
    needs_model: ClassVar[bool] = False  # a run must name a model (--model)
    parallel: ClassVar[bool] = False  # serves many requests at once (a server)
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
    def slots(cls, settings: Any) -> int:
        """The most requests it keeps in flight with these settings (known without creating
        it): 1 for an engine that answers one at a time."""
        return 1

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

    def serve(self, feed: Feed) -> None:
        """Answer a feed's requests until it has none ready: here up to
        `concurrency` at a time, through `stream`."""
        while not feed.finished:
            taken = feed.take(max(1, self.concurrency))
            if not taken:
                return
            self.stream([request for _, request in taken], _ticketed(feed, taken))

    def flow_note(self) -> str:
        """How the backend kept requests in flight, for a stage's summary ("" for nothing
        worth saying)."""
        return ""

    def close(self) -> None:
        """Release resources (engines, connections)."""


def _ticketed(feed: Feed, taken: list[tuple[int, Request]]) -> OnResult:
    """Hands the result of the i-th taken request to the feed under its ticket."""
    tickets = [ticket for ticket, _ in taken]
    return lambda index, result: feed.put(tickets[index], result)
