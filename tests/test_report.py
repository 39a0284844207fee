"""`selfinstruct report`: its numbers recomputed independently from the run's files, the
page self-contained and escaped, the run left untouched, --compare, and the verb-noun chart
with and without spaCy."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
from conftest import cli, read_jsonl
from rouge_score import rouge_scorer

from selfinstruct.analysis import verbs
from selfinstruct.analysis.histogram import SCORE_EDGES, histogram
from selfinstruct.report import sections


def fake_run(directory: Path, n: int = 30, *extra: str) -> Path:
    cli("run", "--out", directory, "--backend", "fake", "--num-instructions", n, "-q", *extra)
    return directory


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return fake_run(tmp_path_factory.mktemp("report") / "run", 40)


@pytest.fixture(scope="module")
def report(run_dir: Path) -> dict:
    cli("report", "--run", run_dir, "--out", run_dir.parent / "r.html")
    return json.loads((run_dir.parent / "r.json").read_text())


def files_digest(directory: Path) -> dict[str, str]:
    """Every file's hash, but SQLite's -wal and -shm companions (a reader of a WAL database
    may create them empty; they hold no data of the run)."""
    return {
        str(p.relative_to(directory)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and not p.name.endswith(("-wal", "-shm"))
    }


def payload(html: str) -> dict:
    found = re.search(
        r'<script type="application/octet-stream" id="report-data"[^>]*>([^<]*)<', html
    )
    assert found
    return json.loads(gzip.decompress(base64.b64decode(found.group(1))))


def test_table1_matches_the_run_files(run_dir: Path, report: dict) -> None:
    instructions = [
        r["instruction"] for r in read_jsonl(run_dir / "machine_generated_instructions.jsonl")
    ]
    labels = [
        r["is_classification"].strip()
        for r in read_jsonl(next(run_dir.glob("is_clf_or_not_*.jsonl")))
    ]
    kept = read_jsonl(run_dir / "finetuning_data" / "all_generated_instances.jsonl")
    inputs = [r["input"] for r in kept if r["input"].strip()]

    def mean(texts: list[str]) -> float:
        return round(sum(len(t.split()) for t in texts) / len(texts), 2)

    assert report["table1"] == {
        "instructions": len(instructions),
        "classification": labels.count("Yes"),
        "non_classification": len(labels) - labels.count("Yes"),
        "unlabelled": 0,
        "instances": len(kept),
        "empty_input": len(kept) - len(inputs),
        "avg_instruction_words": mean(instructions),
        "avg_input_words": mean(inputs),
        "avg_output_words": mean([r["output"] for r in kept]),
    }


def test_histograms_match_an_independent_count(run_dir: Path, report: dict) -> None:
    kept = read_jsonl(run_dir / "finetuning_data" / "all_generated_instances.jsonl")
    outputs = Counter(min(len(r["output"].split()) // 5, 30) for r in kept)
    assert report["lengths"]["output"]["counts"] == [outputs.get(i, 0) for i in range(31)]
    assert report["lengths"]["output"]["total"] == len(kept)
    # Figure 3 with the reference ROUGE-L implementation, against the packaged seeds.
    seeds = [
        r["instruction"]
        for r in read_jsonl(Path(__file__).parents[1] / "src/selfinstruct/data/seed_tasks.jsonl")
    ]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    instructions = [
        r["instruction"] for r in read_jsonl(run_dir / "machine_generated_instructions.jsonl")
    ]
    best = [max(scorer.score(s, i)["rougeL"].fmeasure for s in seeds) for i in instructions]
    assert report["similarity"]["to_seed"] == histogram(best, SCORE_EDGES).as_dict()


def test_the_report_reads_the_run_without_writing_to_it(tmp_path: Path) -> None:
    run = fake_run(tmp_path / "run", 10)
    before = files_digest(run)
    out = tmp_path / "elsewhere" / "page.html"
    result = cli("report", "--run", run, "--out", out)
    assert files_digest(run) == before
    assert str(out) in result.stdout and out.with_suffix(".json").is_file()


def test_the_page_is_self_contained_and_carries_every_record(run_dir: Path, report: dict) -> None:
    html = (run_dir.parent / "r.html").read_text()
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert "<link" not in html and "@import" not in html
    records = payload(html)
    assert len(records["instructions"]) == report["table1"]["instructions"]
    candidates = next(s for s in report["funnel"] if s["unit"] == "candidates")
    assert len(records["dropped"]) == sum(d["count"] for d in candidates["dropped"])
    kept = sum(1 for row in records["instructions"] for x in row[6] if not x[2])
    assert kept == report["table1"]["instances"]
    assert all(str(row[8]) in records["requests"] for row in records["instructions"])


def test_model_text_is_escaped_in_the_page() -> None:
    step = {
        "stage": "bootstrap",
        "unit": "candidates",
        "kept": 1,
        "dropped": [{"reason": "rouge", "count": 1, "examples": ["<script>alert(1)</script>"]}],
    }
    html = sections.funnel({"funnel": [step]})
    assert "<script>" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_prepare_writes_the_report_and_run_ends_with_its_path(tmp_path: Path) -> None:
    result = cli("run", "--out", tmp_path / "run", "--backend", "fake", "--num-instructions", 8)
    assert (tmp_path / "run" / "report.html").is_file()
    assert (tmp_path / "run" / "report.json").is_file()
    assert result.stdout.strip().splitlines()[-1].endswith("report.html")


def test_a_run_stopped_after_bootstrap_gets_a_report(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("bootstrap", "--out", run, "--backend", "fake", "--num-instructions", 6, "-q")
    cli("report", "--run", run, "--no-verbs")
    found = json.loads((run / "report.json").read_text())
    assert found["table1"]["instructions"] == 6 and found["table1"]["unlabelled"] == 6
    assert found["table1"]["instances"] == 0


def test_compare_shows_runs_side_by_side(tmp_path: Path, run_dir: Path) -> None:
    other = fake_run(tmp_path / "chat", 12, "--prompt-style", "chat")
    out = tmp_path / "both.html"
    cli("report", "--run", run_dir, "--compare", other, "--out", out, "--no-verbs")
    found = json.loads(out.with_suffix(".json").read_text())
    assert [r["run"]["prompt_style"] for r in found["compared"]] == ["chat"]
    html = out.read_text()
    assert 'id="compare"' in html and html.count('data-chart="overlay"') == 4


def test_without_spacy_the_report_says_how_to_get_the_chart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(verbs, "load_pipeline", lambda: None)
    run = fake_run(tmp_path / "run", 6)
    cli("report", "--run", run)
    found = json.loads((run / "report.json").read_text())
    assert found["diversity"]["available"] is False
    assert "pip install &#x27;selfinstruct[report]&#x27;" in (run / "report.html").read_text()


def test_verb_noun_pairs_from_the_dependency_parse() -> None:
    nlp = verbs.load_pipeline()
    assert nlp is not None, "spaCy's pipeline (the report extra, in the test extra) is missing"
    texts = ["Write a poem about the sea.", "Tell me a joke.", "What is the capital of France?"]
    found = verbs.summarize(verbs.parse_pairs(texts, nlp))
    assert found.pairs == [("write", "poem"), ("tell", "joke"), None]
    assert (found.with_structure, found.distinct_verbs, found.share) == (2, 2, round(2 / 3, 4))
    assert found.top[0] == {"verb": "tell", "count": 1, "nouns": [{"noun": "joke", "count": 1}]}


def test_a_missing_run_is_a_clear_error(tmp_path: Path) -> None:
    result = cli("report", "--run", tmp_path / "nothing", check=False)
    assert result.returncode != 0 and "not a run directory" in result.stderr


@pytest.mark.parametrize(
    "settings",
    [
        (),
        ("--set", "prepare.classification_tasks_only=true"),
        ("--set", "prepare.max_instances_per_task=2"),
    ],
)
def test_the_funnel_agrees_with_what_prepare_counted(
    tmp_path: Path, settings: tuple[str, ...]
) -> None:
    run = fake_run(tmp_path / "run", 60)
    cli("prepare", "--out", run, "-q", *settings)
    cli("report", "--run", run, "--no-verbs")
    prepared = json.loads((run / "run.json").read_text())["funnel"]["prepared"]
    steps = {s["unit"]: s for s in json.loads((run / "report.json").read_text())["funnel"]}

    def dropped(step: dict) -> dict[str, int]:
        return {d["reason"]: d["count"] for d in step["dropped"]}

    def nonzero(counts: dict[str, int]) -> dict[str, int]:
        return {k: n for k, n in counts.items() if n}

    assert dropped(steps["instances"]) == nonzero(prepared["instances_dropped"])
    assert steps["instances"]["kept"] == prepared["instances"]
    assert dropped(steps["tasks"]) == nonzero(prepared["tasks_dropped"])
    assert steps["tasks"]["kept"] == prepared["tasks"]
    assert steps["labels"]["dropped"] == []  # every label is kept (unreadable ones are notes)


def test_report_files_never_replace_run_files(run_dir: Path, tmp_path: Path) -> None:
    for out, detail in (
        (tmp_path / "numbers.json", "name it .html"),
        (run_dir / "run.html", "run.json is one of the run's own files"),
    ):
        result = cli("report", "--run", run_dir, "--out", out, "--no-verbs", check=False)
        assert result.returncode == 2 and detail in result.stderr
    assert json.loads((run_dir / "run.json").read_text())["format"] == "selfinstruct-run"


def test_a_report_that_fails_is_a_warning_after_a_complete_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from selfinstruct.report import build

    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("no report today")

    monkeypatch.setattr(build, "write_report", broken)
    result = cli("run", "--out", tmp_path / "run", "--backend", "fake", "--num-instructions", 5)
    assert "warning: prepare: ValueError: no report today" in result.stderr
    assert (tmp_path / "run" / "exports" / "alpaca.json").is_file()
    assert not (tmp_path / "run" / "report.html").exists()


def test_similarity_to_seeds_uses_the_runs_tokenizer() -> None:
    from selfinstruct.analysis.overlap import nearest_seeds
    from selfinstruct.similarity.tokenize import get_tokenizer

    seeds = ["写一首关于春天的诗", "Write a poem."]
    assert nearest_seeds(["写一首关于夏天的诗"], seeds)[0][1] == 0.0  # rouge: ASCII words only
    index, score = nearest_seeds(["写一首关于夏天的诗"], seeds, get_tokenizer("unicode"))[0]
    assert index == 0 and score > 0.5
