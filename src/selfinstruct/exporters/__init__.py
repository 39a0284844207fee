"""Writers for the dataset formats, by name. `FORMATS` are written by `prepare` into
exports/ (file name, writer); `EXPORTS` are every format `export --format` can write."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from selfinstruct.exporters.alpaca import write_alpaca
from selfinstruct.exporters.hub import write_hf, write_parquet
from selfinstruct.exporters.openai_chat import write_openai_chat
from selfinstruct.exporters.prompt_completion import write_prompt_completion
from selfinstruct.exporters.records import Example, PromptCompletion
from selfinstruct.exporters.sharegpt import write_sharegpt

Writer = Callable[[Path, Sequence[Example], Sequence[PromptCompletion]], None]

FORMATS: dict[str, tuple[str, Writer]] = {
    "alpaca": ("alpaca.json", lambda p, ex, pc: write_alpaca(p, ex)),
    "openai-chat": ("openai_chat.jsonl", lambda p, ex, pc: write_openai_chat(p, ex)),
    "prompt-completion": (
        "prompt_completion.jsonl",
        lambda p, ex, pc: write_prompt_completion(p, pc),
    ),
}

EXPORTS: dict[str, Writer] = {
    **{name: writer for name, (_, writer) in FORMATS.items()},
    "sharegpt": lambda p, ex, pc: write_sharegpt(p, ex),
    "parquet": lambda p, ex, pc: write_parquet(p, ex),
    "hf": lambda p, ex, pc: write_hf(p, ex),
}

__all__ = ["EXPORTS", "FORMATS", "Example", "PromptCompletion"]
