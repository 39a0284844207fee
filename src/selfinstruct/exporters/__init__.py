"""Writers for the dataset formats, by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from selfinstruct.exporters.alpaca import write_alpaca
from selfinstruct.exporters.openai_chat import write_openai_chat
from selfinstruct.exporters.prompt_completion import write_prompt_completion
from selfinstruct.exporters.records import Example, PromptCompletion

Writer = Callable[[Path, Sequence[Example], Sequence[PromptCompletion]], None]

FORMATS: dict[str, tuple[str, Writer]] = {
    "alpaca": ("alpaca.json", lambda p, ex, pc: write_alpaca(p, ex)),
    "openai-chat": ("openai_chat.jsonl", lambda p, ex, pc: write_openai_chat(p, ex)),
    "prompt-completion": (
        "prompt_completion.jsonl",
        lambda p, ex, pc: write_prompt_completion(p, pc),
    ),
}

__all__ = ["FORMATS", "Example", "PromptCompletion"]
