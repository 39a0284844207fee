"""Shared fixtures: paths, and running the real `selfinstruct` entry point."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

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
