"""`selfinstruct evaluate`: task files, judge parsing, position-bias control, statistics, and
whole evaluations on the fake backend (in process and over HTTP)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import read_jsonl

from selfinstruct.cli import main
from selfinstruct.errors import InputError
from selfinstruct.evaluation.grading import combine, parse_preference, parse_rating
from selfinstruct.evaluation.summary import bootstrap_interval, pair_summary
from selfinstruct.evaluation.tasks import read_tasks
from selfinstruct.similarity.rouge import rouge_l
from selfinstruct.testing.openai_server import MockOpenAIServer


def invoke(*args: object):
    return CliRunner().invoke(main, [str(a) for a in args])


# --- tasks ------------------------------------------------------------------------------------


def test_packaged_tasks_are_at_least_fifty_in_the_papers_format() -> None:
    tasks = read_tasks()
    assert len(tasks) >= 50
    assert len({t.id for t in tasks}) == len(tasks)
    assert all(t.instruction.strip() and t.reference.strip() for t in tasks)
    assert sum(1 for t in tasks if not t.input) >= 10


def test_paper_format_with_several_instances(tmp_path: Path) -> None:
    path = tmp_path / "user_oriented_instructions.jsonl"
    path.write_text(
        json.dumps(
            {
                "id": "user_oriented_task_0",
                "motivation_app": "Grammarly",
                "instruction": "Fix the grammar.",
                "instances": [
                    {"input": "he go home", "output": "He goes home."},
                    {"input": "they is here", "output": "They are here."},
                ],
            }
        )
        + "\n"
    )
    tasks = read_tasks(path)
    assert [t.id for t in tasks] == ["user_oriented_task_0#0", "user_oriented_task_0#1"]
    assert tasks[1].reference == "They are here."


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('{"id": "a", "instruction": "x", "instances": []}', "instances"),
        ('{"id": "a", "instruction": "x", "instances": [{"input": ""}]}', "instances[0].output"),
        ('{"id": "a", "instruction": 3, "instances": [{"output": "y"}]}', "instruction"),
        ('{"instruction": "x", "instances": [{"output": "y"}]}', "id"),
        (
            '{"id": "a", "instruction": "x", "instances": [{"output": "y"}], "motivation_app": 1}',
            "motivation_app",
        ),
    ],
)
def test_bad_task_files_name_file_line_and_field(tmp_path: Path, line: str, field: str) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text(
        '{"id": "ok", "instruction": "x", "instances": [{"output": "y"}]}\n' + line + "\n"
    )
    with pytest.raises(InputError) as info:
        read_tasks(path)
    assert info.value.line == 2 and info.value.field == field


def test_bad_task_file_through_the_command_line(tmp_path: Path) -> None:
    path = tmp_path / "tasks.jsonl"
    path.write_text("not json\n")
    result = invoke(
        "evaluate", "--candidate", "a=fake", "--tasks", path, "--out", tmp_path / "out", "-q"
    )
    assert result.exit_code == 2
    assert result.stderr.startswith(f"error: {path}, line 1:")
    assert not (tmp_path / "out").exists()


# --- the judge --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("Rating: B\nReason: minor slip.", "B"),
        (" A\nReason: fine.", "A"),
        ("**Rating:** C\nReason: wrong numbers", "C"),
        ("Rating: D", "D"),
        ("I think it is good.", None),
        ("Rating: E", None),
        (" C\nReason: bad.\nTask: next one\nRating: A", "C"),  # the answer, not a later example
        ("**Rating**: B", "B"),
        ("rating: b", "B"),
        ("a good answer", None),
    ],
)
def test_parse_rating(text: str, choice: str | None) -> None:
    assert parse_rating(text).choice == choice


@pytest.mark.parametrize(
    ("text", "choice"),
    [
        ("Preferred: A\nReason: x", "A"),
        (" B\nReason: y", "B"),
        ("Preferred: Tie", "tie"),
        ("Preferred: tie\nReason: same", "tie"),
        ("both are bad", None),
    ],
)
def test_parse_preference(text: str, choice: str | None) -> None:
    assert parse_preference(text).choice == choice


def test_a_preference_must_survive_swapping_positions() -> None:
    assert combine("A", "B") == "1"  # model 1 preferred in both positions
    assert combine("B", "A") == "2"
    assert combine("A", "A") == "tie"  # the judge always picks the first position
    assert combine("B", "B") == "tie"
    assert combine("tie", "A") == "tie"
    assert combine(None, "A") is None


def test_win_rate_and_interval() -> None:
    summary = pair_summary("x", "y", ["1", "1", "2", "tie", None])
    assert (summary.wins, summary.losses, summary.ties, summary.unparsed) == (2, 1, 1, 1)
    assert summary.win_rate == pytest.approx(2.5 / 4)
    assert 0.0 <= summary.low <= summary.win_rate <= summary.high <= 1.0
    assert bootstrap_interval([1.0] * 30) == (1.0, 1.0)
    assert bootstrap_interval([0.0, 1.0] * 20, seed=1) == bootstrap_interval(
        [0.0, 1.0] * 20, seed=1
    )


# --- whole evaluations ------------------------------------------------------------------------


def test_evaluation_on_the_fake_backend(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    result = invoke(
        "evaluate",
        "--candidate",
        "base=fake",
        "--candidate",
        "tuned=fake:v2",
        "--judge",
        "fake",
        "--max-tasks",
        12,
        "--out",
        out,
        "-q",
    )
    assert result.exit_code == 0, result.output
    assert "| base |" in result.stdout and "base vs tuned" in result.stdout
    rows = read_jsonl(out / "results.jsonl")
    assert len(rows) == 24
    tasks = {t.id: t for t in read_tasks()}
    for row in rows:
        assert row["output"] is not None
        assert row["rouge_l"] == rouge_l(tasks[row["id"]].reference, row["output"])
        assert row["rating"] in ("A", "B", "C", "D")
        assert row["rating_reason"]
    pairwise = read_jsonl(out / "pairwise.jsonl")
    assert len(pairwise) == 12
    for record in pairwise:
        assert record["first_shown_as_a"]["choice"] in ("A", "B", "tie")
        assert record["first_shown_as_b"]["choice"] in ("A", "B", "tie")
        assert record["winner"] in ("base", "tuned", "tie")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["candidates"] == {"base": "fake", "tuned": "fake:v2"}
    assert sum(summary["models"][0]["ratings"].values()) == 12
    assert (out / "summary.md").read_text().startswith("| model |")


@pytest.mark.slow  # a local HTTP server
def test_judge_and_candidate_over_http(tmp_path: Path) -> None:
    out = tmp_path / "eval"
    with MockOpenAIServer(models=["judge-1", "cand-1"]) as server:
        result = invoke(
            "evaluate",
            "--candidate",
            "remote=openai:cand-1",
            "--candidate",
            "local=fake",
            "--judge",
            "openai:judge-1",
            "--base-url",
            server.base_url,
            "--max-tasks",
            5,
            "--out",
            out,
            "-q",
        )
    assert result.exit_code == 0, result.output
    rows = read_jsonl(out / "results.jsonl")
    assert {r["model"] for r in rows} == {"remote", "local"}
    assert all(r["rating"] in ("A", "B", "C", "D") for r in rows)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--candidate", "a=nonsense"], "unknown backend 'nonsense'"),
        (["--candidate", "a=fake", "--candidate", "a=fake"], "share a label"),
        (["--candidate", "a=fake", "--pairwise", "a,b"], "needs --judge"),
        (
            [
                "--candidate",
                "a=fake",
                "--candidate",
                "b=fake",
                "--judge",
                "fake",
                "--pairwise",
                "a,c",
            ],
            "expected two different candidate labels",
        ),
    ],
)
def test_bad_model_options(tmp_path: Path, args: list[str], message: str) -> None:
    result = invoke("evaluate", *args, "--out", tmp_path / "out", "-q")
    assert result.exit_code == 2
    assert message in result.stderr


def test_a_failed_answer_loses_the_pair_and_is_not_rated(tmp_path: Path) -> None:
    from selfinstruct.evaluation.run import Candidate, Settings, evaluate
    from selfinstruct.llm.backends.fake import FakeLLM
    from selfinstruct.llm.base import Failure
    from selfinstruct.prompts import TemplateSet

    class Broken(FakeLLM):
        def stream(self, requests, on_result):  # every answer fails
            for index in range(len(requests)):
                on_result(index, Failure("server_error", 3, "HTTP 500"))

    tasks = read_tasks()[:4]
    evaluate(
        tasks,
        [Candidate("ok", "fake", FakeLLM()), Candidate("down", "x", Broken())],
        FakeLLM(),
        [("ok", "down")],
        TemplateSet(),
        Settings(quiet=True),
        tmp_path,
    )
    pairs = read_jsonl(tmp_path / "pairwise.jsonl")
    assert [p["winner"] for p in pairs] == ["ok"] * 4
    summary = json.loads((tmp_path / "summary.json").read_text())
    down = next(m for m in summary["models"] if m["label"] == "down")
    assert down["failed"] == 4 and sum(down["ratings"].values()) == 0
    assert summary["pairwise"][0]["wins"] == 4
