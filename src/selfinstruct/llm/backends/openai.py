"""Any OpenAI-compatible server (OpenAI, vLLM, SGLang, llama.cpp, Ollama, TGI) over aiohttp.

Keeps up to `max_concurrency` requests in flight (or as many as the server takes, with
`auto`: llm/concurrency.py), taking a new one from the caller's feed the moment a slot is
free, retries what is worth retrying (429, 5xx, timeouts, dropped connections, malformed
bodies) with `llm.retry` (exponential backoff and jitter, Retry-After honoured; a request
waiting to be retried holds no slot), and stops at once on answers no retry can fix
(401/403, unknown model, a server that cannot be reached at all). The API key is read from an
environment variable and only ever placed in the Authorization header.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from selfinstruct.config import Flag
from selfinstruct.errors import BackendError
from selfinstruct.llm.base import (
    LLM,
    Completion,
    Failure,
    Feed,
    ListFeed,
    OnResult,
    Request,
    Result,
)
from selfinstruct.llm.concurrency import AUTO, ERROR, AdaptiveGate, Gate, outcome_of
from selfinstruct.llm.handback import Handback
from selfinstruct.llm.openai_format import (
    MalformedResponse,
    body_json,
    parse_body,
    request_body,
)
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

if TYPE_CHECKING:  # imported when the backend first sends: aiohttp takes 0.2 s to load, and
    import aiohttp  # the registry reads this module (for its settings) in every run

# aiohttp, not httpx: its C parser costs about 0.4 ms of CPU per request against httpx's
# 2-3 ms, which is the client's limit for short answers (classify) at high concurrency
# (BENCHMARKS.md, "Whole-run throughput").
CONNECT_TIMEOUT = 30.0


@dataclass
class OpenAISettings:
    """The [openai] section: any OpenAI-compatible server."""

    base_url: str = "https://api.openai.com/v1"  # the server, e.g. http://127.0.0.1:8000/v1
    api_key_env: str = "OPENAI_API_KEY"  # the variable to read the key from (never the key itself)
    max_concurrency: int | str = 16  # requests in flight, or auto: adapt to the server
    auto_concurrency_start: int = 4  # auto: where it starts
    auto_concurrency_max: int = 256  # auto: its ceiling
    timeout: float = 120.0  # seconds per attempt
    max_attempts: int = 6  # tries per request before it counts as failed
    backoff_base: float = 1.0  # seconds; doubles per attempt, with jitter
    backoff_max: float = 60.0  # the longest wait between attempts, in seconds
    requests_per_minute: float = 0.0  # client-side limit (0: none)
    tokens_per_minute: float = 0.0  # client-side limit (0: none)

    def problems(self) -> Iterator[tuple[str, str]]:
        if isinstance(self.max_concurrency, str):
            if self.max_concurrency != AUTO:
                yield "max_concurrency", f"must be a number or '{AUTO}'"
        elif not 1 <= self.max_concurrency <= 4096:
            yield "max_concurrency", "must be between 1 and 4096 (or 'auto')"
        if not 1 <= self.auto_concurrency_start <= self.auto_concurrency_max <= 4096:
            yield "auto_concurrency_start", "must be between 1 and auto_concurrency_max (4096)"
        if self.max_attempts < 1:
            yield "max_attempts", "must be >= 1"
        if self.timeout <= 0:
            yield "timeout", "must be > 0"

    @property
    def slots(self) -> int:
        """The most requests ever in flight."""
        if isinstance(self.max_concurrency, str):
            return self.auto_concurrency_max
        return self.max_concurrency

    def gate(self) -> Gate:
        if isinstance(self.max_concurrency, str):
            return AdaptiveGate(
                self.auto_concurrency_start, self.auto_concurrency_max, slow=self.timeout / 2
            )
        return Gate(self.max_concurrency)


class OpenAIBackend(LLM):
    name = "openai"
    Settings = OpenAISettings
    flags = (
        Flag(
            ("--base-url",),
            "openai backend: the server's base URL, e.g. http://127.0.0.1:8000/v1 (default: "
            "OpenAI's).",
            "openai.base_url",
        ),
        Flag(
            ("--api-key-env",),
            "openai backend: environment variable holding the API key (default "
            "OPENAI_API_KEY). The key itself is never stored.",
            "openai.api_key_env",
            metavar="NAME",
        ),
        Flag(
            ("--concurrency",),
            "openai backend: requests kept in flight (16), or 'auto': start low and adapt to "
            "the server from its 429s, Retry-After and latency.",
            "openai.max_concurrency",
            kind="count",
            words=(AUTO,),
            metavar="N|auto",
        ),
        Flag(
            ("--requests-per-minute",),
            "openai backend: client-side request rate limit (0: none).",
            "openai.requests_per_minute",
            kind="float",
            minimum=0,
        ),
        Flag(
            ("--tokens-per-minute",),
            "openai backend: client-side token rate limit (0: none).",
            "openai.tokens_per_minute",
            kind="float",
            minimum=0,
        ),
    )
    supports = frozenset({"completion", "chat", "batch"})
    packages = ("aiohttp",)
    needs_model = True
    parallel = True

    def __init__(self, settings: OpenAISettings, model: str, api_key: str | None) -> None:
        super().__init__(model=model)
        if not model:
            raise BackendError("--backend openai needs --model (the name the server serves)")
        self.settings = settings
        self.base_url = settings.base_url.rstrip("/")
        self.concurrency = settings.slots
        self.gate = settings.gate()
        self._key = api_key or ""
        self.counters: Counter[str] = Counter()
        self._policy = RetryPolicy(
            settings.max_attempts, settings.backoff_base, settings.backoff_max
        )
        self._runner: asyncio.Runner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._proxy: str | None = None
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
    def slots(cls, settings: OpenAISettings) -> int:
        return settings.slots

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
        self.serve(ListFeed(requests, on_result))

    def serve(self, feed: Feed) -> None:
        if self._runner is None:
            self._runner = asyncio.Runner()
        self._runner.run(self._serve(feed))

    async def _serve(self, feed: Feed) -> None:
        """Keep the gate's slots busy from the feed; the results of requests that end
        together go back at once, in ticket order (llm/handback.py)."""
        self._ensure_session()
        back = Handback(feed, self.gate.bind())  # the gate wakes it too when a slot frees

        def fill() -> None:
            room = self.gate.room(back.in_flight)
            if room > 0:
                for ticket, request in feed.take(room):
                    back.track(asyncio.create_task(self._attempts(request)), ticket)

        try:
            fill()
            while back.in_flight:
                await back.wake.wait()
                back.wake.clear()
                back.hand_back()
                if feed.finished:
                    break  # the rest is cancelled below: the server stops generating them
                back.drop_abandoned()
                fill()
        finally:
            await back.cancel()

    def _ensure_session(self) -> aiohttp.ClientSession:
        """One session for every request, with a connection per slot (made in the running
        event loop). The proxy, if the environment names one for the server (HTTPS_PROXY,
        NO_PROXY...), is looked up once here rather than per request."""
        import aiohttp

        if self._session is None:
            self._proxy = environment_proxy(self.base_url)
            headers = {"Authorization": f"Bearer {self._key}"} if self._key else {}
            connector = aiohttp.TCPConnector(limit=self.concurrency, limit_per_host=0)
            timeout = aiohttp.ClientTimeout(
                total=self.settings.timeout, connect=min(CONNECT_TIMEOUT, self.settings.timeout)
            )
            self._session = aiohttp.ClientSession(
                headers=headers, connector=connector, timeout=timeout
            )
            self._limiter = RateLimiter(
                self.settings.requests_per_minute, self.settings.tokens_per_minute
            )
        return self._session

    async def _attempts(self, request: Request) -> Result:
        path = "/chat/completions" if request.is_chat else "/completions"
        body = request_body(request, self.model)
        cost = len(str(body.get("prompt") or body.get("messages"))) / 4 + request.max_tokens
        data = body_json(request, body)  # once: every attempt sends the same bytes

        async def attempt() -> Completion | FailedAttempt:
            assert self._limiter is not None
            await self._limiter.acquire(cost)
            slot = await self.gate.acquire()
            outcome: Completion | FailedAttempt | None = None
            try:
                outcome = await self._attempt(path, data, request.is_chat)
                return outcome
            finally:
                if isinstance(outcome, FailedAttempt):
                    await self.gate.release(slot, outcome_of(outcome.reason), outcome.retry_after)
                else:
                    await self.gate.release(slot, outcome_of(None) if outcome else ERROR)

        result = await with_retries(attempt, self._policy, self.counters, sleep=self.gate.sleep)
        if isinstance(result, Failure):
            return dataclasses.replace(result, detail=self._scrub(result.detail))
        return result

    async def _attempt(self, path: str, data: bytes, chat: bool) -> Completion | FailedAttempt:
        """One try: a Completion, or why not; raises BackendError when no retry can help.
        `data` is the JSON body (llm/openai_format.py `body_json`), sent as aiohttp's `json=`
        would send it."""
        import aiohttp

        url = self.base_url + path
        session = self._ensure_session()
        payload = aiohttp.BytesPayload(data, content_type="application/json", encoding="utf-8")
        try:
            async with session.post(url, data=payload, proxy=self._proxy) as response:
                status = response.status
                raw = await response.read()
                retry_after = response.headers.get("retry-after")
                reason = response.reason or ""
        except TimeoutError:
            return FailedAttempt(
                "timeout", f"no answer from {url} within {self.settings.timeout}s", retry=True
            )
        except (aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError) as exc:
            raise BackendError(f"bad --base-url {self.base_url!r}: {exc}") from exc
        except aiohttp.ClientConnectorError as exc:
            if not self._reached:
                raise BackendError(
                    f"cannot connect to {self.base_url}: {exc.os_error}; "
                    "check --base-url and that the server is running"
                ) from exc
            return FailedAttempt("connection", f"connection to {url} failed: {exc}", retry=True)
        except aiohttp.ClientPayloadError:
            return FailedAttempt("malformed", f"incomplete response body from {url}", retry=True)
        except (aiohttp.ClientError, OSError) as exc:  # dropped or refused mid-way
            return FailedAttempt(
                "connection", f"connection to {url} dropped: {type(exc).__name__}", retry=True
            )
        except ValueError as exc:  # never echo it: it may quote the headers
            raise BackendError(
                f"cannot send a request to {url}: {type(exc).__name__}; "
                "check --base-url and the API key variable"
            ) from exc
        self._reached = True
        return self._answer(url, status, raw, retry_after, reason, chat)

    def _answer(
        self, url: str, status: int, raw: bytes, retry_after: str | None, reason: str, chat: bool
    ) -> Completion | FailedAttempt:
        """What one HTTP answer means: a Completion, a retryable failure, or an error no
        retry can fix (BackendError)."""
        if status == 200:
            try:
                return parse_body(json.loads(raw), chat)
            except (ValueError, MalformedResponse) as exc:
                return FailedAttempt(
                    "malformed", f"malformed response body: {str(exc)[:200]}", retry=True
                )
        message = _server_message(raw, reason)
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
            retry_after=parse_retry_after(retry_after),
        )

    def flow_note(self) -> str:
        gate = self.gate
        if not isinstance(gate, AdaptiveGate):
            return ""
        return (
            f"concurrency auto: {gate.slots} in flight at the end (started at "
            f"{self.settings.auto_concurrency_start}, peak {gate.peak}, {gate.cuts} cuts on "
            "429/overload)"
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._key, "***") if self._key else text

    def close(self) -> None:
        if self._runner is not None:
            if self._session is not None:
                self._runner.run(self._session.close())
            self._runner.close()
        self._runner = None
        self._session = None
        self.gate = self.settings.gate()


def environment_proxy(url: str) -> str | None:
    """The proxy the environment names for a URL (None: connect directly)."""
    import urllib.parse
    import urllib.request  # here: 70 ms to import, and only a sending backend needs it

    parts = urllib.parse.urlsplit(url)
    scheme, host = parts.scheme, parts.hostname
    if not host or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


def _server_message(raw: bytes, reason: str) -> str:
    """The error message a server put in its body (OpenAI's shape or plain text)."""
    text: Any = raw.decode("utf-8", errors="replace")
    try:
        error = json.loads(text).get("error")
        text = error.get("message") if isinstance(error, dict) else error
    except (ValueError, AttributeError):
        pass
    return " ".join(str(text or reason).split())[:300]
