"""What every stage works with: settings, the store, templates, seeds and the backend."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from selfinstruct.config import Config, RequestSettings
from selfinstruct.llm.base import LLM, Completion, Failure, Request, Result
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.llm.untrusted import storable_completion
from selfinstruct.prompts import Prompt, TemplateSet
from selfinstruct.reporting.progress import Progress
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
    def choice(self) -> ModelChoice:
        """The backend and model the run's settings name."""
        return ModelChoice.of(self.config.backend, self.config.model, self.config.sections)

    @property
    def llm(self) -> LLM:
        if self._llm is None:
            self._llm = self.choice.create()
        return self._llm

    def model_name(self) -> str:
        return self.choice.model_name()

    def model_label(self) -> str:
        return self.choice.label()

    def request_seed(self, stage: str, index: int) -> int:
        """A per-request sampling seed derived from the run's random seed."""
        blob = f"{self.config.random_seed}:{stage}:{index}".encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") >> 1

    def complete(
        self,
        stage: str,
        requests: Sequence[Request],
        stats: StageStats,
        progress: Progress | None = None,
    ) -> list[tuple[str, Completion | None]]:
        """Answer requests, from the run's cache where possible. Each new answer is stored
        the moment it arrives (and shown on the progress bar). Returns (cache key,
        completion) pairs in request order, with None for a request that failed for good
        (counted in stats)."""
        backend_id = self.backend_id()
        keys = [request.key(backend_id) for request in requests]
        found: dict[str, Completion | None] = {key: self.store.cached(key) for key in keys}
        missing = [(k, r) for k, r in zip(keys, requests, strict=True) if found[k] is None]
        stats.cached += len(requests) - len(missing)

        def on_result(index: int, result: Result) -> None:
            key, request = missing[index]
            stats.requests += 1
            if isinstance(result, Failure):
                stats.failed[result.reason] += 1
                stats.last_failure = result.detail
                if progress is not None:
                    progress.show_counts()
                return
            result = storable_completion(result)
            self.store.put_response(key, stage, request, result)
            found[key] = result
            stats.prompt_tokens += result.prompt_tokens
            stats.completion_tokens += result.completion_tokens
            if progress is not None:
                progress.show_counts()

        if missing:
            before = Counter(self.llm.counters)
            self.llm.stream([r for _, r in missing], on_result)
            after = Counter(self.llm.counters)
            stats.notes.update(
                {f"http_{k}" if k[0].isdigit() else k: v for k, v in (after - before).items()}
            )
        return [(key, found[key]) for key in keys]

    def request(
        self,
        stage: str,
        index: int,
        prompt: Prompt,
        settings: RequestSettings,
        stop: Sequence[str],
        *,
        max_tokens: int | None = None,
        task: str = "",
    ) -> Request:
        """A request with the stage's decoding settings, the given stop sequences and a
        per-request seed."""
        return Request(
            prompt=prompt.text,
            messages=prompt.messages,
            max_tokens=settings.max_tokens if max_tokens is None else max_tokens,
            temperature=settings.temperature,
            top_p=settings.top_p,
            presence_penalty=settings.presence_penalty,
            frequency_penalty=settings.frequency_penalty,
            stop=tuple(stop),
            seed=self.request_seed(stage, index),
            task=task or stage,
        )

    def backend_id(self) -> str:
        """Identifies the model answering (part of every cache key), without loading it."""
        return self.choice.cache_identity()

    def close(self) -> None:
        if self._llm is not None:
            self._llm.close()
            self._llm = None
