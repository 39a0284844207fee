"""Seed tasks: the packaged default set and readers for user formats."""

from __future__ import annotations

import hashlib
from importlib import resources
from pathlib import Path

from selfinstruct.errors import InputError
from selfinstruct.io.text import read_text
from selfinstruct.seeds.jsonl import parse_jsonl
from selfinstruct.seeds.plain import parse_plain
from selfinstruct.seeds.table import parse_csv
from selfinstruct.seeds.task import Instance, SeedTask
from selfinstruct.seeds.yaml_list import parse_yaml

__all__ = ["Instance", "SeedTask", "default_seed_path", "load_seeds", "seed_hash"]

PARSERS = {
    ".jsonl": parse_jsonl,
    ".json": parse_jsonl,
    ".txt": parse_plain,
    ".csv": parse_csv,
    ".yaml": parse_yaml,
    ".yml": parse_yaml,
}


def default_seed_path() -> Path:
    return Path(str(resources.files("selfinstruct") / "data" / "seed_tasks.jsonl"))


def load_seeds(path: str | Path | None = None) -> list[SeedTask]:
    """Read a seed file in any supported format (by extension); the packaged set when None."""
    p = Path(path) if path else default_seed_path()
    parser = PARSERS.get(p.suffix.lower())
    if parser is None:
        read_text(p, allow_empty=True)  # a missing file or a directory is the first problem
        raise InputError(p, f"unknown seed format '{p.suffix}'; use one of {sorted(PARSERS)}")
    return parser(read_text(p), p)


def seed_hash(tasks: list[SeedTask]) -> str:
    """A content hash of the parsed seeds (format-independent)."""
    digest = hashlib.sha256()
    for task in tasks:
        digest.update(repr(task.to_json()).encode("utf-8"))
    return digest.hexdigest()
