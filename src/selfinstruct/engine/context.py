"""What every stage works with: settings, the store, templates, seeds and the backend."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from selfinstruct.config import Config, RequestSettings
from selfinstruct.engine.budget import Budget
from selfinstruct.filters.screen import InstanceCheck
from selfinstruct.llm.base import LLM, Request
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.prompts import Prompt, TemplateSet
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
    # The run's spending limits (None: none).
    budget: Budget | None = None
    # Prepare's checks on other stages' records: what each stage that declares one makes of
    # this run (None: nothing to check). Given by whoever opens the run, which knows the
    # stages; prepare, a stage itself, does not.
    screens: tuple[Callable[[RunContext], InstanceCheck | None], ...] = ()
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
        """The stage's backend, created once (stages with the same `llm_key` share it)."""
        key = self.llm_key(stage)
        if key not in self._llms:
            self._llms[key] = self.choice_for(stage).create()
        return self._llms[key]

    def llm_key(self, stage: str) -> str:
        """Who answers a stage and how it is reached: its model and its backend's settings
        (server, key variable, concurrency). Stages with the same key share one backend, and
        can share a stream; a judge of the run's model on a server of its own cannot."""
        choice = self.choice_for(stage)
        return f"{choice.cache_identity()}|{choice.settings!r}"

    def model_name(self, stage: str = "") -> str:
        return self.choice_for(stage).model_name()

    def model_label(self) -> str:
        return self.choice.label()

    def model_description(self) -> dict[str, Any]:
        """Which model answered: backend and name, plus what identifies it (a model file's
        path and sha256; a server's address without credentials)."""
        choice = self.choice
        found: dict[str, Any] = {"backend": choice.name, "model": choice.label()}
        record = self.store.get_meta("model_file")
        if record:
            found.update({k: record[k] for k in ("file", "sha256", "size") if k in record})
        found.update(choice.describe(self.config.prompt_style))
        return found

    def request_seed(self, stage: str, index: int | str) -> int:
        """A per-request sampling seed derived from the run's random seed."""
        blob = f"{self.config.random_seed}:{stage}:{index}".encode()
        return int.from_bytes(hashlib.sha256(blob).digest()[:4], "big") >> 1

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
