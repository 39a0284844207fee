"""Provenance: each bootstrap prompt's seed and machine instructions are recorded by id, the
ids reproduce the prompt exactly, resuming does not change them, runs made before they were
recorded get the same ones (stored when opened for writing, computed when read), and the
Python API and exports (`--provenance`, `prepare.provenance`) carry them."""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
import tarfile
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, read_jsonl

import selfinstruct
from selfinstruct.run.open import open_view
from selfinstruct.stages.bootstrap.compose import prompt_line, render
from selfinstruct.stages.bootstrap.settings import STAGE

ARCHIVE = Path(__file__).parent / "data" / "release-0.1.0-runs.tar.gz"
FAKE = ["--backend", "fake", "-q"]
JSON_FORMATS = {"alpaca": "alpaca.json", "sharegpt": "sharegpt.json"}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run over several bootstrap batches, so prompts show machine instructions."""
    path = tmp_path_factory.mktemp("provenance") / "run"
    cli("run", "--out", str(path), *FAKE, "--num-instructions", "40")
    return path


def query(run: Path, sql: str) -> list[tuple]:
    with closing(sqlite3.connect(run / "selfinstruct.db")) as db:
        return db.execute(sql).fetchall()


def sources_table(run: Path) -> dict[int, tuple[list[str], list[int]]]:
    rows = query(run, "SELECT request_idx, seed_ids, machine_ids FROM prompt_sources")
    return {idx: (json.loads(seeds), json.loads(machine)) for idx, seeds, machine in rows}


def migrations(run: Path) -> set[str]:
    return {row[0] for row in query(run, "SELECT name FROM migrations")}


def as_old_run(run: Path) -> None:
    """Make a run look as if an older release made it: no prompt sources table."""
    with closing(sqlite3.connect(run / "selfinstruct.db")) as db, db:  # closed: checkpointed
        db.execute("DROP TABLE prompt_sources")
        db.execute("DELETE FROM migrations WHERE name = '0003_prompt_sources'")


def api_sources(run: Path) -> dict[int, tuple[list[str], list[int]]]:
    """Each instruction's request's sources, as the Python API gives them."""
    return {
        t.request_idx: (list(t.seed_ids), list(t.machine_ids))
        for t in selfinstruct.Run.open(run, quiet=True).instructions()
    }


def stored_prompt(run: Path, key: str) -> Any:
    [(request,)] = query(run, f"SELECT request FROM responses WHERE key = '{key}'")
    found = json.loads(request)
    return found["prompt"] if found["prompt"] is not None else found["messages"]


def rendered_from_ids(run: Path, request_idx: int, stored: Any) -> Any:
    """The prompt rendered from the texts of the recorded ids. The lists keep seeds and
    machine instructions apart, so which line is which comes from the stored prompt."""
    ctx = open_view(run)
    try:
        seeds = {t.id: t.instruction for t in ctx.seeds}
        machine = {row.id: row.instruction for row in ctx.store.pool.instructions()}
        found = ctx.store.pool.prompt_sources()[request_idx]
        seed_lines = {prompt_line(text) for text in seeds.values()}
        text = stored if isinstance(stored, str) else stored[-1][1]
        shown = re.findall(r"^\d+\. (.+)$", text, flags=re.M)
        seed_ids, machine_ids = iter(found.seed_ids), iter(found.machine_ids)
        texts = [
            seeds[next(seed_ids)] if line in seed_lines else machine[next(machine_ids)]
            for line in shown
        ]
        assert next(seed_ids, None) is None and next(machine_ids, None) is None
        prompt = render(ctx.templates, ctx.config.prompt_style, ctx.config.section(STAGE), texts)
    finally:
        ctx.store.close()
    return prompt.text if prompt.text is not None else [list(m) for m in prompt.messages or ()]


@pytest.mark.parametrize("style", ["completion", "chat"])
def test_recorded_ids_reproduce_each_prompt_exactly(tmp_path: Path, style: str) -> None:
    out = tmp_path / "run"
    cli("bootstrap", "--out", str(out), *FAKE, "--num-instructions", "30", "--prompt-style", style)
    requests = query(
        out,
        "SELECT request_idx, response_key FROM bootstrap_requests "
        "UNION SELECT request_idx, response_key FROM instructions",
    )
    assert len(requests) > 5  # more than one batch
    assert any(machine for _, machine in sources_table(out).values())
    for request_idx, key in requests:
        stored = stored_prompt(out, key)
        assert rendered_from_ids(out, request_idx, stored) == stored, request_idx


def test_machine_ids_come_from_earlier_batches(run: Path) -> None:
    batch_of = dict(query(run, "SELECT id, batch_idx FROM instructions"))
    seed_ids = {row[0] for row in query(run, "SELECT id FROM seeds")}
    size = 5  # bootstrap.request_batch_size
    for request_idx, (seeds, machine) in sources_table(run).items():
        assert set(seeds) <= seed_ids and len(seeds) + len(machine) == 8
        assert all(batch_of[i] < request_idx // size for i in machine)


def test_the_api_gives_each_instruction_its_prompts_sources(run: Path) -> None:
    table = sources_table(run)
    instructions = selfinstruct.Run.open(run, quiet=True).instructions()
    assert len(instructions) == 40
    for task in instructions:
        assert (list(task.seed_ids), list(task.machine_ids)) == table[task.request_idx]
    assert any(task.machine_ids for task in instructions)
    sources = selfinstruct.Run.open(run, quiet=True).prompt_sources()
    assert {i: (list(s.seed_ids), list(s.machine_ids)) for i, s in sources.items()} == table


def test_stopping_and_resuming_leaves_the_sources_unchanged(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["--out", str(out), *FAKE]
    cli("run", *args, "--num-instructions", "40", "--set", "bootstrap.max_requests=7")
    stopped = sources_table(out)
    assert 7 <= len(stopped) <= 10 and set(stopped) == set(range(len(stopped)))  # 2 batches
    cli("run", *args, "--num-instructions", "20", "--set", "bootstrap.max_requests=0")
    assert {i: s for i, s in sources_table(out).items() if i in stopped} == stopped
    cli("prepare", "--out", str(out), "-q")  # reopening records nothing new or different
    cli("run", *args, "--num-instructions", "40")
    assert sources_table(out) == sources_table(run)  # as if never stopped


def requests_that_matter(run: Path) -> set[int]:
    sql = "SELECT request_idx FROM bootstrap_requests UNION SELECT request_idx FROM instructions"
    return {row[0] for row in query(run, sql)}


def files(run: Path) -> dict[Path, bytes]:
    """Every file's bytes (SQLite's shared-memory and log files left out: any reader of a WAL
    database may create them)."""
    return {
        p: p.read_bytes()
        for p in run.rglob("*")
        if p.is_file() and not p.name.endswith(("-shm", "-wal"))
    }


def test_a_run_made_before_sources_gets_the_same_ones(run: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"
    shutil.copytree(run, old)
    as_old_run(old)
    before = files(old)
    assert api_sources(old) == api_sources(run)  # computed in memory by a read-only view
    assert files(old) == before
    cli("prepare", "--out", str(old), "-q")  # opened for writing: stored
    assert "0003_prompt_sources" in migrations(old)
    matter = requests_that_matter(run)
    assert sources_table(old) == {i: s for i, s in sources_table(run).items() if i in matter}


def test_a_release_0_1_0_run_gets_the_sources_of_a_fresh_one(tmp_path: Path) -> None:
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(tmp_path, filter="data")
    old, fresh = tmp_path / "complete", tmp_path / "fresh"
    cli("run", "--out", str(fresh), *FAKE, "--num-instructions", "16")
    before = files(old)
    assert api_sources(old) == api_sources(fresh)  # read-only: computed, nothing written
    assert files(old) == before
    cli("prepare", "--out", str(old), "-q")
    matter = requests_that_matter(old)
    assert sources_table(old) == {i: s for i, s in sources_table(fresh).items() if i in matter}


PROVENANCE_KEYS = ("instruction_id", "seed_ids", "machine_ids")


def exported(run: Path, fmt: str, out: Path, *flags: str) -> list[dict]:
    cli("export", "--run", str(run), "--format", fmt, "--out", str(out), "-q", *flags)
    if fmt == "openai-chat":
        return read_jsonl(out)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return pq.read_table(out).to_pylist()
    if fmt == "hf":
        import datasets

        return datasets.load_from_disk(str(out)).to_list()
    return json.loads(out.read_text(encoding="utf-8"))


def instruction_of(record: dict) -> str:
    if "messages" in record:
        return record["messages"][0]["content"]
    if "conversations" in record:
        return record["conversations"][0]["value"]
    return record["instruction"]


@pytest.mark.parametrize("fmt", ["alpaca", "sharegpt", "openai-chat", "parquet", "hf"])
def test_exports_carry_provenance_only_when_asked(run: Path, tmp_path: Path, fmt: str) -> None:
    plain = exported(run, fmt, tmp_path / "plain")
    records = exported(run, fmt, tmp_path / "provenance", "--provenance")
    assert not any(key in record for record in plain for key in PROVENANCE_KEYS)
    assert [{k: v for k, v in r.items() if k not in PROVENANCE_KEYS} for r in records] == plain
    by_id = {t.id: t for t in selfinstruct.Run.open(run, quiet=True).instructions()}
    for record in records:
        task = by_id[record["instruction_id"]]
        assert instruction_of(record).startswith(task.instruction)
        assert record["seed_ids"] == list(task.seed_ids)
        assert record["machine_ids"] == list(task.machine_ids)


def test_an_export_without_provenance_is_unchanged(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "alpaca.json"
    cli("export", "--run", str(run), "--format", "alpaca", "--out", str(out), "-q")
    assert out.read_bytes() == (run / "exports" / "alpaca.json").read_bytes()


def test_prompt_completion_cannot_carry_provenance(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "pc.jsonl"
    args = ["--run", str(run), "--format", "prompt-completion", "--out", str(out)]
    result = cli("export", *args, "--provenance", check=False)
    assert result.returncode == 2
    assert "--provenance" in result.stderr and "prompt-completion" in result.stderr
    assert not out.exists()
    with pytest.raises(selfinstruct.InputError, match="provenance"):
        selfinstruct.Run.open(run).export("prompt-completion", out, provenance=True)


def test_seed_tasks_in_an_export_are_their_own_source(run: Path, tmp_path: Path) -> None:
    view = selfinstruct.Run.open(run, quiet=True, prepare={"include_seed_tasks": True})
    view.export("alpaca", tmp_path / "a.json", provenance=True)
    records = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    seeds = [r for r in records if r["instruction_id"] is None]
    seed_ids = {row[0] for row in query(run, "SELECT id FROM seeds")}
    assert seeds and len(seeds) < len(records)
    assert all(r["seed_ids"][0] in seed_ids and len(r["seed_ids"]) == 1 for r in seeds)
    assert all(r["machine_ids"] == [] for r in seeds)


def test_the_prepare_setting_adds_provenance_to_exports(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    shutil.copytree(run, out)
    with_fields = ["exports/alpaca.json", "exports/openai_chat.jsonl"]
    unchanged = [str(p.relative_to(out)) for p in (out / "finetuning_data").iterdir()]
    unchanged.append("exports/prompt_completion.jsonl")
    before = {name: (out / name).read_bytes() for name in with_fields + unchanged}
    cli("prepare", "--out", str(out), "-q", "--set", "prepare.provenance=true")
    assert {name: (out / name).read_bytes() for name in unchanged} == {
        name: before[name] for name in unchanged
    }
    alpaca = json.loads((out / "exports" / "alpaca.json").read_text(encoding="utf-8"))
    chat = read_jsonl(out / "exports" / "openai_chat.jsonl")
    assert all(set(PROVENANCE_KEYS) <= set(record) for record in [*alpaca, *chat])
    cli("prepare", "--out", str(out), "-q", "--set", "prepare.provenance=false")
    assert {name: (out / name).read_bytes() for name in before} == before
