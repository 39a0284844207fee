"""Bootstrap's schedule (`bootstrap.batches_in_flight`, k) and the stages' continuous flow:
prompts see the pool as judged k batches earlier, k = 1 is the paper's schedule, a killed run
resumes to the same records, and per-instruction stages commit in record order whatever order
the answers arrive in."""

from __future__ import annotations

import json
import random
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from conftest import (
    assert_same_nonempty,
    cli,
    records_snapshot,
    resumed_after_kills,
    start_http_run,
    store_snapshot,
)

from selfinstruct.llm.backends.fake import FakeLLM
from selfinstruct.llm.base import LLM, Completion, Feed, Request
from selfinstruct.testing.openai_server import MockOpenAIServer

FAKE = ["--backend", "fake", "-q"]


def _batch_rows(out: Path) -> tuple[dict[int, int], dict[int, list[int]]]:
    """Each machine instruction's batch, and each bootstrap request's machine ids shown."""
    with sqlite3.connect(out / "selfinstruct.db") as db:
        batches = dict(db.execute("SELECT id, batch_idx FROM instructions").fetchall())
        shown = {
            idx: json.loads(ids)
            for idx, ids in db.execute("SELECT request_idx, machine_ids FROM prompt_sources")
        }
    return batches, shown


@pytest.mark.parametrize("k", [1, 3, 8])
def test_prompts_show_the_pool_as_judged_k_batches_before(tmp_path: Path, k: int) -> None:
    out = tmp_path / "run"
    cli(
        "bootstrap",
        "--out",
        str(out),
        "--num-instructions",
        "600",
        "--batches-in-flight",
        str(k),
        *FAKE,
    )
    batches, shown = _batch_rows(out)
    size = 5
    latest_seen = []
    for request_idx, ids in shown.items():
        batch = request_idx // size
        assert all(batches[i] <= batch - k for i in ids), (request_idx, ids)
        if ids:
            latest_seen.append(batch - max(batches[i] for i in ids))
    # The bound is reached: some prompt shows an instruction from batch b - k itself.
    assert latest_seen and min(latest_seen) == k


def test_paper_schedule_is_k_1(tmp_path: Path) -> None:
    paper, one = tmp_path / "paper", tmp_path / "one"
    args = ["--num-instructions", "60", *FAKE]
    cli("run", "--out", str(paper), "--batches-in-flight", "paper", *args)
    cli("run", "--out", str(one), "--set", "bootstrap.batches_in_flight=1", *args)
    assert_same_nonempty(store_snapshot(paper), store_snapshot(one))
    config = json.loads((paper / "run.json").read_text())["config"]
    assert config["bootstrap"]["batches_in_flight"] == "paper"


def test_k_is_part_of_the_fingerprint(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli(
        "bootstrap",
        "--out",
        str(out),
        "--num-instructions",
        "30",
        "--batches-in-flight",
        "2",
        *FAKE,
    )
    result = cli(
        "bootstrap",
        "--out",
        str(out),
        "--num-instructions",
        "60",
        "--batches-in-flight",
        "4",
        *FAKE,
        check=False,
    )
    assert result.returncode != 0
    assert "bootstrap.batches_in_flight: 2 -> 4" in result.stderr


def test_bad_batches_in_flight_is_refused(tmp_path: Path) -> None:
    out = tmp_path / "run"
    for value in ("0", "many"):
        result = cli(
            "bootstrap", "--out", str(out), "--batches-in-flight", value, *FAKE, check=False
        )
        assert result.returncode == 2 and "--batches-in-flight" in result.stderr
    result = cli(
        "bootstrap", "--out", str(out), "--set", "bootstrap.batches_in_flight=0", *FAKE, check=False
    )
    assert result.returncode != 0 and "bootstrap.batches_in_flight" in result.stderr
    assert not (out / "selfinstruct.db").exists()


@pytest.mark.slow  # a 400-instruction run over HTTP, then the same run killed and resumed
def test_killed_and_resumed_http_run_with_k_above_1_equals_uninterrupted(tmp_path: Path) -> None:
    args = ["--num-instructions", "400", "--concurrency", "16", "--batches-in-flight", "4"]
    args += ["--random-seed", "3", "-q", "--set", "prepare.report_verbs=false"]
    # Latency plus 10% slow answers: answers arrive out of order, many batches in flight.
    with MockOpenAIServer(latency=0.01, fault_rate=0.1, faults=("slow",), seed=5) as server:
        reference = tmp_path / "reference"
        started = time.monotonic()
        proc = start_http_run(reference, server.base_url, args)
        assert proc.wait(timeout=300) == 0, proc.stderr.read().decode() if proc.stderr else ""
        duration = time.monotonic() - started
        rng = random.Random(11)
        for resumed in resumed_after_kills(
            tmp_path,
            lambda out: start_http_run(out, server.base_url, args),
            lambda: 0.8 + rng.uniform(0, 0.5 * duration),
            kills=2,
            most=5,
        ):
            assert_same_nonempty(records_snapshot(resumed), records_snapshot(reference))


class OutOfOrder(LLM):
    """Serves a feed many requests at a time and answers them in a shuffled order."""

    concurrency = 16

    def __init__(self) -> None:
        super().__init__("fake-1")
        self.fake = FakeLLM()
        self.rng = random.Random(1)
        self.most_in_flight = 0

    def serve(self, feed: Feed) -> None:
        in_flight: list[tuple[int, Request]] = []
        while True:
            in_flight += feed.take(self.concurrency - len(in_flight))
            if not in_flight:
                return
            self.most_in_flight = max(self.most_in_flight, len(in_flight))
            ticket, request = in_flight.pop(self.rng.randrange(len(in_flight)))
            feed.put(ticket, self.fake.generate([request])[0])

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        return self.fake.generate(requests)


def test_stages_commit_in_record_order_whatever_order_answers_arrive(tmp_path: Path) -> None:
    from selfinstruct.api import Run
    from selfinstruct.engine.context import RunContext

    ordered, shuffled = tmp_path / "ordered", tmp_path / "shuffled"
    cli("bootstrap", "--out", str(ordered), "--num-instructions", "80", *FAKE)
    cli("bootstrap", "--out", str(shuffled), "--num-instructions", "80", *FAKE)
    commits: list[int] = []
    backend = OutOfOrder()
    original = RunContext.llm_for

    def llm_for(self: RunContext, stage: str) -> LLM:
        return backend

    RunContext.llm_for = llm_for  # type: ignore[method-assign]
    try:
        from selfinstruct.store.labels import Labels

        put_label = Labels.put

        def recording(self: Labels, instruction_id: int, *rest: object) -> None:
            commits.append(instruction_id)
            put_label(self, instruction_id, *rest)  # type: ignore[arg-type]

        Labels.put = recording  # type: ignore[method-assign]
        try:
            Run.open(shuffled, quiet=True).stage("classify")
        finally:
            Labels.put = put_label  # type: ignore[method-assign]
    finally:
        RunContext.llm_for = original  # type: ignore[method-assign]
    cli("classify", "--out", str(ordered), "-q")
    assert backend.most_in_flight == 16  # no waves: the backend always had 16 to choose from
    assert commits == sorted(commits) and len(commits) == 80
    assert_same_nonempty(store_snapshot(shuffled), store_snapshot(ordered), ["labels"], only=True)
