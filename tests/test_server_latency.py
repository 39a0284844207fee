"""The test server's latency model (ttft + per-token time, heavy-tailed lengths per stage),
its named profiles, its capacity limit (429 beyond K in progress), its service-time accounting
and its per-request timeline."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import httpx
import pytest

from selfinstruct.llm.base import Request
from selfinstruct.testing.latency import (
    ANY_STAGE,
    DEFAULT_LENGTHS,
    HEAVY_LENGTHS,
    LENGTH_PRESETS,
    PROFILES,
    LatencyModel,
    LengthDistribution,
    ServiceLedger,
    TimelineRow,
    parse_lengths,
)
from selfinstruct.testing.openai_server import (
    TASK_STAGES,
    MockOpenAIServer,
    _latency_model,
    _parser,
)

FIXED_50 = {ANY_STAGE: LengthDistribution(50, 0)}
BOOTSTRAP = "Come up with a series of tasks:\n1."
CLASSIFY = "Can the following task be regarded as a classification task?\nIs it classification?"
INSTANCES = "Come up with examples for the following tasks.\nTask: Sort the numbers."


def body(prompt: str | list[str], max_tokens: int = 200, **extra: Any) -> dict[str, Any]:
    return {"model": "fake", "prompt": prompt, "max_tokens": max_tokens, **extra}


# One client for every test (httpx.post builds one, SSL context and all, per call), without
# keep-alive: a new server may get the port of a stopped one, whose connections are dead.
CLIENT = httpx.Client(timeout=10, limits=httpx.Limits(max_keepalive_connections=0))


def post(server: MockOpenAIServer, payload: dict[str, Any]) -> httpx.Response:
    return CLIENT.post(server.base_url + "/completions", json=payload)


def draws(
    stage: str,
    count: int,
    max_tokens: int = 10**6,
    seed: int = 0,
    model: LatencyModel | None = None,
) -> list[int]:
    model = model or LatencyModel()
    return [
        model.tokens(stage, Request(prompt=f"prompt {i}", max_tokens=max_tokens), seed)
        for i in range(count)
    ]


# --- the draws (no sleeping) ------------------------------------------------------------------


def test_a_draw_depends_on_seed_stage_and_request_only() -> None:
    model = LatencyModel()
    request = Request(prompt="Task: one", max_tokens=1024, seed=3)
    first = [model.tokens("instances_generation", request, seed=7) for _ in range(3)]
    assert len(set(first)) == 1
    assert first[0] == LatencyModel().tokens("instances_generation", request, seed=7)
    assert draws("bootstrap", 50, seed=1) != draws("bootstrap", 50, seed=2)
    assert draws("bootstrap", 50) != draws("judge_instance", 50)


@pytest.mark.parametrize("stage", ["bootstrap", "instances_generation", "judge_instance"])
def test_lengths_are_heavy_tailed_around_the_stage_median(stage: str) -> None:
    found = sorted(draws(stage, 4000))
    median, p99 = found[len(found) // 2], found[int(len(found) * 0.99)]
    expected = DEFAULT_LENGTHS[stage]
    assert median == pytest.approx(expected.median, rel=0.08)
    assert p99 / median == pytest.approx(expected.quantile(0.99) / expected.median, rel=0.15)
    assert p99 / median > 2.5
    assert statistics.mean(found) > median  # skewed right


def test_stage_lengths_are_ordered_like_a_real_run() -> None:
    medians = {
        stage: statistics.median(draws(stage, 400, max_tokens=max_tokens))
        for stage, max_tokens in (
            ("bootstrap", 1024),
            ("instances_generation", 350),
            ("judge_instance", 200),
            ("classify", 3),
        )
    }
    assert medians["bootstrap"] > medians["instances_generation"] > medians["judge_instance"]
    assert medians["judge_instance"] > medians["classify"]
    assert 250 <= medians["bootstrap"] <= 450 and 100 <= medians["instances_generation"] <= 300


def test_draws_are_capped_at_max_tokens() -> None:
    found = draws("bootstrap", 500, max_tokens=400)
    assert max(found) == 400 and min(found) >= 1
    assert set(draws("classify", 200, max_tokens=3)) <= {1, 2, 3}


def test_unknown_stage_uses_the_catch_all() -> None:
    model = LatencyModel(lengths=FIXED_50)
    assert model.tokens("bootstrap", Request(prompt="x", max_tokens=99), 0) == 50
    assert model.seconds(50) == pytest.approx(model.ttft + 50 * model.per_token)


def test_length_spec() -> None:
    lengths = parse_lengths("classify=2:0, *=80:1.5")
    assert lengths["classify"] == LengthDistribution(2, 0)
    assert lengths[ANY_STAGE] == LengthDistribution(80, 1.5)
    assert lengths["bootstrap"] == DEFAULT_LENGTHS["bootstrap"]
    assert parse_lengths("") == dict(DEFAULT_LENGTHS)
    for bad in ("classify", "classify=2", "=2:0", "classify=x:1", "classify=0:1", "c=5:-1"):
        with pytest.raises(ValueError):
            parse_lengths(bad)


# --- the heavy-tailed profile (issue 24) ----------------------------------------------------


def quantiles(found: list[int]) -> tuple[int, int]:
    """(p50, p99) of draws, by rank."""
    ordered = sorted(found)
    return ordered[len(ordered) // 2], ordered[int(len(ordered) * 0.99)]


@pytest.mark.parametrize("stage", sorted(HEAVY_LENGTHS))
def test_every_heavy_stage_has_p99_at_least_8_times_its_median(stage: str) -> None:
    dist = HEAVY_LENGTHS[stage]
    assert dist.sigma >= 0.9
    assert dist.quantile(0.99) / dist.quantile(0.5) >= 8  # the distribution itself
    assert dist.quantile(0.5) == pytest.approx(dist.median)
    p50, p99 = quantiles(draws(stage, 5000, model=PROFILES["heavy"]))  # uncapped draws
    assert p99 / p50 >= 8
    assert p50 == pytest.approx(dist.median, rel=0.1, abs=1)


def test_the_heavy_tail_is_cut_at_max_tokens() -> None:
    found = draws("bootstrap", 2000, max_tokens=1024, model=PROFILES["heavy"])
    at_cap = sum(1 for n in found if n == 1024) / len(found)
    assert max(found) == 1024
    assert 0.02 < at_cap < 0.1  # the docstring's 5.1%


def test_the_fixed_profile_has_the_heavy_medians_and_no_spread() -> None:
    fixed, heavy = PROFILES["fixed"], PROFILES["heavy"]
    assert (fixed.ttft, fixed.per_token) == (heavy.ttft, heavy.per_token) == (0.2, 0.005)
    assert set(fixed.lengths) == set(HEAVY_LENGTHS)
    for stage, dist in fixed.lengths.items():
        assert dist == LengthDistribution(HEAVY_LENGTHS[stage].median, 0)
    assert set(draws("instances_generation", 50, model=fixed)) == {100}


def test_the_default_profile_is_what_it_was() -> None:
    assert PROFILES["default"] == LatencyModel()
    assert (LatencyModel().ttft, LatencyModel().per_token) == (0.1, 0.015)
    assert LENGTH_PRESETS["default"] is DEFAULT_LENGTHS


def test_a_length_spec_may_start_with_a_preset() -> None:
    assert parse_lengths("heavy") == dict(HEAVY_LENGTHS)
    over = parse_lengths("heavy, classify=1:0")
    assert over["classify"] == LengthDistribution(1, 0)
    assert over["bootstrap"] == HEAVY_LENGTHS["bootstrap"]
    assert (
        parse_lengths("classify=1:0", base=HEAVY_LENGTHS)["bootstrap"] == HEAVY_LENGTHS["bootstrap"]
    )
    with pytest.raises(ValueError, match="preset"):
        parse_lengths("heavy,nonsense")


def test_profiles_on_the_command_line() -> None:
    heavy = _latency_model(_parser().parse_args(["--profile", "heavy"]))
    assert heavy == LatencyModel(0.2, 0.005, dict(HEAVY_LENGTHS))
    faster = _latency_model(_parser().parse_args(["--profile", "heavy", "--per-token", "0.001"]))
    assert faster is not None and (faster.ttft, faster.per_token) == (0.2, 0.001)
    assert faster.lengths == dict(HEAVY_LENGTHS)
    lengths_only = _latency_model(_parser().parse_args(["--lengths", "heavy"]))
    assert lengths_only == LatencyModel(lengths=dict(HEAVY_LENGTHS))
    fixed = _latency_model(_parser().parse_args(["--profile", "fixed"]))
    assert fixed is not None and fixed.distribution("bootstrap").sigma == 0
    with pytest.raises(SystemExit):
        _parser().parse_args(["--profile", "nonsense"])


def test_command_line_options() -> None:
    assert _latency_model(_parser().parse_args([])) is None
    default = _latency_model(_parser().parse_args(["--latency-model"]))
    assert default == LatencyModel(lengths=dict(DEFAULT_LENGTHS))
    args = ["--ttft", "0.2", "--per-token", "0.01", "--lengths", "classify=1:0", "--capacity", "4"]
    parsed = _parser().parse_args(args)
    model = _latency_model(parsed)
    assert model is not None and (model.ttft, model.per_token) == (0.2, 0.01)
    assert model.lengths["classify"] == LengthDistribution(1, 0)
    assert parsed.capacity == 4


def test_the_ledger_counts_from_many_threads() -> None:
    ledger = ServiceLedger(capacity=1000)

    def work() -> None:
        for _ in range(200):
            assert ledger.admit()
            ledger.served("classify", 1, 0.5, 3)
            ledger.release()

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = ledger.snapshot()
    assert stats["answered_200"] == 1600 and stats["in_progress"] == 0
    timeline = ledger.timeline()
    assert len(timeline) == 1600 and len(ledger.timeline(since=1590)) == 10
    assert {(row.task, row.service_seconds, row.outcome) for row in timeline} == {
        ("classify", 0.5, "ok")
    }
    assert all(row.ended - row.started == pytest.approx(0.5, abs=1e-5) for row in timeline)
    assert stats["service_seconds"] == pytest.approx(800.0)
    assert stats["stages"]["classify"]["tokens"] == 4800
    with pytest.raises(ValueError):
        ServiceLedger(capacity=0)


class VirtualClock:
    """time.monotonic and time.time for the ledger, moved by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    def time(self) -> float:
        return 1_700_000_000.0 + self.now


def test_busy_seconds_are_the_time_with_a_request_in_progress(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from selfinstruct.testing import latency

    clock = VirtualClock()
    monkeypatch.setattr(latency, "time", clock)
    ledger = ServiceLedger()
    assert ledger.admit()  # 0.0: one in progress
    clock.now += 0.2
    assert ledger.admit()  # 0.2: two, overlapping
    clock.now += 0.4
    ledger.release()  # 0.6
    clock.now += 0.2
    ledger.release()  # 0.8: idle from here
    assert ledger.snapshot()["busy_seconds"] == pytest.approx(0.8)
    clock.now += 5.0  # idle time does not count
    assert ledger.admit()
    clock.now += 0.5
    assert ledger.snapshot()["busy_seconds"] == pytest.approx(1.3)  # one still in progress
    ledger.release()
    clock.now += 1.0
    stats = ledger.snapshot()
    assert stats["busy_seconds"] == pytest.approx(1.3)
    assert stats["max_in_progress"] == 2 and stats["in_progress"] == 0
    assert stats["last_finished_at"] == pytest.approx(clock.time() - 1.0)


# --- over HTTP (short real sleeps) ------------------------------------------------------------


@pytest.mark.slow  # a local HTTP server
def test_an_answer_takes_ttft_plus_per_token_time() -> None:
    model = LatencyModel(ttft=0.05, per_token=0.002, lengths=FIXED_50)
    began = time.time()
    with MockOpenAIServer(latency_model=model) as server:
        timings = []
        for max_tokens, tokens in ((200, 50), (10, 10)):
            start = time.monotonic()
            response = post(server, body(BOOTSTRAP, max_tokens=max_tokens))
            elapsed = time.monotonic() - start
            expected = 0.05 + 0.002 * tokens
            assert response.status_code == 200
            assert response.json()["usage"]["completion_tokens"] == tokens
            assert elapsed >= expected  # it waited (load only makes it longer)
            timings.append(expected)
        stats = server.service_stats
        rows = server.timeline()
    # What it waited for: the model's seconds for the tokens it answered, nothing else
    # (busy_seconds, the wall time with a request in progress, is checked on a virtual clock
    # in test_busy_seconds_are_the_time_with_a_request_in_progress).
    assert [row.service_seconds for row in rows] == pytest.approx(timings)
    assert stats["service_seconds"] == pytest.approx(sum(timings))
    assert stats["tokens"] == 60 and stats["answered_200"] == 2
    assert stats["latency_model"]["ttft"] == 0.05
    assert began < stats["last_finished_at"] <= time.time()
    assert stats["busy_seconds"] >= sum(timings)


@pytest.mark.slow  # a local HTTP server
def test_a_list_prompt_takes_as_long_as_its_longest_answer() -> None:
    model = LatencyModel(ttft=0.01, per_token=0.0002)
    prompts = [f"{BOOTSTRAP} {i}" for i in range(4)]
    with MockOpenAIServer(latency_model=model, seed=5) as server:
        response = post(server, body(prompts, max_tokens=1024))
        stats = server.service_stats
    requests = [Request(prompt=p, max_tokens=1024) for p in prompts]
    tokens = [model.tokens("bootstrap", r, 5) for r in requests]
    assert response.json()["usage"]["completion_tokens"] == sum(tokens)
    assert stats["service_seconds"] == pytest.approx(model.seconds(max(tokens)))
    assert stats["stages"]["bootstrap"] == {
        "requests": 1,
        "prompts": 4,
        "service_seconds": pytest.approx(model.seconds(max(tokens))),
        "tokens": sum(tokens),
    }


@pytest.mark.slow  # a local HTTP server
def test_the_same_requests_take_the_same_time_on_a_new_server() -> None:
    model = LatencyModel(ttft=0.0, per_token=0.0001)
    payloads = [body(f"{INSTANCES} {i}", max_tokens=350) for i in range(6)]

    def run(seed: int, order: list[int]) -> tuple[list[int], float]:
        with MockOpenAIServer(latency_model=model, seed=seed) as server:
            usage = {i: post(server, payloads[i]).json()["usage"] for i in order}
            seconds = server.service_stats["service_seconds"]
        return [usage[i]["completion_tokens"] for i in range(6)], seconds

    first = run(3, [0, 1, 2, 3, 4, 5])
    assert first == run(3, [5, 3, 1, 0, 4, 2])  # arrival order does not matter
    assert first[0] != run(4, [0, 1, 2, 3, 4, 5])[0]


@pytest.mark.slow  # a local HTTP server
def test_the_text_is_the_same_with_or_without_the_model() -> None:
    with MockOpenAIServer() as plain:
        without = post(plain, body(INSTANCES)).json()
    with MockOpenAIServer(latency_model=LatencyModel(ttft=0, per_token=0)) as modelled:
        with_model = post(modelled, body(INSTANCES)).json()
    assert with_model["choices"] == without["choices"]


@pytest.mark.slow  # a local HTTP server
def test_capacity_refuses_beyond_k_with_retry_after() -> None:
    slow = LatencyModel(ttft=0.6, per_token=0.0)
    with MockOpenAIServer(latency_model=slow, capacity=2, retry_after=1.0) as server:
        with ThreadPoolExecutor(max_workers=5) as pool:
            payloads = [body(f"{CLASSIFY} {i}", max_tokens=3) for i in range(5)]
            responses = list(pool.map(lambda p: post(server, p), payloads))
        stats, service = server.stats, server.service_stats
        after = post(server, body(CLASSIFY, max_tokens=3))  # room again
    refused = [r for r in responses if r.status_code == 429]
    assert sorted(r.status_code for r in responses) == [200, 200, 429, 429, 429]
    for response in refused:
        assert response.headers["Retry-After"] == "1"
        assert response.json()["error"]["type"] == "rate_limit_error"
    assert after.status_code == 200
    assert stats["status"] == {200: 2, 429: 3}
    assert service["answered_200"] == 2 and service["answered_429"] == 3
    assert service["over_capacity"] == 3
    assert service["max_in_progress"] == 2 and service["in_progress"] == 0
    assert service["service_seconds"] == pytest.approx(2 * slow.seconds(1))
    assert service["busy_seconds"] >= slow.seconds(1)


@pytest.mark.slow  # a local HTTP server
def test_stats_per_stage_add_up_and_are_served_over_http() -> None:
    model = LatencyModel(ttft=0.001, per_token=0.0001)
    with MockOpenAIServer(latency_model=model, latency=0.01) as server:
        for prompt, count in ((BOOTSTRAP, 1), (CLASSIFY, 3), (INSTANCES, 2)):
            for i in range(count):
                assert post(server, body(f"{prompt} {i}", max_tokens=350)).status_code == 200
        over_http = CLIENT.get(server.base_url.removesuffix("/v1") + "/stats").json()
        service = server.service_stats
    stages = service["stages"]
    assert {k: v["requests"] for k, v in stages.items()} == {
        "bootstrap": 1,
        "classify": 3,
        "instances_generation": 2,
    }
    assert sum(s["service_seconds"] for s in stages.values()) == pytest.approx(
        service["service_seconds"]
    )
    assert sum(s["tokens"] for s in stages.values()) == service["tokens"]
    assert all(s["tokens"] <= 3 * 350 for s in stages.values())
    assert stages["classify"]["service_seconds"] >= 3 * 0.01  # the fixed latency counts too
    assert over_http["service"]["stages"] == stages
    assert over_http["prompts_ok"] == 6


@pytest.mark.slow  # a local HTTP server
def test_without_a_model_usage_and_stages_come_from_the_answers() -> None:
    with MockOpenAIServer() as server:
        usage = post(server, body(CLASSIFY, max_tokens=3)).json()["usage"]
        service = server.service_stats
    assert service["latency_model"] is None and service["capacity"] is None
    assert service["stages"]["classify"]["tokens"] == usage["completion_tokens"]
    assert service["service_seconds"] == 0.0


# --- the timeline ------------------------------------------------------------------------------


def test_the_ledger_keeps_a_row_per_request_with_its_stage_and_times() -> None:
    ledger = ServiceLedger()
    before = time.time()
    ledger.served("bootstrap", 5, 2.0, 900, started=before - 2.5)
    ledger.cancelled("instances_generation", 0.25, started=before - 0.3)
    ledger.served("classify", 1, 0.2, 2)  # no start given: `seconds` before its end
    bootstrap, instances, classify = ledger.timeline()
    assert bootstrap.task == "bootstrap" and bootstrap.outcome == "ok"
    assert bootstrap.started == pytest.approx(before - 2.5, abs=1e-5)
    assert before <= bootstrap.ended <= time.time()
    assert bootstrap.service_seconds == 2.0
    assert (instances.task, instances.outcome, instances.service_seconds) == (
        "instances_generation",
        "cancelled",
        0.25,
    )
    assert classify.ended - classify.started == pytest.approx(0.2, abs=1e-5)
    assert ledger.timeline(since=3) == []


def timeline_over_http(server: MockOpenAIServer, since: int = 0) -> dict[str, Any]:
    url = server.base_url.removesuffix("/v1") + f"/timeline?since={since}"
    return dict(CLIENT.get(url).json())


@pytest.mark.slow  # a local HTTP server
def test_the_timeline_records_each_request_with_its_task_over_http() -> None:
    model = LatencyModel(ttft=0.02, per_token=0.0005, lengths=HEAVY_LENGTHS)
    sent = [(BOOTSTRAP, "bootstrap"), (CLASSIFY, "classify"), (CLASSIFY, "classify")]
    sent += [(INSTANCES, "instances_generation")]
    with MockOpenAIServer(latency_model=model, latency=0.01) as server:
        began = time.time()
        for i, (prompt, _) in enumerate(sent):
            response = post(server, body(f"{prompt} {i}", max_tokens=350))
            assert response.status_code == 200
        ended = time.time()
        whole = timeline_over_http(server)
        rest = timeline_over_http(server, since=3)
        stats = server.service_stats
        bad = CLIENT.get(server.base_url.removesuffix("/v1") + "/timeline?since=x")
    assert whole["fields"] == ["started", "ended", "task", "service_seconds", "outcome"]
    rows = [TimelineRow(*row) for row in whole["rows"]]
    assert [row.task for row in rows] == [task for _, task in sent]  # one at a time, in order
    assert all(row.outcome == "ok" for row in rows)
    assert all(began <= row.started <= row.ended <= ended for row in rows)
    assert all(row.ended - row.started >= row.service_seconds - 1e-3 for row in rows)
    for earlier, later in pairwise(rows):
        assert earlier.ended <= later.started  # sequential requests do not overlap
    assert sum(row.service_seconds for row in rows) == pytest.approx(stats["service_seconds"])
    classify = [row.service_seconds for row in rows if row.task == "classify"]
    assert sum(classify) == pytest.approx(stats["stages"]["classify"]["service_seconds"])
    assert whole["next"] == 4 and rest["next"] == 4
    assert [TimelineRow(*row) for row in rest["rows"]] == rows[3:]
    assert whole["stages"] == {
        "bootstrap": "bootstrap",
        "classify": "classify",
        "instances_generation": "instances",
    }
    assert bad.status_code == 400


def test_every_task_of_a_run_belongs_to_its_stage() -> None:
    assert TASK_STAGES["bootstrap_classification"] == "bootstrap"
    assert TASK_STAGES["instances_classification"] == "instances"
    assert TASK_STAGES["classify"] == "classify"
    assert set(TASK_STAGES.values()) >= {"bootstrap", "classify", "instances", "judge"}


@pytest.mark.slow  # a local HTTP server
def test_a_request_its_client_gave_up_on_is_on_the_timeline_as_cancelled() -> None:
    slow = LatencyModel(ttft=3.0, per_token=0.0)
    with MockOpenAIServer(latency_model=slow) as server:
        impatient = httpx.Client(timeout=0.3, limits=httpx.Limits(max_keepalive_connections=0))
        with impatient, pytest.raises(httpx.TimeoutException):
            impatient.post(server.base_url + "/completions", json=body(BOOTSTRAP))
        deadline = time.monotonic() + 10
        while server.service_stats["in_progress"] and time.monotonic() < deadline:
            time.sleep(0.02)
        (row,) = server.timeline()
        service = server.service_stats
    # Stopped before the answer was ready: cancelled, never answered.
    assert (row.task, row.outcome) == ("bootstrap", "cancelled")
    assert service["cancelled"] == 1 and service["answered_200"] == 0
    assert row.service_seconds >= 0.3  # the time until the client gave up was spent
