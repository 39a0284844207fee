"""Run directories written by the previous release (0.1.0, before instance records) open,
resume and export after the store migration, with byte-identical outputs.

tests/data/release-0.1.0-runs.tar.gz was made by release 0.1.0 with the fake backend:
`complete` (run --num-instructions 16), `partial` (the same settings, bootstrap and classify
only) and `complete_alpaca.json` (0.1.0's `export --format alpaca` of `complete`)."""

from __future__ import annotations

import hashlib
import sqlite3
import tarfile
from pathlib import Path

import pytest
from conftest import cli

ARCHIVE = Path(__file__).parent / "data" / "release-0.1.0-runs.tar.gz"
OUTPUTS = [
    "finetuning_data/all_generated_instances.jsonl",
    "finetuning_data/gpt3_finetuning_data_35.jsonl",
    "exports/alpaca.json",
    "exports/openai_chat.jsonl",
    "exports/prompt_completion.jsonl",
]


@pytest.fixture
def old_runs(tmp_path: Path) -> Path:
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(tmp_path, filter="data")
    return tmp_path


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tree(run: Path) -> dict[str, str]:
    """Every file's digest, SQLite's shared-memory and (empty) log files left out: any
    reader of a WAL database may create them."""
    return {
        str(p.relative_to(run)): digest(p)
        for p in sorted(run.rglob("*"))
        if p.is_file() and not p.name.endswith(("-shm", "-wal"))
    }


def migrations(run: Path) -> set[str]:
    with sqlite3.connect(run / "selfinstruct.db") as db:
        return {row[0] for row in db.execute("SELECT name FROM migrations")}


def test_export_reads_an_old_run_without_changing_it(old_runs: Path) -> None:
    run = old_runs / "complete"
    before = tree(run)
    out = old_runs / "alpaca.json"
    cli("export", "--run", str(run), "--format", "alpaca", "--out", str(out), "-q")
    assert out.read_bytes() == (old_runs / "complete_alpaca.json").read_bytes()
    assert tree(run) == before  # read-only: no migration, no run.json, no lock file
    assert migrations(run) == {"0001_initial"}


def test_prepare_on_an_old_run_migrates_and_writes_identical_files(old_runs: Path) -> None:
    run = old_runs / "complete"
    expected = {name: digest(run / name) for name in OUTPUTS}
    result = cli("prepare", "--out", str(run))
    assert {name: digest(run / name) for name in OUTPUTS} == expected
    assert "gpt3_finetuning_data_35.jsonl" in result.stdout
    assert migrations(run) == {
        "0001_initial",
        "0002_parsed_instances",
        "0003_prompt_sources",
        "0004_quality",
        "0005_merge_sources",
        "0006_instruction_parses",
        "0007_pool_missing",
        "0008_reviews",
    }
    with sqlite3.connect(run / "selfinstruct.db") as db:
        unparsed = db.execute("SELECT COUNT(*) FROM instances WHERE parsed = 0").fetchone()[0]
        records = db.execute("SELECT COUNT(*) FROM parsed_instances").fetchone()[0]
    assert unparsed == 0 and records > 35


def test_an_old_partial_run_resumes_to_the_same_dataset(old_runs: Path) -> None:
    complete, partial = old_runs / "complete", old_runs / "partial"
    result = cli("run", "--out", str(partial))
    # all 16 were there already, and labelled
    assert "[bootstrap] nothing left to do: 16 instructions already kept" in result.stderr
    assert "[classify] nothing left to do: 16 instructions already labelled" in result.stderr
    for name in OUTPUTS:
        assert digest(partial / name) == digest(complete / name), name


def test_a_resumed_old_run_sends_no_request_for_what_it_holds(old_runs: Path) -> None:
    result = cli("run", "--out", str(old_runs / "complete"))
    said = result.stderr.strip().splitlines()[-1]  # said only when no stage sent a request
    assert said.startswith("[run] already complete: 16 instructions"), result.stderr
