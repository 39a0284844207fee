"""The local OpenAI-compatible mock server: shapes, auth, models, faults, latency, stats."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from conftest import interruptible
from scripted import Crowd

from selfinstruct.testing.openai_server import MockOpenAIServer, format_seconds

COMPLETION = {"model": "fake", "prompt": "List three tasks:\n1.", "max_tokens": 64}
CHAT = {
    "model": "fake",
    "messages": [{"role": "user", "content": "Write a task."}],
    "max_tokens": 64,
}


@pytest.fixture(scope="module")
def server() -> Iterator[MockOpenAIServer]:
    with MockOpenAIServer() as running:
        yield running


@pytest.fixture
def client(server: MockOpenAIServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, timeout=5) as http:
        yield http


def post(
    server: MockOpenAIServer, path: str, body: dict[str, Any], **kwargs: Any
) -> httpx.Response:
    """One request on a fresh connection."""
    timeout = kwargs.pop("timeout", 5)
    return httpx.post(server.base_url + path, json=body, timeout=timeout, **kwargs)


def faulty(kind: str, **kwargs: Any) -> MockOpenAIServer:
    return MockOpenAIServer(fault_rate=1.0, faults=(kind,), **kwargs)


# --- shapes -----------------------------------------------------------------------------------


@pytest.mark.slow  # a local HTTP server
def test_completion_with_a_string_prompt(client: httpx.Client) -> None:
    response = client.post("/completions", json=COMPLETION)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "text_completion"
    assert body["id"].startswith("cmpl-")
    assert body["model"] == "fake"
    assert isinstance(body["created"], int)
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert isinstance(choice["text"], str) and choice["text"]
    assert choice["finish_reason"] in ("stop", "length")
    assert choice["logprobs"] is None
    usage = body["usage"]
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]


@pytest.mark.slow  # a local HTTP server
def test_completion_with_a_list_prompt(client: httpx.Client) -> None:
    prompts = ["Task one:", "Task two is longer:", "Three"]
    single = [client.post("/completions", json={**COMPLETION, "prompt": p}).json() for p in prompts]
    body = client.post("/completions", json={**COMPLETION, "prompt": prompts}).json()
    assert [c["index"] for c in body["choices"]] == [0, 1, 2]
    assert [c["text"] for c in body["choices"]] == [s["choices"][0]["text"] for s in single]
    for field in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert body["usage"][field] == sum(s["usage"][field] for s in single)


@pytest.mark.slow  # a local HTTP server
def test_chat_completion(client: httpx.Client) -> None:
    response = client.post("/chat/completions", json=CHAT)
    assert response.status_code == 200
    body = response.json()
    assert body["object"] == "chat.completion"
    assert body["id"].startswith("chatcmpl-")
    [choice] = body["choices"]
    assert choice["index"] == 0
    assert choice["message"]["role"] == "assistant"
    assert isinstance(choice["message"]["content"], str) and choice["message"]["content"]
    assert choice["finish_reason"] in ("stop", "length")
    assert body["usage"]["total_tokens"] > 0


@pytest.mark.slow  # a local HTTP server
def test_stop_sequences_are_honoured(client: httpx.Client) -> None:
    plain = client.post("/completions", json=COMPLETION).json()["choices"][0]["text"]
    assert "e" in plain
    for stop in ("e", ["never-appears", "e"], ["\n", "e"]):
        body = client.post("/completions", json={**COMPLETION, "stop": stop}).json()
        text = body["choices"][0]["text"]
        for sequence in [stop] if isinstance(stop, str) else stop:
            assert sequence not in text
        assert body["choices"][0]["finish_reason"] == "stop"
        assert body["usage"]["completion_tokens"] < 64


@pytest.mark.slow  # a local HTTP server
def test_max_tokens_cuts_the_answer(client: httpx.Client) -> None:
    body = client.post("/completions", json={**COMPLETION, "max_tokens": 2}).json()
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] == 2


@pytest.mark.slow  # a local HTTP server
def test_identical_requests_get_identical_answers(server: MockOpenAIServer) -> None:
    for path, body in (("/completions", COMPLETION), ("/chat/completions", CHAT)):
        first, second = post(server, path, body).json(), post(server, path, body).json()
        assert first["choices"] == second["choices"]
        assert first["usage"] == second["usage"]
        assert first["id"] != second["id"]


@pytest.mark.slow  # a local HTTP server
def test_models_endpoint() -> None:
    with MockOpenAIServer(models=["m1", "m2"]) as server:
        body = httpx.get(server.base_url + "/models").json()
    assert body["object"] == "list"
    assert [m["id"] for m in body["data"]] == ["m1", "m2"]
    assert all(m["object"] == "model" for m in body["data"])


@pytest.mark.slow  # a local HTTP server
def test_keep_alive_on_one_connection(server: MockOpenAIServer) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        for path, body in (
            ("/v1/completions", b"{bad"),
            ("/v1/nope", b""),
            ("/v1/completions", json.dumps(COMPLETION).encode()),
        ):
            connection.request(
                "POST", path, body=body, headers={"Content-Type": "application/json"}
            )
            response = connection.getresponse()
            payload = response.read()
            assert len(payload) == int(response.getheader("Content-Length"))
            assert not response.will_close
        assert response.status == 200
    finally:
        connection.close()


# --- errors -----------------------------------------------------------------------------------


@pytest.mark.slow  # a local HTTP server
def test_api_key_is_required_and_checked() -> None:
    with MockOpenAIServer(api_key="sk-right") as server:
        missing = post(server, "/completions", COMPLETION)
        wrong = post(
            server, "/completions", COMPLETION, headers={"Authorization": "Bearer sk-wrong"}
        )
        bare = post(server, "/completions", COMPLETION, headers={"Authorization": "sk-right"})
        models = httpx.get(server.base_url + "/models")
        right = post(
            server, "/completions", COMPLETION, headers={"Authorization": "Bearer sk-right"}
        )
        stats = server.stats
    for response in (missing, wrong, bare, models):
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "invalid_api_key" and error["type"] == "invalid_request_error"
        assert "sk-" not in response.text
    assert right.status_code == 200
    assert "sk-right" not in json.dumps(stats) and "sk-wrong" not in json.dumps(stats)


@pytest.mark.slow  # a local HTTP server
def test_unknown_model_is_404() -> None:
    with MockOpenAIServer(models=["m1"]) as server:
        response = post(server, "/completions", {**COMPLETION, "model": "x"})
        chat = post(server, "/chat/completions", {**CHAT, "model": "x"})
        known = post(server, "/completions", {**COMPLETION, "model": "m1"})
    assert response.status_code == 404 and chat.status_code == 404
    assert response.json()["error"] == {
        "message": "The model 'x' does not exist",
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert known.status_code == 200


@pytest.mark.slow  # a local HTTP server
def test_malformed_json_is_400(client: httpx.Client) -> None:
    response = client.post(
        "/completions", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert "message" in response.json()["error"]


@pytest.mark.parametrize(
    "body",
    [
        {"prompt": "x"},
        {**COMPLETION, "n": 2},
        {**COMPLETION, "prompt": []},
        {**COMPLETION, "max_tokens": "many"},
        {**COMPLETION, "stop": 3},
    ],
)
@pytest.mark.slow  # a local HTTP server
def test_invalid_fields_are_400(client: httpx.Client, body: dict[str, Any]) -> None:
    response = client.post("/completions", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.slow  # a local HTTP server
def test_unknown_path_is_404(client: httpx.Client) -> None:
    response = client.post("/engines/davinci/completions", json=COMPLETION)
    assert response.status_code == 404
    assert "error" in response.json()


# --- faults -----------------------------------------------------------------------------------


@pytest.mark.slow  # a local HTTP server
def test_fault_429_has_retry_after() -> None:
    with faulty("429", retry_after=0.2) as server:
        response = post(server, "/completions", COMPLETION)
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "0.2"
    assert response.json()["error"]["code"] == "rate_limit_exceeded"


def test_retry_after_formatting() -> None:
    assert format_seconds(1.0) == "1"
    assert format_seconds(0.2) == "0.2"
    assert format_seconds(2.5) == "2.5"


@pytest.mark.parametrize("kind", ["500", "503"])
@pytest.mark.slow  # a local HTTP server
def test_fault_server_errors(kind: str) -> None:
    with faulty(kind) as server:
        response = post(server, "/chat/completions", CHAT)
    assert response.status_code == int(kind)
    assert response.json()["error"]["type"] == "server_error"


@pytest.mark.slow  # a local HTTP server
def test_fault_drop_closes_without_a_response() -> None:
    with faulty("drop") as server:
        with pytest.raises(httpx.TransportError):
            post(server, "/completions", COMPLETION)
        assert server.stats["faults"] == {"drop": 1}


@pytest.mark.slow  # a local HTTP server
def test_fault_truncated_body_is_not_json() -> None:
    with faulty("truncated") as server:
        response = post(server, "/completions", COMPLETION)
    assert response.status_code == 200
    assert len(response.content) == int(response.headers["Content-Length"]) > 0
    with pytest.raises(json.JSONDecodeError):
        response.json()


@pytest.mark.slow  # a local HTTP server
def test_fault_slow_exceeds_a_short_timeout_then_answers() -> None:
    with faulty("slow", slow_seconds=0.6) as server:
        with pytest.raises(httpx.TimeoutException):
            post(server, "/completions", COMPLETION, timeout=0.2)
        start = time.monotonic()
        response = post(server, "/completions", COMPLETION, timeout=5)
        assert time.monotonic() - start >= 0.6
    assert response.status_code == 200
    assert response.json()["choices"][0]["text"]


@pytest.mark.slow  # a local HTTP server
def test_faults_come_after_auth_and_model_checks() -> None:
    with faulty("500", api_key="k", models=["m1"]) as server:
        unauthorized = post(server, "/completions", {**COMPLETION, "model": "m1"})
        unknown = post(
            server,
            "/completions",
            {**COMPLETION, "model": "x"},
            headers={"Authorization": "Bearer k"},
        )
        assert server.stats["faults"] == {}
    assert (unauthorized.status_code, unknown.status_code) == (401, 404)


@pytest.mark.slow  # a local HTTP server
def test_fault_sequence_is_reproducible_with_a_seed() -> None:
    def statuses(seed: int) -> list[int]:
        server = MockOpenAIServer(fault_rate=0.5, faults=("500", "503"), seed=seed)
        with server, httpx.Client(base_url=server.base_url, timeout=5) as http:
            return [http.post("/completions", json=COMPLETION).status_code for _ in range(24)]

    first = statuses(7)
    assert first == statuses(7)
    assert {200, 500, 503} <= set(first)
    assert first != statuses(8)


def test_unknown_fault_kind_is_refused() -> None:
    with pytest.raises(ValueError):
        MockOpenAIServer(faults=("teapot",))
    with pytest.raises(ValueError):
        MockOpenAIServer(fault_rate=1.5)


# --- latency and concurrency ------------------------------------------------------------------


@pytest.mark.slow  # a local HTTP server
def test_latency_is_respected() -> None:
    with MockOpenAIServer(latency=0.3) as server:
        start = time.monotonic()
        response = post(server, "/completions", COMPLETION)
        elapsed = time.monotonic() - start
    assert response.status_code == 200
    assert elapsed >= 0.3


@pytest.mark.slow  # a local HTTP server
def test_concurrent_requests_run_in_parallel() -> None:
    # The model holds every request until all 64 are in progress together: a server that
    # answered them one (or a few) at a time would answer none.
    count = 64
    crowd = Crowd(size=count, total=count)
    limits = httpx.Limits(max_connections=count, max_keepalive_connections=count)
    with (
        MockOpenAIServer(llm=crowd) as server,
        httpx.Client(base_url=server.base_url, timeout=120, limits=limits) as http,
    ):

        def one(i: int) -> int:
            body = {**COMPLETION, "prompt": f"Prompt number {i}"}
            return http.post("/completions", json=body).status_code

        with ThreadPoolExecutor(max_workers=count) as pool:
            codes = list(pool.map(one, range(count)))
        stats, service = server.stats, server.service_stats
    assert codes == [200] * count
    assert crowd.groups == [count]
    assert service["max_in_progress"] == count
    assert stats["prompts_ok"] == count


# --- stats, lifecycle, command line -----------------------------------------------------------


@pytest.mark.slow  # a local HTTP server
def test_stats_counters() -> None:
    with MockOpenAIServer() as server:
        with httpx.Client(base_url=server.base_url, timeout=5) as http:
            http.post("/completions", json={**COMPLETION, "prompt": ["a", "b", "c"]})
            http.post("/chat/completions", json=CHAT)
            http.get("/models")
            http.post("/completions", content=b"nope")
            http.get("/nowhere")
        assert server.stats == {
            "requests": 5,
            "status": {200: 3, 400: 1, 404: 1},
            "faults": {},
            "prompts_ok": 4,
        }
    with faulty("503") as server:
        for _ in range(3):
            post(server, "/completions", COMPLETION)
        stats = server.stats
    assert stats["faults"] == {"503": 3}
    assert stats["status"] == {503: 3}
    assert stats["prompts_ok"] == 0


@pytest.mark.slow  # a local HTTP server
def test_start_stop_and_context_manager() -> None:
    server = MockOpenAIServer().start()
    try:
        url = server.base_url
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        assert httpx.get(url + "/models").status_code == 200
    finally:
        server.stop()
    server.stop()  # idempotent
    with pytest.raises(httpx.TransportError):
        httpx.get(url + "/models", timeout=1)
    with pytest.raises(RuntimeError):
        _ = server.base_url


@pytest.mark.slow  # a local HTTP server
def test_stop_does_not_wait_for_a_slow_answer() -> None:
    """stop() cuts a request held in a slow answer: its client sees the connection close,
    not an answer (which a stop that waited would let out, 30 s later) nor its own timeout."""
    server = faulty("slow", slow_seconds=30).start()
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(post, server, "/completions", COMPLETION, timeout=120)
        while not server.stats["faults"] and not pending.done():  # the request is held
            time.sleep(0.01)
        server.stop()
        with pytest.raises(httpx.TransportError) as cut:
            pending.result()
    assert not isinstance(cut.value, httpx.TimeoutException), cut.value
    assert server.stats["faults"] == {"slow": 1}


@pytest.mark.slow  # a process of its own
def test_command_line_serves_until_interrupted() -> None:
    env = {**os.environ, "MOCK_KEY": "sk-env"}
    command = [
        sys.executable,
        "-m",
        "selfinstruct.testing.openai_server",
        "--port",
        "0",
        "--api-key-env",
        "MOCK_KEY",
        "--models",
        "m1,m2",
        "--faults",
        "429,500",
        "--fault-rate",
        "0",
        "--retry-after",
        "0.5",
    ]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    try:
        assert process.stdout is not None
        base_url = process.stdout.readline().strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        headers = {"Authorization": "Bearer sk-env"}
        response = httpx.post(
            base_url + "/completions",
            json={**COMPLETION, "model": "m2"},
            headers=headers,
            timeout=5,
        )
        assert response.status_code == 200
        assert httpx.get(base_url + "/models", timeout=5).status_code == 401
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=10)
    assert process.returncode == 0
    assert json.loads(stderr.strip().splitlines()[-1])["prompts_ok"] == 1
    assert "sk-env" not in stderr
