"""An example export format, as a new one is written: this module is all it is. On the
exporters' path (tests/test_declared_once.py puts it there), `export --format tsv` writes it,
and prepare writes it into exports/ beside the others."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from selfinstruct.exporters.records import Example, ExportFormat, PromptCompletion
from selfinstruct.io.atomic import write_atomic


def write_tsv(path: Path, examples: Sequence[Example], encoded: Sequence[PromptCompletion]) -> None:
    """instruction, input, output per line, tabs and line breaks inside escaped."""
    rows = ["instruction\tinput\toutput\n"]
    for example in examples:
        fields = (example.instruction, example.input, example.output)
        rows.append("\t".join(_escaped(text) for text in fields) + "\n")
    write_atomic(path, rows)


def _escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


FORMATS = (
    ExportFormat(
        "tsv",
        write_tsv,
        "tab-separated instruction, input and output",
        file_name="dataset.tsv",
        rank=3,
    ),
)
