"""ShareGPT format (what Axolotl and LLaMA-Factory read as "sharegpt"): one JSON array of
{"conversations": [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}]}."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from selfinstruct.exporters.openai_chat import user_turn
from selfinstruct.exporters.records import Example, ExportFormat, provenance_fields
from selfinstruct.io.atomic import write_atomic


def conversation(example: Example) -> dict:
    return {
        "conversations": [
            {"from": "human", "value": user_turn(example)},
            {"from": "gpt", "value": example.output},
        ],
        **provenance_fields(example),
    }


def write_sharegpt(path: Path, examples: Sequence[Example]) -> None:
    items = [conversation(example) for example in examples]
    write_atomic(path, [json.dumps(items, ensure_ascii=False, indent=2) + "\n"])


FORMATS = (
    ExportFormat(
        "sharegpt",
        lambda path, examples, encoded: write_sharegpt(path, examples),
        "JSON array of conversations, for Axolotl and LLaMA-Factory",
    ),
)
