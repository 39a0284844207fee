"""Alpaca format: one JSON array of {instruction, input, output}."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from selfinstruct.exporters.records import Example, ExportFormat, provenance_fields
from selfinstruct.io.atomic import write_atomic


def write_alpaca(path: Path, examples: Sequence[Example]) -> None:
    items = [
        {"instruction": e.instruction, "input": e.input, "output": e.output, **provenance_fields(e)}
        for e in examples
    ]
    write_atomic(path, [json.dumps(items, ensure_ascii=True, indent=2) + "\n"])


FORMATS = (
    ExportFormat(
        "alpaca",
        lambda path, examples, encoded: write_alpaca(path, examples),
        "JSON array of instruction/input/output",
        file_name="alpaca.json",
        rank=0,
    ),
)
