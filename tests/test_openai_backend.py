"""The `--backend openai` client against a real local OpenAI-compatible server.

Pipeline runs go through the real entry point (`python -m selfinstruct`) against
`MockOpenAIServer` (fault injection: 429 + Retry-After, 500, 503, dropped connections,
truncated bodies, slow answers). Retry, concurrency and rate-limit timing is checked on
`OpenAIBackend` and `RateLimiter` directly.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import re
import secrets
import socket
import sqlite3
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from conftest import assert_same_nonempty, cli, read_jsonl, store_snapshot
from scripted import Crowd

from selfinstruct.errors import BackendError
from selfinstruct.exporters import written
from selfinstruct.llm import rate_limit
from selfinstruct.llm.backends.fake import FakeLLM
from selfinstruct.llm.backends.openai import OpenAIBackend, OpenAISettings
from selfinstruct.llm.base import Completion, Failure, Request, Result
from selfinstruct.llm.concurrency import Gate
from selfinstruct.llm.rate_limit import RateLimiter
from selfinstruct.testing.openai_server import FAULT_KINDS, MockOpenAIServer, completion_reply

KEY_ENV = "SELFINSTRUCT_TEST_OPENAI_KEY"
SLOTS = int(OpenAISettings().max_concurrency)  # the CLI's requests in flight by default
STAGES = ("bootstrap", "classify", "instances", "prepare")
SETTINGS_TOML = """\
[openai]
timeout = 1.0
backoff_base = 0.02
backoff_max = 0.3
max_attempts = 8
"""


@pytest.fixture(autouse=True)
def _no_real_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Never send a real key from the developer's environment to the local servers."""
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv(KEY_ENV, raising=False)


@pytest.fixture(scope="module")
def settings_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("config") / "fast_retries.toml"
    path.write_text(SETTINGS_TOML, encoding="utf-8")
    return path


def openai_cli(
    command: str,
    out: Path,
    base_url: str,
    settings: Path,
    *args: str,
    model: str = "m1",
    check: bool = True,
    timeout: float = 300,
) -> subprocess.CompletedProcess:
    """`selfinstruct COMMAND --out OUT` on the openai backend with fast retry settings."""
    return cli(
        command,
        "--out",
        str(out),
        "--config",
        str(settings),
        "--backend",
        "openai",
        "--base-url",
        base_url,
        "--model",
        model,
        *args,
        check=check,
        timeout=timeout,
    )


def summary_lines(stderr: str) -> dict[str, str]:
    """The end-of-stage summary lines, by stage ("bootstrap", ..., "total")."""
    lines = {}
    for line in stderr.splitlines():
        match = re.match(r"\[(\w+)\] ", line)
        if match:
            lines[match.group(1)] = line
    return lines


def tokens(line: str) -> tuple[int, int]:
    match = re.search(r"tokens (\d+) in / (\d+) out", line)
    assert match, line
    return int(match.group(1)), int(match.group(2))


def error_line(result: subprocess.CompletedProcess) -> str:
    """The single line a failed quiet command prints: "error: ..." and no traceback."""
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: "), result.stderr
    return lines[0]


def table_count(run_dir: Path, table: str) -> int:
    with sqlite3.connect(run_dir / "selfinstruct.db") as db:
        return db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- pipeline runs without faults ---------------------------------------------------------


@pytest.mark.parametrize("style", ["completion", "chat"])
@pytest.mark.slow  # a local HTTP server
def test_fault_free_run_then_rerun_from_the_request_cache(
    style: str, tmp_path: Path, settings_file: Path
) -> None:
    out = tmp_path / style
    with MockOpenAIServer() as server:
        first = openai_cli(
            "run",
            out,
            server.base_url,
            settings_file,
            "--num-instructions",
            "60",
            "--prompt-style",
            style,
        )
        served = server.stats

        assert set(served["status"]) == {200}
        lines = summary_lines(first.stderr)
        assert set(lines) >= {*STAGES, "total"}
        for stage in ("bootstrap", "classify", "instances"):
            assert tokens(lines[stage])[0] > 0 and tokens(lines[stage])[1] > 0, lines[stage]
            assert "failed requests" not in lines[stage]
        assert "exports/alpaca.json" in first.stdout

        instructions = read_jsonl(out / "machine_generated_instructions.jsonl")
        labels = read_jsonl(out / f"is_clf_or_not_m1_{style}.jsonl")
        instances = read_jsonl(out / "machine_generated_instances.jsonl")
        assert (len(instructions), len(labels), len(instances)) == (60, 60, 60)
        assert len({r["instruction"] for r in instructions}) == 60
        for record in instructions:
            prompt = record["metadata"]["prompt"]
            if style == "chat":
                assert [role for role, _ in prompt][-1] == "user"
            else:
                assert isinstance(prompt, str) and prompt.endswith("\n9.")
            assert record["metadata"]["response"]["text"]
        assert [r["instruction"] for r in labels] == [r["instruction"] for r in instructions]
        assert {r["is_classification"].strip().rstrip(".") for r in labels} == {"Yes", "No"}
        assert [r["instruction"] for r in instances] == [r["instruction"] for r in instructions]
        assert all(r["raw_instances"] for r in instances)

        info = json.loads((out / "run.json").read_text(encoding="utf-8"))
        assert info["format"] == "selfinstruct-run"
        assert info["model"] == {"backend": "openai", "model": "m1", "base_url": server.base_url}
        assert info["counts"] == {"instructions": 60, "labels": 60, "instances": 60}
        assert info["config"]["prompt_style"] == style
        assert info["config"]["openai"]["base_url"] == server.base_url
        assert info["config"]["openai"]["timeout"] == 1.0
        assert info["config"]["openai"]["max_attempts"] == 8

        # Every answer the server gave was stored exactly once, and nothing else, except the
        # bootstrap requests still in flight when the target was reached (cancelled: at
        # most the 16 slots).
        snapshot = store_snapshot(out)
        assert served["prompts_ok"] == served["requests"]
        assert 0 <= served["requests"] - len(snapshot["responses"]) <= 16
        alpaca = json.loads((out / "exports/alpaca.json").read_text(encoding="utf-8"))
        assert alpaca == read_jsonl(out / "finetuning_data/all_generated_instances.jsonl")
        assert alpaca and all(set(r) == {"instruction", "input", "output"} for r in alpaca)
        assert read_jsonl(out / "exports/openai_chat.jsonl")
        assert read_jsonl(out / "exports/prompt_completion.jsonl")

        # A rerun has nothing to do: no request at all reaches the server.
        rerun = openai_cli(
            "run",
            out,
            server.base_url,
            settings_file,
            "--num-instructions",
            "60",
            "--prompt-style",
            style,
        )
        lines = summary_lines(rerun.stderr)
        assert set(lines) == {"prepare", "run"}, lines  # said when no stage had anything to do
        assert lines["run"].startswith("[run] already complete: 60 instructions"), lines["run"]
        assert "requests 0 " in lines["prepare"], lines["prepare"]
        assert server.stats["requests"] == served["requests"]
        assert_same_nonempty(store_snapshot(out), snapshot)

        # Lose every label and instance record (kept: the stored answers): the rerun
        # rebuilds them all from the request cache, still without asking the server.
        with sqlite3.connect(out / "selfinstruct.db") as db:
            db.execute("DELETE FROM labels")
            db.execute("DELETE FROM instances")
        rebuilt = openai_cli(
            "run",
            out,
            server.base_url,
            settings_file,
            "--num-instructions",
            "60",
            "--prompt-style",
            style,
        )
        lines = summary_lines(rebuilt.stderr)
        assert "requests 0 (+60 from cache)" in lines["classify"], lines["classify"]
        assert "requests 0 (+60 from cache)" in lines["instances"], lines["instances"]
        assert server.stats["requests"] == served["requests"]
        assert_same_nonempty(store_snapshot(out), snapshot)


# --- transient faults -----------------------------------------------------------------------


@pytest.mark.slow  # 150 instructions through injected faults, timeouts and retry waits
def test_transient_faults_change_nothing_in_the_result(tmp_path: Path, settings_file: Path) -> None:
    # 12 attempts: with 30% of attempts failing, a request fails for good once in 2 million.
    args = ("--num-instructions", "150", "--concurrency", "32", "--set", "openai.max_attempts=12")
    with MockOpenAIServer(fault_rate=0.3, retry_after=0.1, slow_seconds=2) as faulty:
        result = openai_cli("run", tmp_path / "faulty", faulty.base_url, settings_file, *args)
        served = faulty.stats
    with MockOpenAIServer() as clean:
        openai_cli("run", tmp_path / "clean", clean.base_url, settings_file, *args)
        clean_requests = clean.stats["requests"]

    # Every kind of fault really happened, many times over.
    assert set(served["faults"]) == set(FAULT_KINDS), served
    assert sum(served["faults"].values()) >= 0.2 * served["requests"]
    assert served["status"].get(429, 0) > 0
    # No request was tried without end: at most max_attempts (12) tries of each the clean
    # run needed, give or take the bootstrap requests in flight when the target was reached.
    assert served["requests"] <= 12 * (clean_requests + 32)

    lines = summary_lines(result.stderr)
    for stage in ("bootstrap", "classify", "instances"):
        assert "failed requests" not in lines[stage], lines[stage]
    # One stream serves bootstrap, classify and instances: its retries are on its first line.
    assert "retries" in lines["bootstrap"] and "the whole stream" in result.stderr, lines

    run = tmp_path / "faulty"
    assert len(read_jsonl(run / "machine_generated_instructions.jsonl")) == 150
    assert len(read_jsonl(run / "is_clf_or_not_m1_completion.jsonl")) == 150
    assert len(read_jsonl(run / "machine_generated_instances.jsonl")) == 150
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    assert info["counts"] == {"instructions": 150, "labels": 150, "instances": 150}

    faulty_store = store_snapshot(run)
    clean_store = store_snapshot(tmp_path / "clean")
    assert served["prompts_ok"] >= len(faulty_store["responses"])
    # The stored answers may differ only in bootstrap requests still in flight when the
    # target was reached (how many depends on timing); every answer both hold is the same.
    faulty_answers, clean_answers = faulty_store.pop("responses"), clean_store.pop("responses")
    assert_same_nonempty(faulty_store, clean_store)
    common = set(faulty_answers) & set(clean_answers)
    assert len(common) >= 0.95 * min(len(faulty_answers), len(clean_answers))
    assert used_answers(run) <= {key for key, _, _ in common}
    for name in (
        "finetuning_data/all_generated_instances.jsonl",
        "exports/alpaca.json",
        "exports/prompt_completion.jsonl",
        "exports/openai_chat.jsonl",
    ):
        assert (run / name).read_bytes() == (tmp_path / "clean" / name).read_bytes(), name


def used_answers(run: Path) -> set[str]:
    """The cache keys of the answers a run's records come from."""
    with sqlite3.connect(run / "selfinstruct.db") as db:
        rows = db.execute(
            "SELECT response_key FROM bootstrap_requests UNION SELECT response_key FROM labels "
            "UNION SELECT response_key FROM instances"
        ).fetchall()
    return {row[0] for row in rows if row[0]}


# --- fatal answers --------------------------------------------------------------------------


@pytest.mark.slow  # a local HTTP server
def test_wrong_key_stops_with_401_and_loses_nothing(
    tmp_path: Path, settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "run"
    good, bad = "sk-good-" + secrets.token_hex(8), "sk-bad-" + secrets.token_hex(8)
    with MockOpenAIServer(api_key=good) as server:
        monkeypatch.setenv(KEY_ENV, good)
        openai_cli(
            "run",
            out,
            server.base_url,
            settings_file,
            "--api-key-env",
            KEY_ENV,
            "--num-instructions",
            "20",
            "-q",
        )
        before = store_snapshot(out)
        assert len(before["instructions"]) == 20

        extend = ("run", out, server.base_url, settings_file, "--api-key-env", KEY_ENV)
        extend += ("--num-instructions", "40", "-q")
        monkeypatch.setenv(KEY_ENV, bad)
        waits = retry_waits(monkeypatch)
        refused_before = server.stats["status"].get(401, 0)
        failed = openai_cli(*extend, check=False)
        line = error_line(failed)
        assert "401" in line and KEY_ENV in line
        assert bad not in failed.stderr + failed.stdout
        # It stops at the first refusal: no retry waits, only the requests already in flight.
        assert waits == []
        refused = server.stats["status"].get(401, 0) - refused_before
        assert 1 <= refused <= SLOTS

        after = store_snapshot(out)
        assert after["instructions"][:20] == before["instructions"]
        assert after["labels"] == before["labels"]
        assert after["instances"] == before["instances"]
        assert set(before["responses"]) <= set(after["responses"])
        assert len(read_jsonl(out / "machine_generated_instructions.jsonl")) >= 20
        assert len(read_jsonl(out / "machine_generated_instances.jsonl")) == 20

        # With the right key again the run continues where it stopped.
        monkeypatch.setenv(KEY_ENV, good)
        openai_cli(*extend)
        resumed = store_snapshot(out)
        assert len(resumed["instructions"]) == 40
        assert resumed["instructions"][:20] == before["instructions"]
        assert len(read_jsonl(out / "machine_generated_instances.jsonl")) == 40


@pytest.mark.slow  # a local HTTP server
def test_missing_key_is_a_401_naming_the_variable(tmp_path: Path, settings_file: Path) -> None:
    with MockOpenAIServer(api_key="sk-" + secrets.token_hex(8)) as server:
        failed = openai_cli(
            "run",
            tmp_path / "run",
            server.base_url,
            settings_file,
            "--api-key-env",
            KEY_ENV,
            "--num-instructions",
            "5",
            "-q",
            check=False,
        )
    line = error_line(failed)
    assert "401" in line and KEY_ENV in line


@pytest.mark.slow  # a local HTTP server
def test_unknown_model_is_a_404_naming_the_model(tmp_path: Path, settings_file: Path) -> None:
    with MockOpenAIServer(models=("m1",)) as server:
        failed = openai_cli(
            "run",
            tmp_path / "run",
            server.base_url,
            settings_file,
            "--num-instructions",
            "5",
            "-q",
            model="no-such-model",
            check=False,
        )
        assert server.stats["status"] == {404: server.stats["requests"]}
    line = error_line(failed)
    assert "404" in line and "no-such-model" in line


def test_unreachable_server_fails_fast(
    tmp_path: Path, settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server never reached is a configuration error: the run stops at the first refused
    connection instead of retrying it (max_attempts = 8 in these settings)."""
    url = f"http://127.0.0.1:{free_port()}/v1"
    waits = retry_waits(monkeypatch)
    failed = openai_cli(
        "run",
        tmp_path / "run",
        url,
        settings_file,
        "--num-instructions",
        "5",
        "-q",
        check=False,
        timeout=60,
    )
    line = error_line(failed)
    assert "cannot connect" in line and url in line
    assert waits == []


# --- the API key stays in memory --------------------------------------------------------------


@pytest.mark.slow  # a faulty server (2 s stalls) and seven CLI runs
def test_api_key_never_lands_on_disk_or_in_output(
    tmp_path: Path, settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = "sk-test-" + secrets.token_hex(16)
    monkeypatch.setenv(KEY_ENV, key)
    out = tmp_path / "run"
    outputs: list[subprocess.CompletedProcess] = []
    with MockOpenAIServer(api_key=key, fault_rate=0.2, retry_after=0.05, slow_seconds=2) as server:
        outputs.append(
            openai_cli(
                "bootstrap",
                out,
                server.base_url,
                settings_file,
                "--api-key-env",
                KEY_ENV,
                "--num-instructions",
                "20",
            )
        )
        for stage in ("classify", "instances", "prepare"):
            outputs.append(cli(stage, "--out", str(out)))
        assert server.stats["status"].get(200, 0) > 0
    assert len(read_jsonl(out / "machine_generated_instances.jsonl")) == 20
    for fmt in (found.name for found in written()):
        target = tmp_path / "exports" / f"{fmt}.out"
        target.parent.mkdir(exist_ok=True)
        outputs.append(cli("export", "--run", str(out), "--format", fmt, "--out", str(target)))
        assert target.stat().st_size > 0
    with MockOpenAIServer(api_key="sk-other-" + secrets.token_hex(8)) as refusing:
        failed = openai_cli(
            "run",
            tmp_path / "refused",
            refusing.base_url,
            settings_file,
            "--api-key-env",
            KEY_ENV,
            "--num-instructions",
            "5",
            check=False,
        )
    assert failed.returncode != 0 and "401" in failed.stderr
    outputs.append(failed)

    for needle in (key, key.removeprefix("sk-test-")):
        for result in outputs:
            assert needle not in result.stdout and needle not in result.stderr
        files = [p for p in tmp_path.rglob("*") if p.is_file()]
        assert len(files) > 10
        leaks = [p for p in files if needle.encode() in p.read_bytes()]
        assert leaks == []


# --- OpenAIBackend directly -------------------------------------------------------------------


def settings(base_url: str, **changes: Any) -> OpenAISettings:
    values: dict[str, Any] = {
        "base_url": base_url,
        "max_concurrency": 8,
        "timeout": 5.0,
        "max_attempts": 3,
        "backoff_base": 0.001,
        "backoff_max": 0.001,
    }
    values.update(changes)
    return OpenAISettings(**values)


def collect(backend: OpenAIBackend, requests: Sequence[Request]) -> list[Result]:
    results: list[Result | None] = [None] * len(requests)
    backend.stream(requests, results.__setitem__)
    assert all(r is not None for r in results)
    return results  # type: ignore[return-value]


def prompt(index: int = 0, max_tokens: int = 32) -> Request:
    return Request(
        prompt=f"Come up with a series of tasks:\n{index}.", max_tokens=max_tokens, seed=index
    )


@pytest.fixture
def backends() -> Iterator[list[OpenAIBackend]]:
    """Backends made by a test, closed after it."""
    made: list[OpenAIBackend] = []
    yield made
    for backend in made:
        backend.close()


def make(
    backends: list[OpenAIBackend], config: OpenAISettings, key: str | None = None
) -> OpenAIBackend:
    backend = OpenAIBackend(config, "m1", key)
    backends.append(backend)
    return backend


def retry_waits(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits before retries of every OpenAI backend from now on, as asked of the gate
    (the event a timing test checks instead of a clock)."""
    waits: list[float] = []
    sleep = Gate.sleep

    async def recorded(self: Gate, seconds: float) -> None:
        waits.append(seconds)
        await sleep(self, seconds)

    monkeypatch.setattr(Gate, "sleep", recorded)
    return waits


@pytest.mark.slow  # a local HTTP server
def test_answers_carry_text_finish_reason_and_usage(backends: list[OpenAIBackend]) -> None:
    chat = Request(
        messages=(("system", "You write tasks."), ("user", "Write a task.")), max_tokens=48, seed=3
    )
    requests = [prompt(0), chat]
    with MockOpenAIServer() as server:
        results = collect(make(backends, settings(server.base_url)), requests)
        assert server.stats["requests"] == 2
    expected = FakeLLM(model="fake").generate(requests)
    for result, want in zip(results, expected, strict=True):
        assert isinstance(result, Completion)
        assert result.text and result.text == want.text
        assert result.finish_reason == want.finish_reason
        assert result.prompt_tokens == want.prompt_tokens > 0
        assert result.completion_tokens == want.completion_tokens > 0


@pytest.mark.slow  # a local HTTP server
def test_retry_after_is_honoured_until_attempts_run_out(
    backends: list[OpenAIBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = retry_waits(monkeypatch)
    with MockOpenAIServer(fault_rate=1.0, faults=("429",), retry_after=0.2) as server:
        backend = make(backends, settings(server.base_url))
        started = time.monotonic()
        [result] = collect(backend, [prompt()])
        seconds = time.monotonic() - started
        assert server.stats["status"] == {429: 3}
    assert isinstance(result, Failure)
    assert (result.reason, result.attempts) == ("http_429", 3)
    assert "429" in result.detail
    # Two waits of Retry-After 0.2 s (stretched by up to 10%), although the backoff is 1 ms,
    # and really waited (a lower bound: load only makes it longer).
    assert len(waits) == 2 and all(0.2 <= wait <= 0.22 for wait in waits), waits
    assert seconds >= 0.4
    assert backend.counters["http_429"] == 3 and backend.counters["retries"] == 2


@pytest.mark.slow  # a local HTTP server
def test_a_retried_request_succeeds_once_the_server_recovers(backends: list[OpenAIBackend]) -> None:
    with MockOpenAIServer(
        fault_rate=0.5, faults=("500", "503", "drop", "truncated"), seed=7
    ) as server:
        results = collect(
            make(backends, settings(server.base_url, max_attempts=20)),
            [prompt(i) for i in range(30)],
        )
        assert sum(server.stats["faults"].values()) > 5
    assert all(isinstance(r, Completion) for r in results)
    assert [r.text for r in results] == [  # type: ignore[union-attr]
        c.text for c in FakeLLM().generate([prompt(i) for i in range(30)])
    ]


@pytest.mark.slow  # a local HTTP server
def test_a_request_the_server_refuses_is_not_retried(backends: list[OpenAIBackend]) -> None:
    with MockOpenAIServer() as server:
        backend = make(backends, settings(server.base_url, max_attempts=5))
        [refused, fine] = collect(backend, [prompt(0, max_tokens=0), prompt(1)])
        assert server.stats["status"] == {400: 1, 200: 1}
    assert isinstance(refused, Failure)
    assert (refused.reason, refused.attempts) == ("http_400", 1)
    assert "max_tokens" in refused.detail
    assert isinstance(fine, Completion)


@pytest.mark.slow  # a local HTTP server
def test_generate_raises_when_requests_fail_for_good(backends: list[OpenAIBackend]) -> None:
    with MockOpenAIServer(fault_rate=1.0, faults=("500",)) as server:
        backend = make(backends, settings(server.base_url, max_attempts=2))
        with pytest.raises(BackendError, match="2 requests failed"):
            backend.generate([prompt(0), prompt(1)])
        assert server.stats["status"] == {500: 4}


@pytest.mark.slow  # a local HTTP server
def test_requests_are_in_flight_in_parallel(backends: list[OpenAIBackend]) -> None:
    # The server holds each request until 8 are in progress at once (or the last ones have
    # come): a client that sent fewer at a time would never get an answer.
    crowd = Crowd(size=8, total=20, model="m1")
    with MockOpenAIServer(llm=crowd) as server:
        backend = make(backends, settings(server.base_url, max_concurrency=8))
        completions = backend.generate([prompt(i) for i in range(20)])
        service = server.service_stats
    assert len(completions) == 20 and all(isinstance(c, Completion) for c in completions)
    assert crowd.groups == [8, 8, 4]  # three waves of 8 at most
    assert service["max_in_progress"] == 8  # never more than --concurrency


@pytest.mark.slow  # a local HTTP server
def test_fatal_answers_raise_with_the_key_scrubbed(backends: list[OpenAIBackend]) -> None:
    key = "sk-test-" + secrets.token_hex(12)
    with MockOpenAIServer(api_key="sk-right") as server:
        backend = make(backends, settings(server.base_url), key=key)
        with pytest.raises(BackendError, match="401") as info:
            collect(backend, [prompt()])
    assert key not in str(info.value)


# --- Retry-After forms (a scripted server) ------------------------------------------------


Header = str | Callable[[], str]  # a value, or made when the answer is sent


def http_date_in_2_s() -> str:
    """An HTTP date 1-2 s from now (whole seconds)."""
    return email.utils.formatdate(time.time() + 2, usegmt=True)


class ScriptedServer:
    """Answers POSTs with the scripted (status, headers) in turn, then with 200 answers."""

    def __init__(self, script: Sequence[tuple[int, dict[str, Header]]]) -> None:
        self.script = list(script)
        self.times: list[float] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                owner.times.append(time.monotonic())
                status, headers = owner.script.pop(0) if owner.script else (200, {})
                if status == 200:
                    answer = Completion("9. Write a haiku about rain.", "stop", 5, 7)
                    body = completion_reply(1, "m1", [answer])
                else:
                    body = {"error": {"message": "slow down", "type": "rate_limit_error"}}
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value() if callable(value) else value)
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def __enter__(self) -> ScriptedServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.slow  # waits 1-2 s by design
def test_retry_after_as_an_http_date_is_honoured(
    backends: list[OpenAIBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    waits = retry_waits(monkeypatch)
    # The date is written when the 429 is answered, in whole seconds: 1-2 s from then.
    with ScriptedServer([(429, {"Retry-After": http_date_in_2_s})]) as server:
        [result] = collect(make(backends, settings(server.base_url)), [prompt()])
        assert len(server.times) == 2
        waited = server.times[1] - server.times[0]
    assert isinstance(result, Completion) and result.completion_tokens == 7
    # The wait is the date's (at most 2 s plus 10%), not the 1 ms backoff; the time it took
    # to read the answer only shortens it.
    assert len(waits) == 1 and 0.5 <= waits[0] <= 2.2, waits
    assert waited >= waits[0]


@pytest.mark.parametrize("value", ["soon", "in a minute"])
@pytest.mark.slow  # a local HTTP server
def test_an_unusable_retry_after_falls_back_to_the_backoff(
    value: str, backends: list[OpenAIBackend]
) -> None:
    with ScriptedServer([(429, {"Retry-After": value})]) as server:
        [result] = collect(make(backends, settings(server.base_url)), [prompt()])
        assert len(server.times) == 2
    assert isinstance(result, Completion)


# --- client-side rate limits ------------------------------------------------------------------


@pytest.mark.slow  # waits 3 s by design
def test_request_rate_limit_holds_after_a_one_second_burst(backends: list[OpenAIBackend]) -> None:
    """600/min: a burst of 10 goes at once, the rest at 590 per minute."""
    with MockOpenAIServer() as server:
        backend = make(
            backends, settings(server.base_url, max_concurrency=64, requests_per_minute=600)
        )
        started = time.monotonic()
        results = collect(backend, [prompt(i, max_tokens=4) for i in range(40)])
        seconds = time.monotonic() - started
        assert server.stats["requests"] == 40
    assert all(isinstance(r, Completion) for r in results)
    # The 30 past the burst wait for refills (that it waits no longer than the rate needs:
    # test_rate_limiter_waits_no_longer_than_the_rate_needs, on a virtual clock).
    assert seconds >= 30 / (590 / 60) - 0.1


class FakeClock:
    """Virtual time for RateLimiter: sleeping advances the clock instantly."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        # At least a microsecond: a wait of 1e-14 s would not move a float clock at 1000 s
        # (real time always moves on).
        self.now += max(seconds, 1e-6)
        await asyncio.sleep(0)


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock()
    monkeypatch.setattr(rate_limit, "time", SimpleNamespace(monotonic=fake.monotonic))
    monkeypatch.setattr(rate_limit, "asyncio", SimpleNamespace(Lock=asyncio.Lock, sleep=fake.sleep))
    return fake


def acquisition_times(
    clock: FakeClock, limiter_args: tuple[float, float], count: int, cost: float
) -> list[float]:
    async def run() -> list[float]:
        limiter = RateLimiter(*limiter_args)
        times = []
        for _ in range(count):
            await limiter.acquire(cost)
            times.append(clock.now)
        return times

    return asyncio.run(run())


def most_in_window(times: list[float], window: float, weight: float = 1.0) -> float:
    """The most units granted inside any half-open interval of `window` seconds."""
    best, start = 0, 0
    for end in range(len(times)):
        while times[end] - times[start] >= window - 1e-9:
            start += 1
        best = max(best, end - start + 1)
    return best * weight


@pytest.mark.parametrize(
    ("limits", "cost", "per_minute"),
    [
        ((600, 0), 1.0, 600),  # requests per minute
        ((0, 6000), 100.0, 6000),  # tokens per minute, 100 per request
    ],
)
def test_rate_limiter_guarantees_burst_plus_rate(
    clock: FakeClock, limits: tuple[float, float], cost: float, per_minute: float
) -> None:
    """What the token bucket does guarantee: at most capacity + rate * T in any T seconds."""
    count = int(2.2 * per_minute / cost)
    times = acquisition_times(clock, limits, count, cost)
    rate = per_minute / 60
    for window in (1.0, 10.0, 60.0):
        assert most_in_window(times, window, cost) <= per_minute + rate * window + cost
    # and the sustained rate: the last grants come no faster than the limit
    tail = times[-int(per_minute / cost / 2) :]
    assert (tail[-1] - tail[0]) >= (len(tail) - 1) * cost / rate - 1e-3


@pytest.mark.parametrize(
    ("limits", "cost", "per_minute"),
    [
        ((600, 0), 1.0, 600),
        ((0, 6000), 100.0, 6000),
    ],
)
def test_rate_limiter_waits_no_longer_than_the_rate_needs(
    clock: FakeClock, limits: tuple[float, float], cost: float, per_minute: float
) -> None:
    """A one-second burst goes at once, then one grant per refill: grant n comes as soon as
    the bucket holds its cost again, never later."""
    burst = per_minute / 60 / cost  # grants in the one-second burst
    rate = (per_minute - per_minute / 60) / 60  # the refill, per second
    times = acquisition_times(clock, limits, 40, cost)
    start = times[0]
    assert times[: int(burst)] == [start] * int(burst)
    for n, when in enumerate(times):
        due = max(0.0, (n + 1 - burst) * cost / rate)
        assert when - start == pytest.approx(due, abs=1e-3), n


@pytest.mark.parametrize(
    ("limits", "cost", "per_minute"),
    [
        ((600, 0), 1.0, 600),
        ((0, 6000), 100.0, 6000),
    ],
)
def test_no_minute_carries_more_than_the_per_minute_limit(
    clock: FakeClock, limits: tuple[float, float], cost: float, per_minute: float
) -> None:
    times = acquisition_times(clock, limits, int(2.2 * per_minute / cost), cost)
    assert most_in_window(times, 60.0, cost) <= per_minute


def test_the_proxy_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from selfinstruct.llm.backends.openai import environment_proxy

    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("no_proxy", "")
    assert environment_proxy("https://api.example.com/v1") is None
    monkeypatch.setenv("https_proxy", "http://proxy.example:3128")
    monkeypatch.setenv("no_proxy", "internal.example")
    assert environment_proxy("https://api.example.com/v1") == "http://proxy.example:3128"
    assert environment_proxy("https://internal.example/v1") is None
    assert environment_proxy("http://api.example.com/v1") is None  # no http_proxy
