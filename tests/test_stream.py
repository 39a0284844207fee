"""One stream through the stages (engine/stream.py): a run against a server sends classify,
instances and the judge their records the moment the stage before commits them, all sharing
the backend's slots, and ends with exactly the records of a run made stage by stage, also
when answers arrive out of order, fail, run out of budget, or the run is killed."""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    assert_same_nonempty,
    read_jsonl,
    records_snapshot,
    resumed_after_kills,
    start_http_run,
    without_timestamps,
)

from selfinstruct.analysis import verbs
from selfinstruct.api import Run
from selfinstruct.engine.context import RunContext
from selfinstruct.errors import BudgetExhausted
from selfinstruct.llm.backends.fake import FakeLLM
from selfinstruct.llm.base import LLM, Completion, Feed, Request
from selfinstruct.llm.choice import ModelChoice
from selfinstruct.report import parse_ahead
from selfinstruct.stages.bootstrap.settings import BootstrapSettings
from selfinstruct.testing.latency import LatencyModel
from selfinstruct.testing.openai_server import MockOpenAIServer

DATASET = "finetuning_data/all_generated_instances.jsonl"
PAPER_FILES = ("machine_generated_instructions.jsonl", "machine_generated_instances.jsonl")


def _settings(url: str, concurrency: int = 8, **more: Any) -> dict[str, Any]:
    return {
        "backend": "openai",
        "model": "fake",
        "openai": {"base_url": url, "max_concurrency": concurrency, "backoff_base": 0.01},
        "prepare": {"report_verbs": False},
        **more,
    }


def _generate(out: Path, n: int, stream: bool, **settings: Any) -> dict[str, Any]:
    run = Run.create(out, quiet=True, num_instructions=n, **settings)
    return run.generate(stream=stream)


def _stage_order(out: Path) -> list[str]:
    """The stage of each stored answer, in the order they were stored."""
    with sqlite3.connect(out / "selfinstruct.db") as db:
        return [stage for (stage,) in db.execute("SELECT stage FROM responses ORDER BY rowid")]


def _assert_same_run(out: Path, reference: Path) -> None:
    found = records_snapshot(out)
    assert_same_nonempty(found, records_snapshot(reference))
    assert all(found[table] for table in ("instructions", "labels", "instances")), found
    for name in (DATASET, *PAPER_FILES):
        assert without_timestamps(out / name) == without_timestamps(reference / name), name
    assert read_jsonl(out / DATASET)


@pytest.mark.slow  # a local HTTP server
def test_a_streamed_run_has_the_records_of_a_stage_by_stage_run(tmp_path: Path) -> None:
    # Answer times drawn from heavy-tailed lengths: answers arrive out of order.
    model = LatencyModel(ttft=0.002, per_token=0.0002)
    with MockOpenAIServer(latency_model=model) as server:
        settings = _settings(server.base_url)
        _generate(tmp_path / "alone", 120, False, **settings)
        stats = _generate(tmp_path / "streamed", 120, True, **settings)
    _assert_same_run(tmp_path / "streamed", tmp_path / "alone")
    assert [stats[name].kept for name in ("bootstrap", "classify", "instances")] == [120] * 3
    # Streamed: labels and instances were stored while bootstrap still had answers coming.
    order = _stage_order(tmp_path / "streamed")
    last_bootstrap = max(i for i, stage in enumerate(order) if stage == "bootstrap")
    assert order.index("classify") < order.index("instances") < last_bootstrap
    alone = _stage_order(tmp_path / "alone")
    assert alone.index("classify") > max(i for i, s in enumerate(alone) if s == "bootstrap")


@pytest.mark.slow  # a local HTTP server
def test_a_streamed_run_through_faults_has_the_records_of_a_clean_run(tmp_path: Path) -> None:
    with MockOpenAIServer(latency=0.002) as clean:
        _generate(tmp_path / "clean", 80, False, **_settings(clean.base_url))
    # 30% of attempts fail (429s, 500s, dropped connections); retries get every answer.
    faults = ("429", "500", "503", "drop", "truncated")
    with MockOpenAIServer(
        latency=0.002, fault_rate=0.3, faults=faults, retry_after=0.01, seed=9
    ) as faulty:
        # 12 attempts: with 30% of attempts failing, a request fails for good once in 2 million
        # (a bootstrap request that fails for good is skipped, which changes the records).
        settings = _settings(faulty.base_url)
        settings["openai"]["max_attempts"] = 12
        _generate(tmp_path / "faulty", 80, True, **settings)
        assert faulty.stats["faults"], faulty.stats
    _assert_same_run(tmp_path / "faulty", tmp_path / "clean")


@pytest.mark.slow  # a local HTTP server
def test_a_budget_stops_the_stream_and_a_larger_one_finishes_it(tmp_path: Path) -> None:
    with MockOpenAIServer(latency=0.002) as server:
        settings = _settings(server.base_url)
        _generate(tmp_path / "reference", 60, False, **settings)
        out = tmp_path / "budget"
        run = Run.create(out, quiet=True, num_instructions=60, **settings)
        with pytest.raises(BudgetExhausted):
            run.with_budget(max_tokens=60_000).generate(stream=True)
        with sqlite3.connect(out / "selfinstruct.db") as db:
            spent = db.execute(
                "SELECT SUM(prompt_tokens + completion_tokens) FROM responses"
            ).fetchone()[0]
        assert 0 < spent <= 60_000
        # The stream stopped short: no stage may pass for done, no dataset is written.
        assert not (out / DATASET).exists()
        run.with_budget(max_tokens=10_000_000).generate(stream=True)
    _assert_same_run(out, tmp_path / "reference")


class Shuffling(LLM):
    """Serves a feed many requests at a time, answers them in a shuffled order, and stops
    the requests the feed abandons (as a server backend does)."""

    concurrency = 12

    def __init__(self, seed: int) -> None:
        super().__init__("fake-1")
        self.fake = FakeLLM()
        self.rng = random.Random(seed)
        self.abandoned = 0
        self.most_in_flight = 0

    def serve(self, feed: Feed) -> None:
        in_flight: dict[int, Request] = {}
        while not feed.finished:
            in_flight.update(feed.take(self.concurrency - len(in_flight)))
            if not in_flight:
                return
            self.most_in_flight = max(self.most_in_flight, len(in_flight))
            ticket = self.rng.choice(sorted(in_flight))
            feed.put(ticket, self.fake.generate([in_flight.pop(ticket)])[0])
            for dropped in feed.abandoned():
                self.abandoned += in_flight.pop(dropped, None) is not None

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self.fake.generate(requests)


@pytest.mark.parametrize("seed", [1, 2])
def test_any_answer_order_gives_the_records_of_a_stage_by_stage_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, seed: int
) -> None:
    settings = {
        "backend": "fake",
        "prepare": {"report_verbs": False},
        "bootstrap": {"batches_in_flight": 4},
    }
    _generate(tmp_path / "alone", 150, False, **settings)
    backend = Shuffling(seed)
    monkeypatch.setattr(RunContext, "llm_for", lambda self, stage: backend)
    _generate(tmp_path / "streamed", 150, True, **settings)
    _assert_same_run(tmp_path / "streamed", tmp_path / "alone")
    assert backend.most_in_flight == backend.concurrency
    # Bootstrap's requests still in flight at its target were dropped, not waited for.
    assert backend.abandoned > 0


@pytest.mark.slow  # a local HTTP server
def test_with_a_judge_on_the_run_s_model_the_judge_streams_too(tmp_path: Path) -> None:
    with MockOpenAIServer(latency=0.002) as server:
        settings = _settings(server.base_url)
        judge = {"judge": {"backend": "openai", "model": "fake"}}
        _generate(tmp_path / "alone", 40, False, **settings, **judge)
        stats = _generate(tmp_path / "streamed", 40, True, **settings, **judge)
    assert stats["judge"].kept > 0
    order = _stage_order(tmp_path / "streamed")
    assert order.index("judge") < max(i for i, s in enumerate(order) if s == "instances")
    _assert_same_run(tmp_path / "streamed", tmp_path / "alone")
    with (
        sqlite3.connect(tmp_path / "streamed/selfinstruct.db") as a,
        sqlite3.connect(tmp_path / "alone/selfinstruct.db") as b,
    ):
        sql = "SELECT * FROM judgments ORDER BY instruction_id, position"
        assert a.execute(sql).fetchall() == b.execute(sql).fetchall() != []


def test_a_local_engine_runs_the_stages_one_after_another(tmp_path: Path) -> None:
    _generate(tmp_path / "run", 30, None, backend="fake")  # type: ignore[arg-type]
    order = _stage_order(tmp_path / "run")
    assert order.index("classify") > max(i for i, s in enumerate(order) if s == "bootstrap")


@pytest.mark.slow  # a 300-instruction run over HTTP, then killed again and again and resumed
def test_a_killed_stream_resumes_to_the_records_of_a_stage_by_stage_run(tmp_path: Path) -> None:
    args = ["--num-instructions", "300", "--concurrency", "16", "--random-seed", "4", "-q"]
    args += ["--set", "prepare.report_verbs=false"]
    model = LatencyModel(ttft=0.005, per_token=0.0003)
    with MockOpenAIServer(latency_model=model, fault_rate=0.1, seed=2) as server:
        reference = tmp_path / "reference"
        settings = _settings(server.base_url, 16, random_seed=4)
        _generate(reference, 300, False, **settings)
        started = time.monotonic()
        proc = start_http_run(tmp_path / "timed", server.base_url, args)
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
        duration = time.monotonic() - started
        rng = random.Random(7)
        for resumed in resumed_after_kills(
            tmp_path,
            lambda out: start_http_run(out, server.base_url, args),
            lambda: 0.6 + rng.uniform(0, duration),
            kills=4,
            most=8,
        ):
            _assert_same_run(resumed, reference)


def test_auto_batches_in_flight_follow_the_slots() -> None:
    settings = BootstrapSettings()

    def k(backend: str, concurrency: int | str = 16) -> int:
        return settings.schedule(
            ModelChoice.of(backend, "m", {"openai": _openai(concurrency)})
            if backend == "openai"
            else ModelChoice.of(backend, "m", {})
        )

    assert k("fake") == 1  # one request at a time: the paper's schedule
    assert k("openai", 16) == 8  # twice the slots in requests, at least 8 batches
    assert k("openai", 64) == 26
    assert k("openai", 400) == 32  # bounded: a prompt's pool stays close to current
    assert k("openai", "auto") == 32
    assert BootstrapSettings(batches_in_flight="paper").schedule(ModelChoice.of("fake", "", {}))


def _openai(concurrency: int | str) -> Any:
    from selfinstruct.llm.backends.openai import OpenAISettings

    return OpenAISettings(max_concurrency=concurrency)


@pytest.mark.slow  # a local HTTP server
def test_run_json_says_how_stale_bootstrap_prompts_were(tmp_path: Path) -> None:
    import json

    with MockOpenAIServer(latency=0.002) as server:
        _generate(tmp_path / "run", 80, True, **_settings(server.base_url))
    found = json.loads((tmp_path / "run/run.json").read_text())["bootstrap_pool_missing"]
    with sqlite3.connect(tmp_path / "run/selfinstruct.db") as db:
        judged = db.execute("SELECT COUNT(*) FROM bootstrap_requests").fetchone()[0]
    assert found["requests"] == judged > 0
    assert 0 <= found["p50"] <= found["p99"] <= found["max"]
    # Prompts composed 8 batches ahead miss what the batches in between accepted.
    assert found["max"] > 0


def _refuse_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    """From here on, loading the parser in this process is an error."""

    def refuse() -> None:
        raise AssertionError("the report loaded the parser")

    monkeypatch.setattr(verbs, "load_pipeline", refuse)


@pytest.mark.slow  # loads the parser in a helper process
def test_the_stream_parses_the_report_s_verbs_while_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with MockOpenAIServer(latency=0.002) as server:
        settings = {**_settings(server.base_url), "prepare": {"report_verbs": True}}
        # A server slow enough for the helper to load its parser before the run ends.
        server.latency = 0.15
        _generate(tmp_path / "alone", 150, False, **settings)  # its report parses at the end
        _refuse_parser(monkeypatch)  # the streamed run's report must find every pair kept
        _generate(tmp_path / "streamed", 150, True, **settings)
    with sqlite3.connect(tmp_path / "streamed/selfinstruct.db") as db:
        parsed = db.execute("SELECT COUNT(*) FROM instruction_parses").fetchone()[0]
    assert parsed == 150
    found, alone = (
        json.loads((tmp_path / name / "report.json").read_text())["diversity"]
        for name in ("streamed", "alone")
    )
    assert found == alone and found["available"], found
    assert not list(tmp_path.glob("*/.selfinstruct-parses-*"))


@pytest.mark.slow  # loads the parser in a helper process
def test_a_run_on_a_local_engine_parses_its_verbs_in_a_helper_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The fake backend answers in-process, one stage after another: the helper parses beside
    # them, and the run's own process never loads the parser (its peak memory stays low).
    settings = {"backend": "fake", "prepare": {"report_verbs": True}}
    _refuse_parser(monkeypatch)
    _generate(tmp_path / "local", 150, False, **settings)
    with sqlite3.connect(tmp_path / "local/selfinstruct.db") as db:
        parsed = db.execute("SELECT COUNT(*) FROM instruction_parses").fetchone()[0]
    assert parsed == 150
    diversity = json.loads((tmp_path / "local/report.json").read_text())["diversity"]
    assert diversity["available"] and diversity["parsed"] == 150, diversity
    assert not list((tmp_path / "local").glob(".selfinstruct-parses-*"))


@pytest.mark.slow  # loads the parser in a helper process, twice
def test_the_parse_helper_cleans_up_when_the_run_is_gone(tmp_path: Path) -> None:
    with MockOpenAIServer(latency=0.002) as server:
        _generate(tmp_path / "run", 20, False, **_settings(server.base_url))
    out = tmp_path / "pairs.jsonl"
    command = [sys.executable, "-m", "selfinstruct.report.parse_worker"]
    command += [str(tmp_path / "run/selfinstruct.db"), str(out)]
    stopped = subprocess.run(command, input="stop\n", text=True, timeout=120)
    assert stopped.returncode == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [item["id"] for item in lines] == list(range(1, 21))
    out.unlink()
    gone = subprocess.run(command, input="", text=True, timeout=120)  # input closed, no stop
    assert gone.returncode == 0 and not out.exists()


@pytest.mark.slow  # starts the parse helper
def test_a_killed_run_s_parse_file_is_removed_by_the_next_helper(tmp_path: Path) -> None:
    _generate(tmp_path / "run", 5, False, backend="fake")
    stale = tmp_path / "run" / f"{parse_ahead.PREFIX}killed.jsonl"
    stale.write_text('{"id": 1, "verb": "write", "noun": "poem"}\n')
    with Run.open(tmp_path / "run")._opened(create=False, generate=False) as ctx:
        ahead = parse_ahead.ParseAhead(ctx.store)
        assert not stale.exists()
        assert ahead.out.parent == tmp_path / "run"
        ahead.close()
    assert not list((tmp_path / "run").glob(f"{parse_ahead.PREFIX}*"))
