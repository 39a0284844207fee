"""What every stage works with: settings, the store, templates, seeds and the backend."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from selfinstruct.config import Config
from selfinstruct.llm.base import LLM, Completion, Request
from selfinstruct.llm.registry import create_backend, model_name
from selfinstruct.prompts import TemplateSet
from selfinstruct.reporting.stats import StageStats
from selfinstruct.seeds.task import SeedTask
from selfinstruct.store.run_store import RunStore


@dataclass
class RunContext:
    config: Config
    store: RunStore
    templates: TemplateSet
    seeds: list[SeedTask]
    quiet: bool = False
    _llm: LLM | None = field(default=None, repr=False)

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            self._llm = create_backend(self.config)
        return self._llm

    def request_seed(self, stage: str, index: int) -> int:
        """A per-request sampling seed derived from the run's random seed."""
        blob = f"{self.config.random_seed}:{stage}:{index}".encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") >> 1

    def complete(self, stage: str, requests: Sequence[Request],
                 stats: StageStats) -> list[tuple[str, Completion]]:
        """Answer requests, from the run's cache where possible; new answers are stored
        before they are used. Returns (cache key, completion) pairs in request order."""
        backend_id = self.backend_id()
        keys = [request.key(backend_id) for request in requests]
        found = {key: self.store.cached(key) for key in keys}
        missing = [(k, r) for k, r in zip(keys, requests, strict=True) if found[k] is None]
        stats.cached += len(requests) - len(missing)
        if missing:
            answers = self.llm.generate([r for _, r in missing])
            with self.store.transaction():
                for (key, request), answer in zip(missing, answers, strict=True):
                    self.store.put_response(key, stage, request, answer)
                    found[key] = answer
            stats.requests += len(missing)
            stats.prompt_tokens += sum(a.prompt_tokens for a in answers)
            stats.completion_tokens += sum(a.completion_tokens for a in answers)
        return [(key, found[key]) for key in keys]  # type: ignore[misc]

    def backend_id(self) -> str:
        """Identifies the model answering (part of every cache key), without loading it."""
        return f"{self.config.backend}:{model_name(self.config)}"

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
