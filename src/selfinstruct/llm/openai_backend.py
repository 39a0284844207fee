"""Any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp, Ollama, TGI) over httpx.

Keeps up to `max_concurrency` requests in flight, retries what is worth retrying (429, 5xx,
timeouts, dropped connections, malformed bodies) with exponential backoff and jitter, honours
Retry-After, and stops at once on answers no retry can fix (401/403, unknown model, a server
that cannot be reached at all). The API key is read from an environment variable and only
ever placed in the Authorization header.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import os
import random
import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import httpx

from selfinstruct.errors import BackendError
from selfinstruct.llm.base import LLM, Completion, Failure, OnResult, Request, Result
from selfinstruct.llm.openai_format import MalformedResponse, parse_body, request_body
from selfinstruct.llm.rate_limit import RateLimiter

if TYPE_CHECKING:
    from selfinstruct.config import Config, OpenAISettings

RETRYABLE = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}
FATAL = {401: "the API key was refused", 403: "access is forbidden"}
MAX_RETRY_AFTER = 600.0
# httpcore's pool does O(connections^2) bookkeeping per request (httpcore 1.0.9, see
# encode/httpcore#1035): above ~48 connections in one pool the client's CPU, not the server,
# sets the pace. So the connections are split over several clients of at most this many.
CONNECTIONS_PER_CLIENT = 8


class OpenAIBackend(LLM):
    name = "openai"

    def __init__(self, settings: OpenAISettings, model: str, api_key: str | None) -> None:
        super().__init__(model=model)
        if not model:
            raise BackendError("--backend openai needs --model (the name the server serves)")
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.concurrency = settings.max_concurrency
        self._key = api_key or ""
        self.counters: Counter[str] = Counter()
        self._runner: asyncio.Runner | None = None
        self._clients: list[httpx.AsyncClient] = []
        self._limiter: RateLimiter | None = None
        self._reached = False

    @classmethod
    def from_config(cls, config: Config) -> OpenAIBackend:
        settings = config.openai
        key = (os.environ.get(settings.api_key_env) or "").strip()
        if key and not all(32 < ord(ch) < 127 for ch in key):
            raise BackendError(f"the API key in ${settings.api_key_env} contains spaces, control "
                               "or non-ASCII characters; set it again without them")
        return cls(settings, config.model, key or None)

    def identity(self) -> dict[str, str]:
        return {"backend": self.name, "model": self.model, "base_url": self.base_url}

    def generate(self, requests: Sequence[Request]) -> list[Completion]:
        results: list[Result | None] = [None] * len(requests)
        self.stream(requests, results.__setitem__)
        failures = [r for r in results if isinstance(r, Failure)]
        if failures:
            raise BackendError(f"{len(failures)} requests failed: {failures[0].detail}")
        return results  # type: ignore[return-value]

    def stream(self, requests: Sequence[Request], on_result: OnResult) -> None:
        if self._runner is None:
            self._runner = asyncio.Runner()
        self._runner.run(self._stream(requests, on_result))

    async def _stream(self, requests: Sequence[Request], on_result: OnResult) -> None:
        clients = self._ensure_clients()
        # One slot per request in flight; each client gets as many slots as it has connections.
        slots: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
        for i in range(self.concurrency):
            slots.put_nowait(clients[i % len(clients)])

        async def one(index: int, request: Request) -> None:
            client = await slots.get()
            try:
                result = await self._attempts(client, request)
            finally:
                slots.put_nowait(client)
            on_result(index, result)

        tasks = [asyncio.create_task(one(i, r)) for i, r in enumerate(requests)]
        try:
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    def _ensure_clients(self) -> list[httpx.AsyncClient]:
        if not self._clients:
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            count = -(-self.concurrency // CONNECTIONS_PER_CLIENT)
            ssl_context = httpx.create_ssl_context()  # shared: loaded once, not per client
            for j in range(count):
                size = len(range(j, self.concurrency, count))  # the slots _stream gives it
                limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
                self._clients.append(httpx.AsyncClient(
                    headers=headers, limits=limits, timeout=self.settings.timeout,
                    verify=ssl_context))
            self._limiter = RateLimiter(self.settings.requests_per_minute,
                                        self.settings.tokens_per_minute)
        return self._clients

    async def _attempts(self, client: httpx.AsyncClient, request: Request) -> Result:
        path = "/chat/completions" if request.is_chat else "/completions"
        body = request_body(request, self.model)
        cost = len(str(body.get("prompt") or body.get("messages"))) / 4 + request.max_tokens
        reason, detail = "", ""
        attempts = self.settings.max_attempts
        for attempt in range(1, attempts + 1):
            assert self._limiter is not None
            await self._limiter.acquire(cost)
            outcome = await self._attempt(client, path, body, request.is_chat)
            if isinstance(outcome, Completion):
                return outcome
            reason, detail, retry_after, retry = outcome
            self.counters[reason] += 1
            if not retry:
                break
            if attempt < attempts:
                self.counters["retries"] += 1
                await asyncio.sleep(self._delay(attempt, retry_after))
        return Failure(reason, attempts=attempt, detail=self._scrub(detail))

    async def _attempt(self, client: httpx.AsyncClient, path: str, body: dict[str, Any],
                       chat: bool) -> Completion | tuple[str, str, float | None, bool]:
        """One try: a Completion, or (reason, detail, retry-after, worth retrying)."""
        url = self.base_url + path
        try:
            response = await client.post(url, json=body)
        except httpx.TimeoutException:
            return "timeout", f"no answer from {url} within {self.settings.timeout}s", None, True
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise BackendError(f"bad --base-url {self.base_url!r}: {exc}") from exc
        except httpx.ConnectError as exc:
            if not self._reached:
                raise BackendError(f"cannot connect to {self.base_url}: {exc}; "
                                   "check --base-url and that the server is running") from exc
            return "connection", f"connection to {url} failed: {exc}", None, True
        except httpx.LocalProtocolError as exc:  # never echo it: it may quote the headers
            raise BackendError(f"cannot send a request to {url}: {type(exc).__name__}; "
                               "check --base-url and the API key variable") from exc
        except httpx.TransportError as exc:
            return "connection", f"connection to {url} dropped: {type(exc).__name__}", None, True
        except httpx.DecodingError:
            return "malformed", f"undecodable response body from {url}", None, True
        self._reached = True
        status = response.status_code
        if status == 200:
            try:
                return parse_body(response.json(), chat)
            except (ValueError, MalformedResponse) as exc:
                return "malformed", f"malformed response body: {str(exc)[:200]}", None, True
        message = _server_message(response)
        if status in FATAL:
            raise BackendError(self._scrub(
                f"{url} answered {status}: {FATAL[status]} ({message}); check the key in "
                f"${self.settings.api_key_env} and the server's access rules"))
        if status == 404:
            raise BackendError(self._scrub(
                f"{url} answered 404 ({message}); check --model {self.model!r} and --base-url"))
        retry = status in RETRYABLE
        return f"http_{status}", f"{url} answered {status}: {message}", _retry_after(
            response), retry

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        backoff = min(self.settings.backoff_max, self.settings.backoff_base * 2 ** (attempt - 1))
        jittered = backoff * random.uniform(0.5, 1.0)
        if retry_after is not None:
            return max(retry_after, 0.0) * random.uniform(1.0, 1.1)
        return jittered

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def close(self) -> None:
        if self._runner is not None:
            for client in self._clients:
                self._runner.run(client.aclose())
            self._runner.close()
        self._runner = None
        self._clients = []


def _server_message(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
        text = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        text = response.text
    return " ".join(str(text or response.reason_phrase).split())[:300]


def _retry_after(response: httpx.Response) -> float | None:
    """Seconds to wait from a Retry-After header (a number or an HTTP date); None when the
    header is absent or unreadable."""
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)
