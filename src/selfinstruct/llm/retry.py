"""Retrying HTTP requests: which answers deserve another try, how long to wait before it, and
the attempt loop. Any HTTP backend uses this module, so all of them back off the same way and
count their failures under the same names ("retries", and one reason per failed attempt).

The waits: exponential backoff from `backoff_base`, capped at `backoff_max`, with jitter (half
to all of it) so that many clients refused at once do not come back at once; a server's
Retry-After wins over the backoff, plus up to 10% so the retries still spread out.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from selfinstruct.llm.base import Failure

# Statuses a later attempt may get past: timeouts, conflicts, rate limits, overloaded or
# restarting servers and the proxies in front of them (520-529 are Cloudflare's).
RETRYABLE = frozenset({408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529})
# Statuses no retry can fix, with what they mean for the user.
FATAL = {401: "the API key was refused", 403: "access is forbidden"}
# A longer Retry-After is taken as this: past ten minutes a run should rather fail and resume.
MAX_RETRY_AFTER = 600.0

T = TypeVar("T")


@dataclass(frozen=True)
class FailedAttempt:
    """One attempt that got no usable answer: `reason` is the counter name ("timeout",
    "http_429"...), `retry` whether another attempt may help, `retry_after` the server's wait
    in seconds if it gave one."""

    reason: str
    detail: str
    retry: bool
    retry_after: float | None = None


@dataclass(frozen=True)
class RetryPolicy:
    """How often to try a request and how long to wait between attempts."""

    max_attempts: int
    backoff_base: float
    backoff_max: float

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")

    def backoff(self, attempt: int) -> float:
        """The wait after failed attempt number `attempt` (from 1), before jitter."""
        return min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt`: the jittered backoff, or the
        server's Retry-After (stretched by up to 10%) when it gave one."""
        if retry_after is not None:
            return max(retry_after, 0.0) * random.uniform(1.0, 1.1)
        return self.backoff(attempt) * random.uniform(0.5, 1.0)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header value (a number of seconds or an HTTP date),
    clamped to [0, MAX_RETRY_AFTER]; None when absent or unreadable, so the caller falls
    back to its own backoff. `now` (a Unix time) is for tests."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value).timestamp()
        except (TypeError, ValueError, IndexError, OverflowError):
            return None
        seconds = when - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


async def with_retries(
    attempt: Callable[[], Awaitable[T | FailedAttempt]],
    policy: RetryPolicy,
    counters: Counter[str] | None = None,
    *,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> T | Failure:
    """Call `attempt` until it returns something other than a FailedAttempt, it says a retry
    cannot help, or `policy.max_attempts` are used up; then the last failure as a `Failure`.

    Each failed attempt counts under its reason in `counters`, each wait under "retries".
    Exceptions from `attempt` (answers that end the whole run) pass through untouched.
    """
    counters = Counter() if counters is None else counters
    number, failed = 0, None
    for number in range(1, policy.max_attempts + 1):
        outcome = await attempt()
        if not isinstance(outcome, FailedAttempt):
            return outcome
        failed = outcome
        counters[outcome.reason] += 1
        if not outcome.retry:
            break
        if number < policy.max_attempts:
            counters["retries"] += 1
            await sleep(policy.delay(number, outcome.retry_after))
    assert failed is not None  # max_attempts >= 1
    return Failure(failed.reason, attempts=number, detail=failed.detail)
