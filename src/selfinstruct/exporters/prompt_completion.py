"""Prompt/completion JSONL (the paper's GPT-3 fine-tuning format)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from selfinstruct.exporters.records import ExportFormat, PromptCompletion
from selfinstruct.io.atomic import write_jsonl


def write_prompt_completion(path: Path, records: Sequence[PromptCompletion]) -> None:
    write_jsonl(path, ({"prompt": r.prompt, "completion": r.completion} for r in records))


FORMATS = (
    ExportFormat(
        "prompt-completion",
        lambda path, examples, encoded: write_prompt_completion(path, encoded),
        "JSONL",
        file_name="prompt_completion.jsonl",
        rank=2,
        encoded=True,
    ),
)
