"""`selfinstruct merge`: three runs of the fake backend merged, and the kept instructions
recomputed independently with rouge_score in the documented order; records follow their
instruction; refusals; the merged directory is a run the other commands work on."""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from pathlib import Path

import pytest
from conftest import cli, read_jsonl
from rouge_score import rouge_scorer

from selfinstruct.errors import RunError
from selfinstruct.merging import merge_runs
from selfinstruct.merging.write import MergedStore
from selfinstruct.seeds import load_seeds

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
INSTRUCTIONS = "machine_generated_instructions.jsonl"
QUICK = ("--backend", "fake", "-q", "--set", "prepare.report=false")
# Created in this order, sorted by random seed in the merge: beta, gamma, alpha.
RUNS = {"alpha": (3, 30), "beta": (1, 45), "gamma": (2, 20)}


def rouge(target: str, prediction: str) -> float:
    return SCORER.score(target, prediction)["rougeL"].fmeasure


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("sources")
    made = {}
    for name, (seed, count) in RUNS.items():
        out = base / name
        cli("run", "--out", out, "--random-seed", seed, "--num-instructions", count, *QUICK,
            "--judge", "fake", "--relabel")  # fmt: skip
        made[name] = out
    return made


@pytest.fixture(scope="module")
def merged(runs: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("merged") / "all"
    cli("merge", runs["alpha"], runs["beta"], runs["gamma"], "--out", out, "-q")
    return out


def expected_merge(runs: list[Path], seeds: list[str]) -> list[dict]:
    """The documented order and rule, from each run's run.json and instruction file: runs by
    (random seed, creation time), batches round-robin, each run's own order within a batch;
    kept unless a duplicate of the pool or ROUGE-L above 0.7 against an item of it."""
    described = []
    for run in runs:
        info = json.loads((run / "run.json").read_text(encoding="utf-8"))
        size = info["config"]["bootstrap"]["request_batch_size"]
        key = (info["config"]["random_seed"], info["created_at"])
        described.append((key, run.name, size, read_jsonl(run / INSTRUCTIONS)))
    described.sort(key=lambda d: d[0])
    candidates = sorted(
        (record["request_idx"] // size, position, index, name, record["instruction"])
        for position, (_, name, size, records) in enumerate(described)
        for index, record in enumerate(records)
    )
    pool, kept = list(seeds), []
    for _, _, index, name, text in candidates:
        if text in pool:
            continue
        scores = [rouge(text, other) for other in pool]
        if max(scores) > 0.7:
            continue
        top = sorted(range(len(pool)), key=lambda i: -scores[i])[:10]  # stable: pool order
        kept.append(
            {
                "instruction": text,
                "most_similar": [(pool[i], scores[i]) for i in top],
                "avg_similarity_score": sum(scores) / len(scores),
                "source_run": name,
                "source_id": index + 1,
            }
        )
        pool.append(text)
    return kept


def test_merge_keeps_what_the_documented_order_implies(runs: dict[str, Path], merged: Path) -> None:
    seeds = [task.instruction for task in load_seeds()]
    expected = expected_merge(list(runs.values()), seeds)
    found = read_jsonl(merged / INSTRUCTIONS)
    assert [r["instruction"] for r in found] == [e["instruction"] for e in expected]
    assert 0 < len(found) < sum(count for _, count in RUNS.values())  # some were dropped
    for record, want in zip(found, expected, strict=True):
        assert list(record["most_similar"].items()) == want["most_similar"]  # bit for bit
        assert record["avg_similarity_score"] == pytest.approx(
            want["avg_similarity_score"], abs=1e-12
        )
        assert (record["source_run"], record["source_id"]) == (
            want["source_run"],
            want["source_id"],
        )


def test_argument_order_does_not_change_the_merge(
    runs: dict[str, Path], merged: Path, tmp_path: Path
) -> None:
    out = tmp_path / "again"
    cli("merge", runs["gamma"], runs["beta"], runs["alpha"], "--out", out, "-q")
    assert (out / INSTRUCTIONS).read_bytes() == (merged / INSTRUCTIONS).read_bytes()
    for name in ("finetuning_data/all_generated_instances.jsonl", "exports/alpaca.json"):
        assert (out / name).read_bytes() == (merged / name).read_bytes()


def rows(run: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(run / "selfinstruct.db") as db:
        return db.execute(sql).fetchall()


def test_records_follow_their_instruction(runs: dict[str, Path], merged: Path) -> None:
    sources = dict(
        (merged_id, (name, source_id))
        for merged_id, name, source_id in rows(
            merged,
            "SELECT s.instruction_id, r.name, s.source_id FROM merge_sources s "
            "JOIN merge_runs r USING (source)",
        )
    )
    assert len(sources) == len(read_jsonl(merged / INSTRUCTIONS))
    tables = {
        "labels": "SELECT instruction_id, raw, is_classification FROM labels",
        "instances": "SELECT instruction_id, raw_instances, finish_reason FROM instances",
        "parsed_instances": "SELECT instruction_id, position, input, output FROM parsed_instances",
        "relabels": "SELECT instruction_id, position, answer, agrees FROM relabels",
        "judgments": "SELECT instruction_id, position, instruction_ok, input_ok, output_ok, "
        "rating, reasons FROM judgments",
    }
    for table, sql in tables.items():
        want = sorted(
            (merged_id, *row[1:])
            for merged_id, (name, source_id) in sources.items()
            for row in rows(runs[name], sql)
            if row[0] == source_id
        )
        assert sorted(rows(merged, sql)) == want, table
    assert len(rows(merged, "SELECT DISTINCT judge FROM judgments")) == 1  # one judge


def test_a_cache_key_two_runs_answered_differently_is_kept_apart(
    runs: dict[str, Path], tmp_path: Path
) -> None:
    twin = Path(shutil.copytree(runs["gamma"], tmp_path / "twin"))
    with sqlite3.connect(twin / "selfinstruct.db") as db:
        db.execute("UPDATE meta SET value = '\"2000-01-01\"' WHERE key = 'created_at'")
        sql = "SELECT response_key FROM bootstrap_requests WHERE request_idx = 0"
        (key,) = db.execute(sql).fetchone()
        db.execute("UPDATE responses SET text = text || ' (elsewhere)' WHERE key = ?", (key,))
    out = tmp_path / "m"
    result = cli("merge", runs["gamma"], twin, "--out", out, "--no-prepare")
    assert "share random seed 2" in result.stderr
    stored = dict(rows(out, f"SELECT key, text FROM responses WHERE key LIKE '{key}%'"))
    assert sorted(text.endswith(" (elsewhere)") for text in stored.values()) == [False, True]
    used = {k for (k,) in rows(out, "SELECT response_key FROM bootstrap_requests")}
    assert set(stored) <= used
    assert stored[key].endswith(" (elsewhere)")  # the twin is first in merge order (older)


def test_manifest_counts_each_run(runs: dict[str, Path], merged: Path) -> None:
    manifest = json.loads((merged / "merge.json").read_text(encoding="utf-8"))
    assert manifest["format"] == "selfinstruct-merge"
    assert [run["name"] for run in manifest["runs"]] == ["beta", "gamma", "alpha"]
    records = read_jsonl(merged / INSTRUCTIONS)
    for entry in manifest["runs"]:
        assert entry["instructions"] == RUNS[entry["name"]][1]
        assert entry["kept"] == sum(r["source_run"] == entry["name"] for r in records)
        assert entry["kept"] + sum(entry["dropped"].values()) == entry["instructions"]
    assert manifest["instructions"] == len(records)
    funnel = json.loads((merged / "run.json").read_text(encoding="utf-8"))["funnel"]
    assert funnel["instructions"] == len(records)


def test_merging_one_run_reproduces_it(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "one"
    cli("merge", runs["alpha"], "--out", out, "-q")
    found = read_jsonl(out / INSTRUCTIONS)
    for number, record in enumerate(found, start=1):
        assert (record.pop("source_run"), record.pop("source_id")) == ("alpha", number)
    assert found == read_jsonl(runs["alpha"] / INSTRUCTIONS)
    for name in ("finetuning_data/all_generated_instances.jsonl", "exports/alpaca.json"):
        assert (out / name).read_bytes() == (runs["alpha"] / name).read_bytes()


def digests(run: Path) -> dict[str, str]:
    return {
        str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(run.rglob("*"))
        if p.is_file() and not p.name.endswith(("-shm", "-wal"))
    }


def test_merged_run_works_with_the_other_commands(runs: dict[str, Path], tmp_path: Path) -> None:
    before = {name: digests(run) for name, run in runs.items()}
    out = tmp_path / "m"
    cli("merge", *runs.values(), "--out", out, "-q")
    assert {name: digests(run) for name, run in runs.items()} == before  # read only
    alpaca = tmp_path / "a.json"
    cli("export", "--run", out, "--format", "alpaca", "--out", alpaca, "-q")
    assert alpaca.read_bytes() == (out / "exports/alpaca.json").read_bytes()
    cli("report", "--run", out, "--no-verbs")
    assert (out / "report.html").is_file()
    cli("prepare", "--out", out, "-q")
    count = len(read_jsonl(out / INSTRUCTIONS))
    merged_requests = rows(out, "SELECT COUNT(*) FROM bootstrap_requests")[0][0]
    cli("run", "--out", out, "--num-instructions", count + 10, "-q")  # extends the merge
    new = rows(out, f"SELECT request_idx, instruction FROM instructions WHERE id > {count}")
    assert len(new) == 10 and min(idx for idx, _ in new) >= merged_requests
    old = rows(out, f"SELECT instruction FROM instructions WHERE id <= {count}")
    assert not {text for (text,) in old} & {text for _, text in new}


def test_runs_without_instances_are_merged_then_completed(tmp_path: Path) -> None:
    for seed in (1, 2):
        cli("bootstrap", "--out", tmp_path / f"b{seed}", "--random-seed", seed,
            "--num-instructions", 15, *QUICK)  # fmt: skip
    out = tmp_path / "m"
    result = cli("merge", tmp_path / "b1", tmp_path / "b2", "--out", out, "-q")
    assert "no label or no instances" in result.stderr
    assert not (out / "finetuning_data").exists()
    cli("run", "--out", out, "-q")  # classify, instances and prepare on the merged run
    assert read_jsonl(out / "finetuning_data/all_generated_instances.jsonl")
    assert len(read_jsonl(out / INSTRUCTIONS)) == rows(out, "SELECT COUNT(*) FROM labels")[0][0]


@pytest.fixture(scope="module")
def odd_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Runs that cannot be merged with the others: other seeds, another threshold."""
    base = tmp_path_factory.mktemp("odd")
    seeds = base / "seeds.txt"
    seeds.write_text(
        "\n".join(f"Write a short story about a {w} who learns to cook." for w in "abcdefghij"),
        encoding="utf-8",
    )
    made = {"seeds": base / "other-seeds", "threshold": base / "other-threshold"}
    cli("bootstrap", "--out", made["seeds"], "--seeds", seeds, "--num-instructions", 10, *QUICK)
    cli("bootstrap", "--out", made["threshold"], "--num-instructions", 10, *QUICK,
        "--set", "bootstrap.rouge_threshold=0.6")  # fmt: skip
    return made


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("twice", "is given twice"),
        ("copy", "are the same run"),
        ("not_a_run", "is not a run directory"),
        ("seeds", "different seed sets"),
        ("threshold", "different bootstrap.rouge_threshold"),
        ("out_not_empty", "exists and is not empty"),
    ],
)
def test_refusals_name_the_directory_and_write_nothing(
    runs: dict[str, Path], odd_runs: dict[str, Path], tmp_path: Path, case: str, message: str
) -> None:
    out = tmp_path / "out"
    given = {
        "twice": [runs["alpha"], runs["alpha"]],
        "copy": [runs["alpha"], Path(shutil.copytree(runs["alpha"], tmp_path / "copy"))],
        "not_a_run": [runs["alpha"], tmp_path],
        "seeds": [runs["alpha"], odd_runs["seeds"]],
        "threshold": [runs["alpha"], odd_runs["threshold"]],
        "out_not_empty": [runs["alpha"], runs["beta"]],
    }[case]
    if case == "out_not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("mine", encoding="utf-8")
    result = cli("merge", *given, "--out", out, check=False)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.splitlines()) == 1
    named = out if case == "out_not_empty" else given[-1]
    assert str(named) in result.stderr
    if case == "out_not_empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not list(tmp_path.glob(".out.merging-*"))


def test_a_failed_merge_leaves_nothing(
    runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: MergedStore, manifest: dict) -> None:
        raise RunError("disk on fire")

    monkeypatch.setattr(MergedStore, "write", broken)
    out = tmp_path / "m"
    with pytest.raises(RunError, match="disk on fire"):
        merge_runs([runs["alpha"], runs["beta"]], out, quiet=True)
    assert list(tmp_path.iterdir()) == []


def test_out_may_be_an_empty_directory(runs: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    result = merge_runs([runs["gamma"]], out, prepare=False, quiet=True)
    assert result.instructions == RUNS["gamma"][1]
    assert (out / "merge.json").is_file() and not (out / "exports").exists()


def test_peoples_ratings_follow_their_instance(runs: dict[str, Path], tmp_path: Path) -> None:
    """Ratings made in each run are in the merged run under the merged ids, on the same text
    (their digests hold), and its numbers count them."""
    from selfinstruct.api import Run
    from selfinstruct.store.reviews import digest
    from selfinstruct.store.run_store import RunStore

    copies = {}
    for name in ("alpha", "beta"):
        copies[name] = tmp_path / name
        shutil.copytree(runs[name], copies[name])
        with RunStore.open(copies[name]) as store:
            for instance in Run.open(copies[name]).instances()[:6]:
                said = digest(instance.instruction, instance.input, instance.output)
                for field, value in (("instruction", True), ("input", True), ("output", False)):
                    store.reviews.answer(name, instance.id, said, field, value)
                store.reviews.answer(name, instance.id, said, "rating", "C")
    out = tmp_path / "merged"
    cli("merge", copies["alpha"], copies["beta"], "--out", out, "-q")
    texts = {i.id: (i.instruction, i.input, i.output) for i in Run.open(out).instances()}
    ratings = Run.open(out).reviews()
    assert ratings and {r.reviewer for r in ratings} <= {"alpha", "beta"}
    assert all(digest(*texts[r.instance]) == r.digest for r in ratings)
    sources = {
        f"{merged_id}.": (name, source_id)
        for merged_id, name, source_id in rows(
            out,
            "SELECT s.instruction_id, r.name, s.source_id FROM merge_sources s "
            "JOIN merge_runs r USING (source)",
        )
    }
    kept_before = 0
    for name in ("alpha", "beta"):
        for rating in Run.open(copies[name]).reviews():
            source_id = int(rating.instance.split(".")[0])
            kept_before += any(src == (name, source_id) for src in sources.values())
    assert len(ratings) == kept_before
    assert Run.open(out).quality()["review"]["ratings"] == len(ratings)
