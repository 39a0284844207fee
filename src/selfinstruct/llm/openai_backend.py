"""Any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp, Ollama, TGI) over httpx.

Keeps up to `max_concurrency` requests in flight, retries what is worth retrying (429, 5xx,
timeouts, dropped connections, malformed bodies) with `llm.retry` (exponential backoff and
jitter, Retry-After honoured), and stops at once on answers no retry can fix (401/403,
unknown model, a server that cannot be reached at all). The API key is read from an
environment variable and only ever placed in the Authorization header.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfinstruct.errors import BackendError
from selfinstruct.llm.base import LLM, Completion, Failure, OnResult, Request, Result
from selfinstruct.llm.openai_format import MalformedResponse, parse_body, request_body
from selfinstruct.llm.rate_limit import RateLimiter
from selfinstruct.llm.retry import (
    FATAL,
    RETRYABLE,
    FailedAttempt,
    RetryPolicy,
    parse_retry_after,
    with_retries,
)
from selfinstruct.llm.urls import public_url

if TYPE_CHECKING:  # imported when the backend first sends: httpx takes 0.2 s to load, and the
    import httpx  # registry reads this module (for its settings) in every run

# httpcore's pool does O(connections^2) bookkeeping per request (httpcore 1.0.9, see
# encode/httpcore#1035): above ~48 connections in one pool the client's CPU, not the server,
# sets the pace. So the connections are split over several clients of at most this many.
CONNECTIONS_PER_CLIENT = 8


@dataclass
class OpenAISettings:
    """The [openai] section: any OpenAI-compatible server."""

    base_url: str = "https://api.openai.com/v1"
    api_key_env: str = "OPENAI_API_KEY"
    max_concurrency: int = 16
    timeout: float = 120.0
    max_attempts: int = 6
    backoff_base: float = 1.0
    backoff_max: float = 60.0
    requests_per_minute: float = 0.0
    tokens_per_minute: float = 0.0

    def problems(self) -> Iterator[tuple[str, str]]:
        if not 1 <= self.max_concurrency <= 4096:
            yield "max_concurrency", "must be between 1 and 4096"
        if self.max_attempts < 1:
            yield "max_attempts", "must be >= 1"
        if self.timeout <= 0:
            yield "timeout", "must be > 0"


class OpenAIBackend(LLM):
    name = "openai"
    Settings = OpenAISettings
    supports = frozenset({"completion", "chat", "batch"})
    packages = ("httpx",)
    needs_model = True

    def __init__(self, settings: OpenAISettings, model: str, api_key: str | None) -> None:
        super().__init__(model=model)
        if not model:
            raise BackendError("--backend openai needs --model (the name the server serves)")
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.concurrency = settings.max_concurrency
        self._key = api_key or ""
        self.counters: Counter[str] = Counter()
        self._policy = RetryPolicy(
            settings.max_attempts, settings.backoff_base, settings.backoff_max
        )
        self._runner: asyncio.Runner | None = None
        self._clients: list[httpx.AsyncClient] = []
        self._limiter: RateLimiter | None = None
        self._reached = False

    @classmethod
    def create(cls, model: str, settings: OpenAISettings) -> OpenAIBackend:
        """The backend with the API key from the environment variable the settings name."""
        key = (os.environ.get(settings.api_key_env) or "").strip()
        if key and not all(32 < ord(ch) < 127 for ch in key):
            raise BackendError(
                f"the API key in ${settings.api_key_env} contains spaces, control "
                "or non-ASCII characters; set it again without them"
            )
        return cls(settings, model, key or None)

    @classmethod
    def describe(cls, model: str, settings: OpenAISettings, style: str) -> dict[str, Any]:
        return {"base_url": public_url(settings.base_url)}

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
        import httpx

        if not self._clients:
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            count = -(-self.concurrency // CONNECTIONS_PER_CLIENT)
            ssl_context = httpx.create_ssl_context()  # shared: loaded once, not per client
            for j in range(count):
                size = len(range(j, self.concurrency, count))  # the slots _stream gives it
                limits = httpx.Limits(max_connections=size, max_keepalive_connections=size)
                self._clients.append(
                    httpx.AsyncClient(
                        headers=headers,
                        limits=limits,
                        timeout=self.settings.timeout,
                        verify=ssl_context,
                    )
                )
            self._limiter = RateLimiter(
                self.settings.requests_per_minute, self.settings.tokens_per_minute
            )
        return self._clients

    async def _attempts(self, client: httpx.AsyncClient, request: Request) -> Result:
        path = "/chat/completions" if request.is_chat else "/completions"
        body = request_body(request, self.model)
        cost = len(str(body.get("prompt") or body.get("messages"))) / 4 + request.max_tokens

        async def attempt() -> Completion | FailedAttempt:
            assert self._limiter is not None
            await self._limiter.acquire(cost)
            return await self._attempt(client, path, body, request.is_chat)

        result = await with_retries(attempt, self._policy, self.counters)
        if isinstance(result, Failure):
            return dataclasses.replace(result, detail=self._scrub(result.detail))
        return result

    async def _attempt(
        self, client: httpx.AsyncClient, path: str, body: dict[str, Any], chat: bool
    ) -> Completion | FailedAttempt:
        """One try: a Completion, or why not; raises BackendError when no retry can help."""
        import httpx

        url = self.base_url + path
        try:
            response = await client.post(url, json=body)
        except httpx.TimeoutException:
            return FailedAttempt(
                "timeout", f"no answer from {url} within {self.settings.timeout}s", retry=True
            )
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise BackendError(f"bad --base-url {self.base_url!r}: {exc}") from exc
        except httpx.ConnectError as exc:
            if not self._reached:
                raise BackendError(
                    f"cannot connect to {self.base_url}: {exc}; "
                    "check --base-url and that the server is running"
                ) from exc
            return FailedAttempt("connection", f"connection to {url} failed: {exc}", retry=True)
        except httpx.LocalProtocolError as exc:  # never echo it: it may quote the headers
            raise BackendError(
                f"cannot send a request to {url}: {type(exc).__name__}; "
                "check --base-url and the API key variable"
            ) from exc
        except httpx.TransportError as exc:
            return FailedAttempt(
                "connection", f"connection to {url} dropped: {type(exc).__name__}", retry=True
            )
        except httpx.DecodingError:
            return FailedAttempt("malformed", f"undecodable response body from {url}", retry=True)
        self._reached = True
        status = response.status_code
        if status == 200:
            try:
                return parse_body(response.json(), chat)
            except (ValueError, MalformedResponse) as exc:
                return FailedAttempt(
                    "malformed", f"malformed response body: {str(exc)[:200]}", retry=True
                )
        message = _server_message(response)
        if status in FATAL:
            raise BackendError(
                self._scrub(
                    f"{url} answered {status}: {FATAL[status]} ({message}); check the key in "
                    f"${self.settings.api_key_env} and the server's access rules"
                )
            )
        if status == 404:
            raise BackendError(
                self._scrub(
                    f"{url} answered 404 ({message}); check --model {self.model!r} and --base-url"
                )
            )
        return FailedAttempt(
            f"http_{status}",
            f"{url} answered {status}: {message}",
            retry=status in RETRYABLE,
            retry_after=parse_retry_after(response.headers.get("retry-after")),
        )

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
