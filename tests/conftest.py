"""Shared fixtures: paths, and running the real `selfinstruct` entry point."""

from __future__ import annotations

import json
import re
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest

from selfinstruct.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
PAPER_SEEDS = ROOT.parent / "shared" / "data" / "seed_tasks.jsonl"


@pytest.fixture
def paper_seeds() -> Path:
    if not PAPER_SEEDS.is_file():
        pytest.skip("the paper's seed file (../shared/data/seed_tasks.jsonl) is not present")
    return PAPER_SEEDS


def cli(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess:
    """Run `python -m selfinstruct ARGS` in a subprocess (the real entry point)."""
    result = subprocess.run([sys.executable, "-m", "selfinstruct", *args], capture_output=True,
                            text=True, timeout=timeout)
    if check and result.returncode != 0:
        raise AssertionError(f"selfinstruct {' '.join(args)} failed:\n{result.stderr}")
    return result


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def store_snapshot(run_dir: Path) -> dict[str, list[tuple]]:
    """Every generated record in the run store, in order (timestamps left out)."""
    queries = {
        "instructions": "SELECT id, instruction, most_similar, avg_similarity_score, "
                        "request_idx, batch_idx, response_key FROM instructions ORDER BY id",
        "candidates": "SELECT * FROM candidates ORDER BY request_idx, piece_idx",
        "labels": "SELECT * FROM labels ORDER BY instruction_id",
        "instances": "SELECT * FROM instances ORDER BY instruction_id",
        "responses": "SELECT key, text, finish_reason FROM responses ORDER BY key",
    }
    with sqlite3.connect(run_dir / "selfinstruct.db") as db:
        return {name: db.execute(sql).fetchall() for name, sql in queries.items()}


def write_file(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def task_line(index: int, **changes: object) -> str:
    """One line of the paper's seed JSONL, with fields replaced or (value ...) removed."""
    obj: dict[str, object] = {
        "id": f"seed_task_{index}",
        "name": f"task_{index}",
        "instruction": f"Write a short poem about the number {index}.",
        "instances": [{"input": "", "output": f"Poem number {index}."}],
        "is_classification": False,
    }
    for key, value in changes.items():
        if value is ...:
            obj.pop(key)
        else:
            obj[key] = value
    return json.dumps(obj, ensure_ascii=False)


def expect_input_error(load: Callable[[Path], Any], path: Path, *, line: object = ANY,
                       field: object = ANY, detail: str | None = None) -> InputError:
    """load(path) raises InputError naming the file, and the line and field when given."""
    with pytest.raises(InputError) as info:
        load(path)
    err = info.value
    message = str(err)
    assert err.path == str(path)
    assert message.startswith(str(path)), message
    if line is not ANY:
        assert err.line == line, message
        if line is not None:
            assert f"line {line}" in message
    if field is not ANY:
        assert err.field == field, message
        if field is not None:
            assert f"field '{field}'" in message
    if detail is not None:
        assert detail.lower() in err.detail.lower(), message
    return err


# Files a finished run derives from its store (the fake backend's model is fake-1).
DERIVED_FILES = [
    "machine_generated_instructions.jsonl",
    "machine_generated_instances.jsonl",
    "is_clf_or_not_fake-1_completion.jsonl",
    "finetuning_data/all_generated_instances.jsonl",
    "exports/alpaca.json",
    "exports/openai_chat.jsonl",
    "exports/prompt_completion.jsonl",
]


def without_timestamps(path: Path) -> str:
    """A derived file with the response timestamps removed."""
    return re.sub(r'"created_at": "[^"]*"', "", path.read_text(encoding="utf-8"))
