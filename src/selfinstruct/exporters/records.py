"""The records exporters write."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Provenance:
    """Where an example comes from: its instruction's id in the run store (None for a seed
    task) and the ids of the seed tasks and machine instructions in the bootstrap prompt that
    produced it (a seed task's own id, for a seed task)."""

    instruction_id: int | None
    seed_ids: tuple[str, ...]
    machine_ids: tuple[int, ...]

    def fields(self) -> dict[str, Any]:
        """The fields an exported record gets."""
        return {
            "instruction_id": self.instruction_id,
            "seed_ids": list(self.seed_ids),
            "machine_ids": list(self.machine_ids),
        }


@dataclass(frozen=True)
class Example:
    instruction: str
    input: str
    output: str
    provenance: Provenance | None = None  # exported only when set


def provenance_fields(example: Example) -> dict[str, Any]:
    """The provenance fields of an example's record (none when it carries none)."""
    return example.provenance.fields() if example.provenance is not None else {}


def has_provenance(examples: Sequence[Example]) -> bool:
    """Every example carries provenance (and there is one): columnar formats add columns."""
    return bool(examples) and all(example.provenance is not None for example in examples)


@dataclass(frozen=True)
class PromptCompletion:
    prompt: str
    completion: str


Writer = Callable[[Path, Sequence[Example], Sequence[PromptCompletion]], None]


@dataclass(frozen=True)
class ExportFormat:
    """A dataset format, declared in its module's `FORMATS` (exporters/__init__.py finds
    every module's). `write(path, examples, encoded)` writes it; `file_name`: prepare writes
    it into exports/ under this name, `rank` placing it among those files (the first is the
    dataset card's default config; "": only `export --format` writes it); `encoded`: it holds
    the encoded fine-tuning records (one per prompt/completion pair), which carry no
    provenance."""

    name: str
    write: Writer
    help: str  # a few words for `export --help`
    file_name: str = ""
    rank: int = 0
    encoded: bool = False
