"""OpenAI chat fine-tuning JSONL: {"messages": [user, assistant]} per line."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from selfinstruct.exporters.records import Example, ExportFormat, provenance_fields
from selfinstruct.io.atomic import write_jsonl


def user_turn(example: Example) -> str:
    """The user's message: the instruction, then the input (if any) after a blank line."""
    return example.instruction if not example.input else f"{example.instruction}\n\n{example.input}"


def chat_record(example: Example) -> dict:
    return {
        "messages": [
            {"role": "user", "content": user_turn(example)},
            {"role": "assistant", "content": example.output},
        ],
        **provenance_fields(example),
    }


def write_openai_chat(path: Path, examples: Sequence[Example]) -> None:
    write_jsonl(path, (chat_record(e) for e in examples))


FORMATS = (
    ExportFormat(
        "openai-chat",
        lambda path, examples, encoded: write_openai_chat(path, examples),
        "chat fine-tuning JSONL",
        file_name="openai_chat.jsonl",
        rank=1,
    ),
)
