"""End-to-end runs on the fake backend through the real entry point: every output file is
checked against its format and the similarity records are recomputed with rouge_score."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest
from conftest import cli, read_jsonl, store_snapshot
from rouge_score import rouge_scorer

from selfinstruct.seeds import load_seeds

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def rouge(a: str, b: str) -> float:
    return SCORER.score(a, b)["rougeL"].fmeasure


@pytest.fixture(scope="module")
def fake_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "fake"
    cli("run", "--out", str(out), "--backend", "fake", "--num-instructions", "150", "-q")
    return out


@pytest.mark.slow  # its fixture: a 150-instruction run, with helper processes
def test_instruction_file_fields_and_similarity_records(fake_run: Path) -> None:
    records = read_jsonl(fake_run / "machine_generated_instructions.jsonl")
    assert len(records) == 150
    pool = [t.instruction for t in load_seeds()]
    for record in records:
        assert set(record) == {
            "instruction",
            "most_similar",
            "avg_similarity_score",
            "metadata",
            "request_idx",
        }
        text = record["instruction"]
        scores = [rouge(text, other) for other in pool]
        assert max(scores) <= 0.7
        assert record["avg_similarity_score"] == pytest.approx(sum(scores) / len(scores), abs=1e-9)
        top = sorted(scores, reverse=True)[:10]
        assert len(record["most_similar"]) == 10
        for other, score in record["most_similar"].items():
            assert score == pytest.approx(rouge(text, other), abs=1e-9)
        assert sorted(record["most_similar"].values(), reverse=True) == pytest.approx(top)
        assert record["metadata"]["response"]["finish_reason"] == "stop"
        assert isinstance(record["request_idx"], int)
        pool.append(text)


@pytest.mark.slow  # its fixture: a 150-instruction run, with helper processes
def test_rouge_drops_really_exceed_the_threshold(fake_run: Path) -> None:
    seeds = [t.instruction for t in load_seeds()]
    with sqlite3.connect(fake_run / "selfinstruct.db") as db:
        rows = db.execute(
            "SELECT c.request_idx, c.piece_idx, c.instruction, c.decision "
            "FROM candidates c ORDER BY c.request_idx, c.piece_idx"
        ).fetchall()
    accepted: list[str] = []
    checked = 0
    for _, _, text, decision in rows:
        if decision == "kept":
            accepted.append(text)
        elif decision == "rouge" and checked < 60:
            assert max(rouge(text, other) for other in seeds + accepted) > 0.7
            checked += 1
    assert checked > 0


@pytest.mark.slow  # its fixture: a 150-instruction run, with helper processes
def test_prompts_hold_eight_instructions_at_most_two_machine(fake_run: Path) -> None:
    seeds = {re.sub(r"\s+", " ", t.instruction).strip().rstrip(":") for t in load_seeds()}
    for record in read_jsonl(fake_run / "machine_generated_instructions.jsonl"):
        prompt = record["metadata"]["prompt"]
        assert prompt.endswith("\n9.")
        shown = re.findall(r"^(\d+)\. (.+)$", prompt, flags=re.M)
        assert [n for n, _ in shown] == [str(i) for i in range(1, 9)]
        machine = [text for _, text in shown if text not in seeds]
        assert len(machine) <= 2


@pytest.mark.slow  # its fixture: a 150-instruction run, with helper processes
def test_label_and_instance_files(fake_run: Path) -> None:
    labels = read_jsonl(fake_run / "is_clf_or_not_fake-1_completion.jsonl")
    assert len(labels) == 150
    assert all(set(r) == {"instruction", "is_classification"} for r in labels)
    assert {r["is_classification"].strip() for r in labels} == {"Yes", "No"}
    instances = read_jsonl(fake_run / "machine_generated_instances.jsonl")
    assert len(instances) == 150
    for record in instances:
        assert set(record) == {
            "instruction",
            "raw_instances",
            "instance_metadata",
            "instruction_metadata",
            "most_similar",
            "avg_similarity_score",
        }
        assert record["instance_metadata"]["response"]["text"] == record["raw_instances"]


@pytest.mark.slow  # its fixture: a 150-instruction run, with helper processes
def test_finetuning_files_and_exports(fake_run: Path) -> None:
    generated = read_jsonl(fake_run / "finetuning_data/all_generated_instances.jsonl")
    assert generated and all(set(r) == {"instruction", "input", "output"} for r in generated)
    assert all(r["output"] and not r["output"].endswith(":") for r in generated)
    per_task: dict[str, int] = {}
    for r in generated:
        per_task[r["instruction"]] = per_task.get(r["instruction"], 0) + 1
    assert max(per_task.values()) <= 5
    (gpt3,) = (fake_run / "finetuning_data").glob("gpt3_finetuning_data_*.jsonl")
    encoded = read_jsonl(gpt3)
    assert gpt3.name == f"gpt3_finetuning_data_{len(encoded)}.jsonl"
    assert all(r["completion"].endswith("<|endoftext|>") for r in encoded)
    assert len({(r["prompt"], r["completion"]) for r in encoded}) == len(encoded)
    alpaca = json.loads((fake_run / "exports/alpaca.json").read_text())
    assert alpaca == generated
    chat = read_jsonl(fake_run / "exports/openai_chat.jsonl")
    assert len(chat) == len(generated)
    for record, example in zip(chat, generated, strict=True):
        roles = [m["role"] for m in record["messages"]]
        assert roles == ["user", "assistant"]
        assert record["messages"][1]["content"] == example["output"]
        assert record["messages"][0]["content"].startswith(example["instruction"])
    assert read_jsonl(fake_run / "exports/prompt_completion.jsonl") == encoded


@pytest.mark.slow  # its fixture: a 150-instruction run, with helper processes
def test_run_json_describes_the_run(fake_run: Path) -> None:
    info = json.loads((fake_run / "run.json").read_text())
    assert info["format"] == "selfinstruct-run"
    assert info["counts"] == {"instructions": 150, "labels": 150, "instances": 150}
    assert len(info["seeds"]["sha256"]) == 64
    assert info["config"]["bootstrap"]["rouge_threshold"] == 0.7
    assert {"python", "selfinstruct", "rapidfuzz"} <= set(info["versions"])


@pytest.mark.slow  # its fixture: a 150-instruction run, with helper processes
def test_export_command_writes_each_format(fake_run: Path, tmp_path: Path) -> None:
    for fmt, name in (
        ("alpaca", "a.json"),
        ("openai-chat", "c.jsonl"),
        ("prompt-completion", "p.jsonl"),
    ):
        result = cli(
            "export", "--run", str(fake_run), "--format", fmt, "--out", str(tmp_path / name)
        )
        assert "wrote" in result.stdout
    assert json.loads((tmp_path / "a.json").read_text()) == json.loads(
        (fake_run / "exports/alpaca.json").read_text()
    )
    assert (tmp_path / "p.jsonl").read_text() == (
        fake_run / "exports/prompt_completion.jsonl"
    ).read_text()


@pytest.mark.slow  # its fixture: a 150-instruction run, with helper processes
def test_import_of_paper_files_gives_the_same_stage4_outputs(
    fake_run: Path, tmp_path: Path
) -> None:
    out = tmp_path / "imported"
    cli(
        "prepare",
        "--out",
        str(out),
        "--import-instances",
        str(fake_run / "machine_generated_instances.jsonl"),
        "--import-labels",
        str(fake_run / "is_clf_or_not_fake-1_completion.jsonl"),
        "-q",
    )
    for name in (
        "finetuning_data/all_generated_instances.jsonl",
        "exports/alpaca.json",
        "exports/prompt_completion.jsonl",
    ):
        assert (out / name).read_text() == (fake_run / name).read_text(), name


def test_import_reads_the_papers_response_shape(tmp_path: Path) -> None:
    """The paper's files nest the finish reason as response.choices[0].finish_reason."""
    instances = tmp_path / "machine_generated_instances.jsonl"
    labels = tmp_path / "is_clf_or_not_davinci_template_1.jsonl"
    raw = "Example 1\nSentence: a\nOutput: b\nExample 2\nSentence: c\nOutput: d"
    rows = [
        {
            "instruction": "Rewrite the sentence formally.",
            "raw_instances": raw,
            "instance_metadata": {"response": {"choices": [{"finish_reason": "length"}]}},
        },
        {
            "instruction": "Is the sentence polite? Answer yes or no.",
            "raw_instances": "Class label: yes\nSentence: Thank you kindly.",
            "instance_metadata": {"response": {"finish_reason": "stop"}},
        },
    ]
    instances.write_text("".join(json.dumps(r) + "\n" for r in rows))
    labels.write_text(
        json.dumps({"instruction": rows[0]["instruction"], "is_classification": " No"})
        + "\n"
        + json.dumps({"instruction": rows[1]["instruction"], "is_classification": " Yes"})
        + "\n"
    )
    out = tmp_path / "out"
    cli(
        "prepare",
        "--out",
        str(out),
        "--import-instances",
        str(instances),
        "--import-labels",
        str(labels),
        "-q",
    )
    generated = read_jsonl(out / "finetuning_data/all_generated_instances.jsonl")
    assert generated == [
        {"instruction": rows[0]["instruction"], "input": "Sentence: a", "output": "b"},
        {
            "instruction": rows[1]["instruction"],
            "input": "Sentence: Thank you kindly.",
            "output": "yes",
        },
    ]


def test_paper_seed_file_runs_in_both_prompt_styles(paper_seeds: Path, tmp_path: Path) -> None:
    for style in ("completion", "chat"):
        out = tmp_path / style
        cli(
            "run",
            "--out",
            str(out),
            "--seeds",
            str(paper_seeds),
            "--backend",
            "fake",
            "--num-instructions",
            "60",
            "--prompt-style",
            style,
            "-q",
        )
        info = json.loads((out / "run.json").read_text())
        assert info["seeds"]["count"] == 175
        assert info["counts"]["instructions"] == 60
        records = read_jsonl(out / "machine_generated_instructions.jsonl")
        pool = [json.loads(x)["instruction"] for x in paper_seeds.read_text().splitlines()]
        for record in records[:20]:
            assert max(rouge(record["instruction"], p) for p in pool) <= 0.7
            pool.append(record["instruction"])


def test_chat_style_sends_messages(tmp_path: Path) -> None:
    out = tmp_path / "chat"
    cli(
        "run",
        "--out",
        str(out),
        "--backend",
        "fake",
        "--num-instructions",
        "20",
        "--prompt-style",
        "chat",
        "-q",
    )
    record = read_jsonl(out / "machine_generated_instructions.jsonl")[0]
    messages = record["metadata"]["prompt"]
    assert [m[0] for m in messages] == ["system", "user"]
    assert "8. " in messages[1][1] and "9." not in messages[1][1].split("8. ")[1][:80]


def test_classification_only_uses_classification_seeds(tmp_path: Path) -> None:
    out = tmp_path / "clf"
    cli(
        "run",
        "--out",
        str(out),
        "--backend",
        "fake",
        "--num-instructions",
        "10",
        "--classification-only",
        "-q",
    )
    clf = {
        re.sub(r"\s+", " ", t.instruction).strip().rstrip(":")
        for t in load_seeds()
        if t.is_classification
    }
    record = read_jsonl(out / "machine_generated_instructions.jsonl")[0]
    shown = re.findall(r"^\d+\. (.+)$", record["metadata"]["prompt"], flags=re.M)
    assert set(shown[:8]) <= clf | {
        r["instruction"] for r in read_jsonl(out / "machine_generated_instructions.jsonl")
    }


def test_same_seed_same_records_other_seed_other_records(tmp_path: Path) -> None:
    runs = {}
    for name, seed in (("a", "1"), ("b", "1"), ("c", "2")):
        out = tmp_path / name
        cli(
            "run",
            "--out",
            str(out),
            "--backend",
            "fake",
            "--num-instructions",
            "25",
            "--random-seed",
            seed,
            "-q",
        )
        runs[name] = store_snapshot(out)["instructions"]
    assert runs["a"] == runs["b"]
    assert runs["a"] != runs["c"]
