"""What every stage works with: settings, the store, templates, seeds and the backend."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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
    # Stages answered by a model of their own (the judge), by stage name.
    models: dict[str, ModelChoice] = field(default_factory=dict)
    # What each generating stage's records depend on under these settings (by stage name).
    fingerprints: dict[str, dict[str, Any]] = field(default_factory=dict)
    _llms: dict[str, LLM] = field(default_factory=dict, repr=False)

    @property
    def choice(self) -> ModelChoice:
        """The backend and model the run's settings name."""
        return ModelChoice.of(self.config.backend, self.config.model, self.config.sections)

    def choice_for(self, stage: str) -> ModelChoice:
        """The backend and model that answer a stage's requests."""
        return self.models.get(stage) or self.choice

    @property
    def llm(self) -> LLM:
        return self.llm_for("")

    def llm_for(self, stage: str) -> LLM:
        """The stage's backend, created once (stages with the same model share it)."""
        choice = self.choice_for(stage)
        key = f"{choice.cache_identity()}|{choice.settings!r}"
        if key not in self._llms:
            self._llms[key] = choice.create()
        return self._llms[key]

    def model_name(self, stage: str = "") -> str:
        return self.choice_for(stage).model_name()

    def model_label(self) -> str:
        return self.choice.label()

    def request_seed(self, stage: str, index: int | str) -> int:
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
        backend_id = self.backend_id(stage)
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
            llm = self.llm_for(stage)
            before = Counter(llm.counters)
            llm.stream([r for _, r in missing], on_result)
            after = Counter(llm.counters)
            stats.notes.update(
                {f"http_{k}" if k[0].isdigit() else k: v for k, v in (after - before).items()}
            )
        return [(key, found[key]) for key in keys]

    def request(
        self,
        stage: str,
        index: int | str,
        prompt: Prompt,
        settings: RequestSettings,
        stop: Sequence[str],
        *,
        max_tokens: int | None = None,
        task: str = "",
    ) -> Request:
        """A request with the stage's decoding settings, the given stop sequences and a
        per-request seed."""
        seed = self.request_seed(stage, index)
        return settings_request(prompt, settings, stop, seed, task or stage, max_tokens)

    def backend_id(self, stage: str = "") -> str:
        """Identifies the model answering a stage (part of every cache key), without
        loading it."""
        return self.choice_for(stage).cache_identity()

    def close(self) -> None:
        llms, self._llms = list(self._llms.values()), {}
        for llm in llms:
            llm.close()


def settings_request(
    prompt: Prompt,
    settings: RequestSettings,
    stop: Sequence[str],
    seed: int | None,
    task: str,
    max_tokens: int | None = None,
) -> Request:
    """A request for a prompt with a stage's decoding settings."""
    return Request(
        prompt=prompt.text,
        messages=prompt.messages,
        max_tokens=settings.max_tokens if max_tokens is None else max_tokens,
        temperature=settings.temperature,
        top_p=settings.top_p,
        presence_penalty=settings.presence_penalty,
        frequency_penalty=settings.frequency_penalty,
        stop=tuple(stop),
        seed=seed,
        task=task,
    )
