"""The records exporters write."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Example:
    instruction: str
    input: str
    output: str


@dataclass(frozen=True)
class PromptCompletion:
    prompt: str
    completion: str
