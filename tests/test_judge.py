"""The judge stage: every parsed instance judged exactly once (across reruns, kills and a
change of judge), on its own backend and server, and prepare's filter matching the stored
answers."""

from __future__ import annotations

import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import (
    RUN_TABLES,
    assert_same_nonempty,
    cli,
    read_jsonl,
    resumed_after_kills,
    start_run,
    store_snapshot,
)

from selfinstruct.llm.backends.fake import FakeLLM, infer_task
from selfinstruct.llm.base import Completion, Request
from selfinstruct.llm.fake_answers import prompt_text
from selfinstruct.paper import RATINGS
from selfinstruct.testing.openai_server import MockOpenAIServer

QUIET = ("--quiet", "--set", "prepare.report=false")
FAKE_JUDGE = ("--judge", "fake:judge-1")
FAST = "[openai]\nmax_attempts = 2\nbackoff_base = 0.01\ntimeout = 10.0\n"


def fake_run(out: Path, n: int, *args: str) -> subprocess.CompletedProcess:
    return cli(
        "run", "--backend", "fake", "--num-instructions", str(n), "--out", out, *QUIET, *args
    )


def rows(run: Path, sql: str) -> list[tuple]:
    with sqlite3.connect(run / "selfinstruct.db") as db:
        return db.execute(sql).fetchall()


def judgments(run: Path) -> list[tuple]:
    return rows(
        run,
        "SELECT instruction_id, position, judge, instruction_ok, input_ok, output_ok, rating "
        "FROM judgments ORDER BY judge, instruction_id, position",
    )


def instance_ids(run: Path) -> list[tuple[int, int]]:
    return rows(run, "SELECT instruction_id, position FROM parsed_instances ORDER BY 1, 2")


def last_stats(run: Path, stage: str) -> dict:
    found = rows(
        run,
        f"SELECT requests, cached, kept, dropped FROM stage_runs WHERE stage = '{stage}' "
        "ORDER BY id DESC LIMIT 1",
    )
    requests, cached, kept, dropped = found[0]
    return {"requests": requests, "cached": cached, "kept": kept, "dropped": json.loads(dropped)}


def readable(row: tuple) -> bool:
    return None not in row[3:7]


def test_judge_is_off_by_default(tmp_path: Path) -> None:
    run = tmp_path / "run"
    result = fake_run(run, 20)
    assert "[judge]" not in result.stderr
    assert judgments(run) == []
    assert "quality" not in json.loads((run / "run.json").read_text())


def test_every_instance_is_judged_once_and_prepare_filters_on_the_stored_answers(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    fake_run(run, 40, *FAKE_JUDGE, "--set", "prepare.decontaminate=false")
    found = judgments(run)
    assert [(r[0], r[1]) for r in found] == instance_ids(run)  # each instance once
    assert len({r[2] for r in found}) == 1
    assert last_stats(run, "judge")["requests"] == len(found)

    judged = [r for r in found if readable(r)]
    rejected = [r for r in judged if RATINGS.index(r[6]) > RATINGS.index("B")]
    dropped = last_stats(run, "prepare")["dropped"]
    assert rejected and dropped["judge_rejected"] == len(rejected)
    assert dropped.get("judge_unparseable", 0) == len(found) - len(judged)
    drops = read_jsonl(run / "quality_drops.jsonl")
    assert sorted((d["instruction_id"], d["position"]) for d in drops) == sorted(
        (r[0], r[1]) for r in found if r not in judged or r in rejected
    )
    assert all(d["detail"].startswith("rating ") for d in drops if d["reason"] == "judge_rejected")

    quality = json.loads((run / "run.json").read_text())["quality"]
    every = quality["groups"]["all"]
    assert every["all three"]["n"] == len(judged)
    assert every["all three"]["yes"] == sum(r[3] == r[4] == r[5] == 1 for r in judged)
    assert every["rating A"]["yes"] == sum(r[6] == "A" for r in judged)
    assert quality["unparseable"] == len(found) - len(judged)
    split = quality["groups"]
    assert split["classification"]["output"]["n"] + split["non-classification"]["output"]["n"] == (
        len(judged)
    )

    again = fake_run(run, 40, *FAKE_JUDGE, "--set", "prepare.decontaminate=false")
    assert again.returncode == 0
    assert last_stats(run, "judge")["requests"] == 0
    assert judgments(run) == found


def test_required_answers_filter_without_a_rating(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_run(
        run,
        30,
        *FAKE_JUDGE,
        "--set",
        "prepare.decontaminate=false",
        "--set",
        'prepare.min_rating=""',
        "--set",
        'prepare.require_yes=["output", "input"]',
    )
    judged = [r for r in judgments(run) if readable(r)]
    failing = [r for r in judged if r[5] == 0 or r[4] == 0]
    assert last_stats(run, "prepare")["dropped"]["judge_rejected"] == len(failing)


def test_changing_the_judge_rejudges_and_keeps_the_generated_data(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_run(run, 30, *FAKE_JUDGE)
    before = store_snapshot(run)
    generated = rows(run, "SELECT key, text FROM responses WHERE stage != 'judge' ORDER BY key")
    first = judgments(run)

    fake_run(run, 30, "--judge", "fake:judge-2")
    after = store_snapshot(run)
    tables = ("instructions", "candidates", "labels", "instances")
    assert_same_nonempty(after, before, tables, only=True)
    assert rows(run, "SELECT key, text FROM responses WHERE stage != 'judge' ORDER BY key") == (
        generated
    )
    both = Counter(r[2] for r in judgments(run))
    assert sorted(both.values()) == [len(first), len(first)]  # the old judge's rows kept
    assert last_stats(run, "judge")["requests"] == len(first)

    fake_run(run, 30, *FAKE_JUDGE)  # back to the first judge: nothing to ask
    assert last_stats(run, "judge")["requests"] == 0


@pytest.mark.slow  # a local HTTP server
def test_a_judge_on_its_own_server_with_its_own_key_and_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JUDGE_KEY", "sk-judge-secret-123")
    run = tmp_path / "run"
    config = tmp_path / "judge.toml"
    config.write_text(FAST + "[judge]\ninput_per_million = 3.0\noutput_per_million = 15.0\n")
    with MockOpenAIServer(
        api_key="sk-judge-secret-123", fault_rate=0.2, faults=("429", "500"), retry_after=0.01
    ) as server:
        args = (
            "--judge",
            "openai:judge-model",
            "--judge-base-url",
            server.base_url,
            "--judge-api-key-env",
            "JUDGE_KEY",
            "--judge-concurrency",
            "4",
            "--config",
            str(config),
        )
        result = cli(
            "run",
            "--backend",
            "fake",
            "--num-instructions",
            "25",
            "--out",
            run,
            "--set",
            "prepare.report=false",
            *args,
            check=False,
        )
        for _ in range(6):  # requests that failed for good are asked again by a rerun
            if {(r[0], r[1]) for r in judgments(run)} == set(instance_ids(run)):
                break
            result = cli("judge", "--out", run, *args, check=False)
        assert result.returncode == 0, result.stderr
        served = server.stats
    found = judgments(run)
    assert [(r[0], r[1]) for r in found] == instance_ids(run)
    assert served["requests"] >= len(found)
    assert "cost $" in result.stderr
    for path in run.rglob("*"):
        if path.is_file():
            assert b"sk-judge-secret-123" not in path.read_bytes(), path
    stored = json.loads((run / "run.json").read_text())["config"]["judge"]
    assert stored["backend"] == "openai" and stored["api_key_env"] == "JUDGE_KEY"


class CountingJudge(FakeLLM):
    """FakeLLM that counts the judge prompts it answers, a little slowly."""

    def __init__(self) -> None:
        super().__init__(model="judge")
        self.asked: Counter[str] = Counter()
        self.lock = threading.Lock()

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        time.sleep(0.05)
        with self.lock:
            for request in requests:
                if infer_task(request) == "judge_instance":
                    self.asked[prompt_text(request)] += 1
        return super().generate(requests)


@pytest.mark.slow  # a local HTTP server and a process of its own
def test_a_killed_judge_resumes_without_asking_twice(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_run(run, 40)
    total = len(instance_ids(run))
    judge = CountingJudge()
    with MockOpenAIServer(llm=judge) as server:
        args = [
            sys.executable,
            "-m",
            "selfinstruct",
            "judge",
            "--out",
            str(run),
            "--quiet",
            "--judge",
            "openai:judge",
            "--judge-base-url",
            server.base_url,
            "--judge-concurrency",
            "2",
            "--set",
            "openai.max_attempts=1",
        ]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            if len(judgments(run)) >= total // 3:
                break
            time.sleep(0.02)
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        stored_at_kill = len(judgments(run))
        assert 0 < stored_at_kill < total
        finished = subprocess.run(args, capture_output=True, text=True, timeout=120)
        assert finished.returncode == 0, finished.stderr
    assert [(r[0], r[1]) for r in judgments(run)] == instance_ids(run)
    repeated = sum(n - 1 for n in judge.asked.values())
    assert repeated <= 2  # at most the requests in flight when it was killed
    assert sum(judge.asked.values()) - repeated == total


def test_judge_requests_as_batch_files(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_run(run, 15)
    batch, results = tmp_path / "batch.jsonl", tmp_path / "results.jsonl"
    cli("judge", "--out", run, *FAKE_JUDGE, "--batch-out", batch)
    lines = read_jsonl(batch)
    assert len(lines) == len(instance_ids(run))
    assert {line["body"]["model"] for line in lines} == {"judge-1"}
    llm = FakeLLM(model="judge-1")
    with results.open("w") as out:
        for line in lines:
            body = line["body"]
            request = Request(
                prompt=body["prompt"],
                max_tokens=body["max_tokens"],
                stop=tuple(body.get("stop") or ()),
                task="judge_instance",
            )
            text = llm.generate([request])[0].text
            answer = {
                "choices": [{"text": text, "finish_reason": "stop", "index": 0}],
                "usage": {"prompt_tokens": 10, "completion_tokens": 5},
            }
            out.write(
                json.dumps(
                    {
                        "custom_id": line["custom_id"],
                        "response": {"status_code": 200, "body": answer},
                    }
                )
                + "\n"
            )
    cli("judge", "--out", run, *FAKE_JUDGE, "--batch-in", results)
    assert len(judgments(run)) == len(lines)
    assert last_stats(run, "judge")["requests"] == 0


def test_estimate_includes_the_judge_at_its_prices(tmp_path: Path) -> None:
    result = cli(
        "run",
        "--backend",
        "fake",
        "--out",
        tmp_path / "run",
        "--num-instructions",
        "100",
        *FAKE_JUDGE,
        "--set",
        "judge.input_per_million=2",
        "--estimate",
    )
    assert "judge" in result.stdout
    assert "judge 2.0/0.0" in result.stdout


def test_the_judge_command_needs_a_judge(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_run(run, 10)
    result = cli("judge", "--out", run, check=False)
    assert result.returncode != 0
    assert "--judge BACKEND[:MODEL]" in result.stderr
    assert "Missing option '--out'" in cli("judge", check=False).stderr


def test_a_judge_setting_the_backend_lacks_is_refused(tmp_path: Path) -> None:
    result = cli(
        "run",
        "--backend",
        "fake",
        "--out",
        tmp_path / "run",
        "--judge",
        "fake:j",
        "--judge-base-url",
        "http://127.0.0.1:9/v1",
        check=False,
    )
    assert result.returncode != 0
    assert "judge.base_url" in result.stderr and "no base_url" in result.stderr


def test_the_python_api_runs_a_judge_and_reads_its_judgments(tmp_path: Path) -> None:
    import selfinstruct

    run = selfinstruct.Run.create(tmp_path / "run", backend="fake", num_instructions=10, quiet=True)
    stats = run.generate(judge={"backend": "fake", "model": "judge-1"}, prepare={"report": False})
    assert "judge" in stats and "relabel" not in stats
    found = run.judgments()
    assert len(found) == len(run.instances()) == stats["judge"].kept
    quality = run.quality()["quality"]
    assert quality["groups"]["all"]["all three"]["n"] == sum(j.readable for j in found.values())


def test_table2_in_the_report_and_the_dataset_card(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli(
        "run",
        "--backend",
        "fake",
        "--num-instructions",
        "20",
        "--out",
        run,
        *FAKE_JUDGE,
        "--relabel",
        "--set",
        "prepare.report_verbs=false",
        "--quiet",
    )
    numbers = json.loads((run / "run.json").read_text())
    report = json.loads((run / "report.json").read_text())
    assert report["quality"] == numbers["quality"]
    assert report["label_agreement"] == numbers["label_agreement"]
    assert (
        report["screened"]["judge_rejected"]
        == last_stats(run, "prepare")["dropped"]["judge_rejected"]
    )
    page = (run / "report.html").read_text()
    assert 'id="quality"' in page and "Valid instruction" in page
    card = (run / "exports" / "README.md").read_text()
    every = numbers["quality"]["groups"]["all"]["all three"]
    assert f"| all three valid | {every['percent']:.1f}% [" in card
    assert "reviewed by `fake:judge-1`" in card and "Label consistency" in card


KILL_ARGS = ["--backend", "fake", "--num-instructions", "400", "--random-seed", "3", "-q"]
KILL_ARGS += ["--judge", "fake:judge-1", "--relabel", "--set", "prepare.report_verbs=false"]


def _start(out: Path) -> subprocess.Popen:
    return start_run(out, KILL_ARGS)


def quality_snapshot(run: Path) -> dict[str, list[tuple]]:
    return {
        **store_snapshot(run),
        "judgments": rows(run, "SELECT * FROM judgments ORDER BY 1, 2, 3"),
        "relabels": rows(run, "SELECT * FROM relabels ORDER BY 1, 2"),
    }


@pytest.mark.slow
def test_a_killed_run_with_a_judge_equals_an_uninterrupted_one(tmp_path: Path) -> None:
    """SIGKILLed at random moments and rerun each time, a run with the judge and label
    consistency ends with exactly the records (judgments included) of an uninterrupted one."""
    reference = tmp_path / "reference"
    started = time.monotonic()
    assert _start(reference).wait() == 0
    duration = time.monotonic() - started
    expected = quality_snapshot(reference)
    assert expected["judgments"] and expected["relabels"]
    rng = random.Random(11)
    for resumed in resumed_after_kills(
        tmp_path,
        _start,
        lambda: 0.3 + rng.uniform(0, 0.8 * duration),
        kills=3,
        attempts=2,
        most=8,
    ):
        assert_same_nonempty(quality_snapshot(resumed), expected, (*RUN_TABLES, "judgments"))


def test_a_new_judge_is_estimated_and_read_as_the_one_given(tmp_path: Path) -> None:
    import selfinstruct

    run = tmp_path / "run"
    fake_run(run, 20, *FAKE_JUDGE)
    total = len(instance_ids(run))
    same = cli("run", "--out", run, *FAKE_JUDGE, "--estimate").stdout
    assert re.search(r"^judge\s+0 ", same, re.M), same
    other = cli("run", "--out", run, "--judge", "fake:judge-9", "--estimate").stdout
    assert re.search(rf"^judge\s+{total} ", other, re.M), other
    assert selfinstruct.Run.open(run, judge={"model": "judge-9"}).judgments() == {}
    assert len(selfinstruct.Run.open(run).judgments()) == total


def test_the_report_prices_each_stage_at_its_own_prices(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_run(
        run,
        15,
        *FAKE_JUDGE,
        "--set",
        "pricing.input_per_million=1000",
        "--set",
        "judge.input_per_million=1",
        "--set",
        "prepare.report=true",
        "--set",
        "prepare.report_verbs=false",
    )
    economics = json.loads((run / "report.json").read_text())["economics"]
    by_stage = {row["stage"]: row for row in economics["stages"]}
    assert by_stage["judge"]["cost"] == pytest.approx(by_stage["judge"]["prompt_tokens"] / 1e6)
    assert by_stage["classify"]["cost"] == pytest.approx(
        by_stage["classify"]["prompt_tokens"] * 1000 / 1e6
    )
    assert economics["total"]["cost"] == pytest.approx(
        sum(row["cost"] or 0 for row in economics["stages"]), abs=1e-5
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--judge", "openai"), "--judge openai:MODEL"),
        (("--decontaminate", "missing.jsonl"), "missing.jsonl: file not found"),
    ],
)
def test_bad_quality_settings_stop_a_run_before_it_starts(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    run = tmp_path / "run"
    result = cli("run", "--backend", "fake", "--out", run, *args, check=False)
    assert result.returncode != 0 and message in result.stderr
    assert not run.exists()


def test_unjudged_instances_are_dropped_with_a_warning_or_kept_on_request(tmp_path: Path) -> None:
    run = tmp_path / "run"
    fake_run(run, 20)  # no judge yet
    result = cli("prepare", "--out", run, *FAKE_JUDGE, "--quiet", check=False)
    assert "judge_missing" in result.stderr and "selfinstruct judge --out" in result.stderr
    kept = cli("prepare", "--out", run, "--set", "prepare.keep_unjudged=true", "-q")
    assert kept.returncode == 0
    assert last_stats(run, "prepare")["dropped"].get("judge_missing", 0) == 0
    assert cli("run", "--out", run, "--judge", "none", "-q").returncode == 0
    assert json.loads((run / "run.json").read_text())["config"]["judge"]["backend"] == ""
