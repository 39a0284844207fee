"""A backend as a third party would ship it: one class, its own settings section
(`[example]` in a config, `--set example.KEY=VALUE` on the command line), registered through
the `selfinstruct.backends` entry-point group. It answers like selfinstruct's fake backend,
with a configurable tag appended to every answer (so a test can see its settings at work)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from selfinstruct.llm.backends.fake import FakeLLM
from selfinstruct.llm.base import Completion, Request


@dataclass
class ExampleSettings:
    tag: str = ""  # appended to every answer
    concurrency: int = 1

    def problems(self) -> Iterator[tuple[str, str]]:
        if self.concurrency < 1:
            yield "concurrency", "must be >= 1"


class ExampleBackend(FakeLLM):
    name = "example"
    Settings = ExampleSettings
    packages = ("selfinstruct-plugin-example",)

    def __init__(self, model: str, settings: ExampleSettings) -> None:
        super().__init__(model)
        self.settings = settings
        self.concurrency = settings.concurrency

    @classmethod
    def create(cls, model: str, settings: Any) -> ExampleBackend:
        return cls(model, settings)

    @classmethod
    def model_name(cls, model: str, settings: Any) -> str:
        return model or "example-1"

    @classmethod
    def cache_identity(cls, model: str, settings: Any) -> str:
        return f"{super().cache_identity(model, settings)}#tag={settings.tag}"

    @classmethod
    def fingerprint(cls, model: str, settings: Any) -> dict[str, Any]:
        return {"example.tag": settings.tag}

    @classmethod
    def describe(cls, model: str, settings: Any, style: str) -> dict[str, Any]:
        return {"tag": settings.tag}

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        answers = super().generate(requests)
        if not self.settings.tag:
            return answers
        return [
            Completion(
                a.text + self.settings.tag, a.finish_reason, a.prompt_tokens, a.completion_tokens
            )
            for a in answers
        ]
