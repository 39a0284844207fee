"""An example backend, as a new one is written: this module, and its name in the registry
of built-ins (tests/test_declared_once.py adds it there). It answers like the fake backend,
each answer ending in its `[echo]` section's `suffix`, which its own flag sets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from selfinstruct.config import Flag
from selfinstruct.llm.backends.fake import FakeLLM
from selfinstruct.llm.base import Completion, Request


@dataclass
class EchoSettings:
    suffix: str = ""  # added to every answer


class EchoLLM(FakeLLM):
    name = "echo"
    Settings = EchoSettings
    flags = (Flag(("--echo-suffix",), "echo backend: text added to every answer.", "echo.suffix"),)

    def __init__(self, model: str, settings: EchoSettings) -> None:
        super().__init__(model)
        self.suffix = settings.suffix

    @classmethod
    def create(cls, model: str, settings: Any) -> EchoLLM:
        return cls(model, settings)

    @classmethod
    def model_name(cls, model: str, settings: Any) -> str:
        return model or "echo-1"

    @classmethod
    def fingerprint(cls, model: str, settings: Any) -> dict[str, Any]:
        return {"echo.suffix": settings.suffix}

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return [
            Completion(a.text + self.suffix, a.finish_reason, a.prompt_tokens, a.completion_tokens)
            for a in super().generate(requests)
        ]
