"""The test server's latency model (ttft + per-token time, heavy-tailed lengths per stage),
its capacity limit (429 beyond K in progress) and its service-time accounting."""

from __future__ import annotations

import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from selfinstruct.llm.base import Request
from selfinstruct.testing.latency import (
    ANY_STAGE,
    DEFAULT_LENGTHS,
    LatencyModel,
    LengthDistribution,
    ServiceLedger,
    parse_lengths,
)
from selfinstruct.testing.openai_server import MockOpenAIServer, _latency_model, _parser

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


def draws(stage: str, count: int, max_tokens: int = 10**6, seed: int = 0) -> list[int]:
    model = LatencyModel()
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
    assert stats["service_seconds"] == pytest.approx(800.0)
    assert stats["stages"]["classify"]["tokens"] == 4800
    with pytest.raises(ValueError):
        ServiceLedger(capacity=0)


# --- over HTTP (short real sleeps) ------------------------------------------------------------


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
            assert expected <= elapsed < expected + 0.5
            timings.append(expected)
        stats = server.service_stats
    assert stats["service_seconds"] == pytest.approx(sum(timings))
    assert stats["tokens"] == 60 and stats["answered_200"] == 2
    assert stats["latency_model"]["ttft"] == 0.05
    assert began < stats["last_finished_at"] <= time.time()
    assert sum(timings) <= stats["busy_seconds"] < sum(timings) + 0.5


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


def test_the_text_is_the_same_with_or_without_the_model() -> None:
    with MockOpenAIServer() as plain:
        without = post(plain, body(INSTANCES)).json()
    with MockOpenAIServer(latency_model=LatencyModel(ttft=0, per_token=0)) as modelled:
        with_model = post(modelled, body(INSTANCES)).json()
    assert with_model["choices"] == without["choices"]


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
    assert slow.seconds(1) <= service["busy_seconds"] < service["service_seconds"]


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


def test_without_a_model_usage_and_stages_come_from_the_answers() -> None:
    with MockOpenAIServer() as server:
        usage = post(server, body(CLASSIFY, max_tokens=3)).json()["usage"]
        service = server.service_stats
    assert service["latency_model"] is None and service["capacity"] is None
    assert service["stages"]["classify"]["tokens"] == usage["completion_tokens"]
    assert service["service_seconds"] == 0.0
