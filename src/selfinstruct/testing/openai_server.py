"""A real local OpenAI-compatible HTTP server for tests and benchmarks (stdlib only).

It answers POST /v1/completions and POST /v1/chat/completions with a shared `FakeLLM` (so
answers are deterministic), lists models at GET /v1/models, and can inject latency and faults
the way a busy provider does: 429 with Retry-After, 500, 503, a dropped connection, a body cut
in half, or a very slow answer. Faults are drawn from `random.Random(seed)`, so the sequence of
faults over a run's requests is reproducible. `crash()` then `start()` is a server that dies
and comes back on the same port. Bodies are read and written with `llm.openai_format`, the
same code the client uses, so the two sides cannot drift apart.

    with MockOpenAIServer(latency=0.1, fault_rate=0.2) as server:
        run = Run.create(out, backend="openai", openai={"base_url": server.base_url})

For benchmarks it can behave like a GPU server: `latency_model=LatencyModel()` (testing/
latency.py) sleeps time to first token plus a per-token time for a drawn answer length, and
`capacity=K` answers 429 (with Retry-After) to a request arriving while K are in progress.
`service_stats` (also GET /stats, with `stats`) adds up the service time per stage, and
`timeline()` (also GET /timeline[?since=N]) lists each generation request with its start, end,
task and service time, so a benchmark can tell how busy the slots were while a stage worked.
`--profile heavy` is issue 24's engine: 0.2 s to the first token, 5 ms per token, heavy-tailed
answer lengths (testing/latency.py).

Run it by hand with `python -m selfinstruct.testing.openai_server --port 8000 ...`.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import os
import random
import select
import socket
import socketserver
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

from selfinstruct.evaluation.grading import FAKE_ANSWERS as EVALUATION_ANSWERS
from selfinstruct.llm.backends.fake import FakeLLM, infer_task
from selfinstruct.llm.base import LLM, Completion, Request
from selfinstruct.llm.fake_answers import teach
from selfinstruct.llm.openai_format import (
    BadRequest,
    parse_requests,
    request_model,
    response_body,
)
from selfinstruct.stages.registry import STAGES
from selfinstruct.testing.latency import (
    PROFILES,
    TIMELINE_FIELDS,
    LatencyModel,
    ServiceLedger,
    TimelineRow,
    parse_lengths,
)

# Requests arrive over HTTP from any process: the fake backend must know every kind of request
# (the stages teach theirs when declared; said here so it holds whatever imported what).
teach([answer for stage in STAGES for answer in stage.fake_answers])
teach(EVALUATION_ANSWERS)

FAULT_KINDS = ("429", "500", "503", "drop", "truncated", "slow")
# The stage each task (as the fake backend recognises a request) belongs to: the timeline says
# the task, a benchmark reports by stage.
TASK_STAGES = {answer.task: stage.name for stage in STAGES for answer in stage.fake_answers}
DEFAULT_MODEL = "fake"
CANCEL_CHECK = 0.05  # seconds between checks that a client still waits for its answer


class ApiError(Exception):
    """An error answered as an OpenAI-style JSON error body."""

    def __init__(
        self,
        status: int,
        message: str,
        kind: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.kind = kind
        self.code = code
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.kind,
                "param": self.param,
                "code": self.code,
            }
        }


# ---------------------------------------------------------------------------------------------
# Counters


class _Stats:
    """Thread-safe counters. Never holds request headers or keys."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._prompts_ok = 0
        self._status: Counter[int] = Counter()
        self._faults: Counter[str] = Counter()

    def request(self) -> None:
        with self._lock:
            self._requests += 1

    def status(self, code: int) -> None:
        with self._lock:
            self._status[code] += 1

    def fault(self, kind: str) -> None:
        with self._lock:
            self._faults[kind] += 1

    def prompts_ok(self, count: int) -> None:
        with self._lock:
            self._prompts_ok += count

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": self._requests,
                "status": dict(self._status),
                "faults": dict(self._faults),
                "prompts_ok": self._prompts_ok,
            }


# ---------------------------------------------------------------------------------------------
# Bodies: the shapes themselves belong to llm.openai_format; here they become HTTP answers


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, f"We could not parse the JSON body of your request: {exc}") from None


@contextlib.contextmanager
def _as_api_error() -> Iterator[None]:
    """Answer a body that is not a valid request with a 400 naming the field."""
    try:
        yield
    except BadRequest as exc:
        raise ApiError(400, exc.message, param=exc.param) from None


def completion_reply(number: int, model: str, completions: Sequence[Completion]) -> dict:
    """A /v1/completions response body (also for tests that script their own server)."""
    return response_body(completions, model, chat=False, number=number)


def format_seconds(value: float) -> str:
    """Seconds as a Retry-After value: "1" for 1.0, "0.2" for 0.2."""
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _over_capacity(capacity: int, retry_after: float) -> ApiError:
    return ApiError(
        429,
        f"The server is at capacity ({capacity} requests in progress). Please retry later.",
        kind="rate_limit_error",
        code="rate_limit_exceeded",
        headers={"Retry-After": format_seconds(retry_after)},
    )


def _fault_error(kind: str, retry_after: float) -> ApiError:
    if kind == "429":
        return ApiError(
            429,
            "Rate limit reached for requests. Please retry later.",
            kind="rate_limit_error",
            code="rate_limit_exceeded",
            headers={"Retry-After": format_seconds(retry_after)},
        )
    if kind == "503":
        return ApiError(
            503,
            "The server is overloaded or not ready yet.",
            kind="server_error",
            code="service_unavailable",
        )
    return ApiError(
        500,
        "The server had an error while processing your request.",
        kind="server_error",
        code="internal_error",
    )


# ---------------------------------------------------------------------------------------------
# HTTP plumbing


class _HTTPServer(ThreadingHTTPServer):
    """A threading server that tracks open connections so stop() can close them."""

    daemon_threads = True
    block_on_close = False  # never join handler threads (a "slow" answer may still sleep)
    request_queue_size = 256

    def __init__(self, address: tuple[str, int], owner: MockOpenAIServer) -> None:
        self.owner = owner
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind does a reverse DNS lookup (getfqdn); skip it.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.add(connection)

    def untrack(self, connection: socket.socket) -> None:
        with self._connections_lock:
            self._connections.discard(connection)

    def close_connections(self) -> None:
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            _shutdown_socket(connection)

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            return  # the client went away (e.g. it timed out on a "slow" answer)
        super().handle_error(request, client_address)


def _shutdown_socket(connection: socket.socket) -> None:
    with contextlib.suppress(OSError):
        connection.shutdown(socket.SHUT_RDWR)


Route = Callable[["_Handler", bytes], None]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out as two writes: no 40 ms stalls
    server: _HTTPServer

    def setup(self) -> None:
        super().setup()
        self.server.track(self.connection)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.server.untrack(self.connection)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.owner.verbose:
            super().log_message(format, *args)

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def _dispatch(self, method: str) -> None:
        owner = self.server.owner
        owner._stats.request()
        try:
            body = self._read_body()
            owner.check_auth(self.headers.get("Authorization"))
            self._route(method)(self, body)
        except ApiError as error:
            self.send_json(error.status, error.body(), error.headers)

    def _route(self, method: str) -> Route:
        path = urlsplit(self.path).path.rstrip("/")
        methods = ROUTES.get(path)
        if methods is None:
            raise ApiError(404, f"Unknown request URL: {method} {path}.", code="unknown_url")
        if method not in methods:
            raise ApiError(
                405, f"Method {method} is not allowed on {path}.", code="method_not_allowed"
            )
        return methods[method]

    def _read_body(self) -> bytes:
        """The request body (read fully, so the connection can be kept alive)."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            self.close_connection = True
            raise ApiError(411, "A Content-Length header is required.")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "Invalid Content-Length header.") from None
        return self.rfile.read(length) if length > 0 else b""

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self.send_bytes(status, json.dumps(payload).encode("utf-8"), headers)

    def send_bytes(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
        self.server.owner._stats.status(status)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def drop(self) -> None:
        """Close the connection without sending any response."""
        self.close_connection = True
        _shutdown_socket(self.connection)

    # Endpoints -------------------------------------------------------------------------------

    def list_models(self, body: bytes) -> None:
        data = [
            {"id": model, "object": "model", "created": 0, "owned_by": "selfinstruct"}
            for model in self.server.owner.served_models
        ]
        self.send_json(200, {"object": "list", "data": data})

    def completions(self, body: bytes) -> None:
        self._generate(body, chat=False)

    def chat_completions(self, body: bytes) -> None:
        self._generate(body, chat=True)

    def _generate(self, body: bytes, chat: bool) -> None:
        owner = self.server.owner
        payload = _parse_json(body)
        with _as_api_error():
            model = request_model(payload)
        owner.check_model(model)
        with _as_api_error():
            requests = parse_requests(payload, chat)
        ledger = owner._ledger
        if not ledger.admit():
            raise _over_capacity(owner.capacity or 0, owner.retry_after)
        started = time.time()
        try:
            self._serve(requests, model, chat, started)
        except ApiError as error:
            if error.status == 429:
                ledger.rate_limited()
            raise
        finally:
            ledger.release()

    def _serve(self, requests: Sequence[Request], model: str, chat: bool, started: float) -> None:
        """Answer admitted requests (admitted at `started`, Unix time): faults, the fixed
        latency and the model's service time."""
        owner = self.server.owner
        fault = owner.draw_fault(requests)
        owner.wait(owner.latency)
        if fault in ("429", "500", "503"):
            raise _fault_error(fault, owner.retry_after)
        if fault == "drop":
            self.drop()
            return
        service = owner.plan(requests)
        spent = self._generating(service.seconds)
        if spent is not None:  # the client went away: stop, as vLLM aborts the request
            owner._ledger.cancelled(service.stage, owner.latency + spent, started)
            return
        if fault == "slow":
            owner.wait(owner.slow_seconds)
        completions = service.usage(owner.answer(requests))
        answer = response_body(completions, model, chat, number=owner.next_id())
        # Counted before the answer goes out: a client that has its answer sees it counted.
        tokens = sum(c.completion_tokens for c in completions)
        seconds = owner.latency + service.seconds
        owner._ledger.served(service.stage, len(requests), seconds, tokens, started)
        if fault == "truncated":
            encoded = json.dumps(answer).encode("utf-8")
            self.send_bytes(200, encoded[: len(encoded) // 2])
        else:
            owner._stats.prompts_ok(len(requests))
            self.send_json(200, answer)

    def _generating(self, seconds: float) -> float | None:
        """Wait out a request's service time; the seconds spent if the client closed the
        connection meanwhile (checked every CANCEL_CHECK seconds), else None."""
        owner = self.server.owner
        start = time.monotonic()
        while (left := seconds - (time.monotonic() - start)) > 0:
            owner.wait(min(CANCEL_CHECK, left))
            if self._client_gone():
                return time.monotonic() - start
        return None

    def _client_gone(self) -> bool:
        """The client closed its end (an HTTP/1.1 client sends nothing more before the
        answer, so a readable socket means end of file or a reset)."""
        try:
            readable, _, _ = select.select([self.connection], [], [], 0)
            return bool(readable) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    def server_stats(self, body: bytes) -> None:
        owner = self.server.owner
        self.send_json(200, {**owner.stats, "service": owner.service_stats})

    def server_timeline(self, body: bytes) -> None:
        """GET /timeline[?since=N]: the rows from the N-th on (see timeline_body)."""
        query = parse_qs(urlsplit(self.path).query)
        try:
            since = int(query.get("since", ["0"])[0])
        except ValueError:
            raise ApiError(400, "since must be an integer", param="since") from None
        if since < 0:
            raise ApiError(400, "since must not be negative", param="since")
        self.send_json(200, self.server.owner.timeline_body(since))


ROUTES: dict[str, dict[str, Route]] = {
    "/v1/models": {"GET": _Handler.list_models},
    "/v1/completions": {"POST": _Handler.completions},
    "/v1/chat/completions": {"POST": _Handler.chat_completions},
    "/stats": {"GET": _Handler.server_stats},
    "/timeline": {"GET": _Handler.server_timeline},
}


@dataclass(frozen=True)
class _Service:
    """What the latency model decided for one body: its stage (the task the fake backend
    recognises in its first prompt), the tokens of each answer, the seconds to sleep."""

    stage: str
    tokens: tuple[int, ...] | None  # None: no latency model, usage as the answers say
    seconds: float

    def usage(self, completions: Sequence[Completion]) -> list[Completion]:
        """The answers, reporting the model's token counts as completion_tokens (text and
        finish_reason stay the fake answer's, so the data is the same with or without it)."""
        if self.tokens is None:
            return list(completions)
        return [
            replace(c, completion_tokens=n) for c, n in zip(completions, self.tokens, strict=True)
        ]


# ---------------------------------------------------------------------------------------------
# The server


class MockOpenAIServer:
    """A local OpenAI-compatible server answering with FakeLLM (or the given `llm`), with
    latency and faults.

    Use as a context manager or call start()/stop(). `base_url` is "http://HOST:PORT/v1";
    `stats` is a snapshot of the counters (requests, per-status, per-fault, prompts answered),
    `service_stats` one of the generation requests' service time (see ServiceLedger).

    `latency_model`: also sleep the model's time for each answered body (after the fixed
    `latency`), and report its token counts as usage. `capacity`: at most this many generation
    requests in progress; one more is answered 429 at once, with Retry-After `retry_after`.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        latency: float = 0.0,
        fault_rate: float = 0.0,
        faults: Sequence[str] = FAULT_KINDS,
        retry_after: float = 1.0,
        slow_seconds: float = 5.0,
        api_key: str | None = None,
        models: Sequence[str] | None = None,
        seed: int = 0,
        verbose: bool = False,
        llm: LLM | None = None,
        latency_model: LatencyModel | None = None,
        capacity: int | None = None,
    ) -> None:
        _validate(latency, fault_rate, faults, retry_after, slow_seconds, models)
        self.latency_model = latency_model
        self.capacity = capacity
        self._ledger = ServiceLedger(capacity)
        self.host = host
        self.latency = latency
        self.fault_rate = fault_rate
        self.faults = tuple(faults)
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        self.models = tuple(models) if models is not None else None
        self.seed = seed
        self.verbose = verbose
        self._api_key = api_key
        self._requested_port = port
        self._llm = llm if llm is not None else FakeLLM(model=self.served_models[0])
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._ids = 0
        self._stats = _Stats()
        self._stage_faults: Counter[str] = Counter()
        self._stopping = threading.Event()
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None

    # Lifecycle -------------------------------------------------------------------------------

    def start(self) -> MockOpenAIServer:
        """Bind and serve in a daemon thread; returns self."""
        if self._httpd is not None:
            raise RuntimeError("the server is already running")
        self._stopping.clear()
        self._httpd = _HTTPServer((self.host, self._requested_port), self)
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"mock-openai-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, close the listening socket and every open connection."""
        httpd, thread = self._httpd, self._thread
        if httpd is None:
            return
        httpd.shutdown()
        httpd.server_close()
        httpd.close_connections()
        self._stopping.set()  # after closing, so a woken "slow" answer has nowhere to go
        if thread is not None:
            thread.join(timeout=5)
        self._httpd, self._thread = None, None

    def crash(self) -> None:
        """Stop as a server that dies does (new connections refused, open ones cut off),
        keeping the port: `start()` then serves again at the same `base_url`, as a server
        that comes back (counters and the fault sequence carry on)."""
        if self._httpd is not None:
            self._requested_port = self._httpd.server_port
        self.stop()

    def __enter__(self) -> MockOpenAIServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # Public attributes -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("the server is not running")
        return self._httpd.server_port

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    @property
    def served_models(self) -> tuple[str, ...]:
        return self.models if self.models else (DEFAULT_MODEL,)

    @property
    def stats(self) -> dict[str, Any]:
        return self._stats.snapshot()

    @property
    def stage_faults(self) -> dict[str, int]:
        """The faults injected so far, by the stage of the request they hit (a crash harness
        says how many each stage survived)."""
        with self._lock:
            return dict(self._stage_faults)

    @property
    def service_stats(self) -> dict[str, Any]:
        """Generation requests: capacity, in progress (now and at most), answered 200 and 429
        (over_capacity: those refused for capacity), the service seconds (fixed latency plus
        the model's time) and tokens of the 200s, in total and per stage (`stages`), and the
        latency model."""
        model = self.latency_model.describe() if self.latency_model else None
        return {**self._ledger.snapshot(), "latency": self.latency, "latency_model": model}

    def timeline(self, since: int = 0) -> list[TimelineRow]:
        """Generation requests that held a slot, in the order they ended, from the `since`-th:
        (started, ended, task, service_seconds, outcome), times in Unix seconds from when the
        request was admitted to when its answer was ready; outcome "ok" or "cancelled".
        Requests refused (429 at capacity) or failed by an injected fault are not in it."""
        return self._ledger.timeline(since)

    def timeline_body(self, since: int = 0) -> dict[str, Any]:
        """GET /timeline's answer: rows as lists (`fields` names them), `next` to pass as
        `since` for the rows after these, and the stage of each task seen (`stages`)."""
        rows = self.timeline(since)
        tasks = {row[2] for row in rows}
        return {
            "fields": list(TIMELINE_FIELDS),
            "rows": rows,
            "next": since + len(rows),
            "stages": {task: TASK_STAGES.get(task, task) for task in sorted(tasks)},
        }

    # Used by the request handler -------------------------------------------------------------

    def check_auth(self, header: str | None) -> None:
        if self._api_key is None:
            return
        expected = f"Bearer {self._api_key}".encode()
        if header is None or not hmac.compare_digest(header.encode("utf-8"), expected):
            raise ApiError(401, "Incorrect API key provided.", code="invalid_api_key")

    def check_model(self, model: str) -> None:
        if self.models is not None and model not in self.models:
            raise ApiError(
                404, f"The model '{model}' does not exist", code="model_not_found", param="model"
            )

    def draw_fault(self, requests: Sequence[Request] = ()) -> str | None:
        """The fault for this request, if one fires (one draw per request, in arrival order),
        counted by kind and by the stage of `requests`."""
        with self._lock:
            fires = self._rng.random() < self.fault_rate
            kind = self._rng.choice(self.faults) if fires else None
        if kind is not None:
            self._stats.fault(kind)
            stage = TASK_STAGES.get(infer_task(requests[0]), "other") if requests else "other"
            with self._lock:
                self._stage_faults[stage] += 1
        return kind

    def next_id(self) -> int:
        with self._lock:
            self._ids += 1
            return self._ids

    def plan(self, requests: Sequence[Request]) -> _Service:
        """The stage, answer lengths and service seconds of a body (one batch: it takes as
        long as its longest answer)."""
        stage = infer_task(requests[0])
        model = self.latency_model
        if model is None:
            return _Service(stage, None, 0.0)
        tokens = tuple(model.tokens(stage, request, self.seed) for request in requests)
        return _Service(stage, tokens, model.seconds(max(tokens)))

    def answer(self, requests: Sequence[Request]) -> list[Completion]:
        try:
            return self._llm.generate(list(requests))
        except Exception as exc:  # a bug in the fake backend: answer like a broken server
            raise ApiError(
                500,
                f"FakeLLM failed: {type(exc).__name__}: {exc}",
                kind="server_error",
                code="internal_error",
            ) from exc

    def wait(self, seconds: float) -> None:
        """Sleep, but wake early when the server stops."""
        if seconds > 0:
            self._stopping.wait(seconds)


def _validate(
    latency: float,
    fault_rate: float,
    faults: Sequence[str],
    retry_after: float,
    slow_seconds: float,
    models: Sequence[str] | None,
) -> None:
    if isinstance(faults, str):
        raise ValueError("faults is a sequence of kinds, not a string")
    unknown = [kind for kind in faults if kind not in FAULT_KINDS]
    if unknown:
        raise ValueError(f"unknown fault kinds {unknown}; known: {', '.join(FAULT_KINDS)}")
    if fault_rate > 0 and not faults:
        raise ValueError("fault_rate > 0 needs at least one fault kind")
    if not 0.0 <= fault_rate <= 1.0:
        raise ValueError("fault_rate must be between 0 and 1")
    if min(latency, retry_after, slow_seconds) < 0:
        raise ValueError("latency, retry_after and slow_seconds must not be negative")
    if models is not None and (isinstance(models, str) or not models):
        raise ValueError("models is a non-empty sequence of model names")


# ---------------------------------------------------------------------------------------------
# Command line


def _split(value: str) -> list[str]:
    return [part.strip() for part in value.split(",") if part.strip()]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m selfinstruct.testing.openai_server",
        description="Serve a local OpenAI-compatible API answering with FakeLLM.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument(
        "--faults",
        type=_split,
        default=list(FAULT_KINDS),
        help=f"comma-separated kinds (default: {','.join(FAULT_KINDS)})",
    )
    parser.add_argument("--retry-after", type=float, default=1.0)
    parser.add_argument("--slow-seconds", type=float, default=5.0)
    parser.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="require 'Bearer <key>', the key read from this environment variable",
    )
    parser.add_argument("--models", type=_split, default=None, help="comma-separated model names")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--verbose", action="store_true", help="log every request to stderr")
    _model_arguments(parser)
    return parser


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("latency model and capacity")
    group.add_argument(
        "--latency-model",
        action="store_true",
        help="sleep ttft + per_token * n per answer, n drawn per stage (implied by the next four)",
    )
    group.add_argument(
        "--profile",
        choices=sorted(PROFILES),
        help="a named latency model, which the next three flags override: default (ttft 0.1 "
        "s, 15 ms/token), heavy (0.2 s, 5 ms/token, heavy-tailed lengths: p99/p50 10), fixed "
        "(heavy's medians at a fixed length)",
    )
    group.add_argument(
        "--ttft",
        type=float,
        metavar="S",
        help="seconds to the first token (default: the profile's)",
    )
    group.add_argument(
        "--per-token",
        type=float,
        metavar="S",
        help="seconds per generated token (default: the profile's)",
    )
    group.add_argument(
        "--lengths",
        metavar="SPEC",
        help="answer lengths over the profile's: [PRESET,]STAGE=MEDIAN:SIGMA,... (lognormal "
        "tokens; PRESET default, heavy or fixed; '*' for any other stage; sigma 0 for a fixed "
        "length), e.g. 'heavy' or 'heavy,classify=1:0'",
    )
    group.add_argument(
        "--capacity",
        type=int,
        metavar="K",
        help="at most K generation requests in progress; more get 429 with --retry-after",
    )


def _latency_model(args: argparse.Namespace) -> LatencyModel | None:
    """The profile (default: "default") with the flags given over it; None without any."""
    given = (args.profile, args.ttft, args.per_token, args.lengths)
    if not args.latency_model and all(value is None for value in given):
        return None
    profile = PROFILES[args.profile or "default"]
    return LatencyModel(
        ttft=profile.ttft if args.ttft is None else args.ttft,
        per_token=profile.per_token if args.per_token is None else args.per_token,
        lengths=parse_lengths(args.lengths or "", base=profile.lengths),
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    api_key = None
    if args.api_key_env:
        api_key = os.environ.get(args.api_key_env)
        if not api_key:
            parser.error(f"environment variable {args.api_key_env} is not set or empty")
    try:
        latency_model = _latency_model(args)
        server = MockOpenAIServer(
            host=args.host,
            port=args.port,
            latency=args.latency,
            fault_rate=args.fault_rate,
            faults=args.faults,
            retry_after=args.retry_after,
            slow_seconds=args.slow_seconds,
            api_key=api_key,
            models=args.models,
            seed=args.seed,
            verbose=args.verbose,
            latency_model=latency_model,
            capacity=args.capacity,
        )
    except ValueError as exc:
        parser.error(str(exc))
    with server:
        print(server.base_url, flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
        stats = {**server.stats, "service": server.service_stats}
        print(json.dumps(stats), file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
