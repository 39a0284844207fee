"""Retry policy for HTTP backends: Retry-After forms, waits and their bounds, the attempt loop."""

from __future__ import annotations

import asyncio
import email.utils
from collections import Counter

import pytest

from selfinstruct.llm.base import Completion, Failure
from selfinstruct.llm.retry import (
    MAX_RETRY_AFTER,
    FailedAttempt,
    RetryPolicy,
    parse_retry_after,
    with_retries,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("3", 3.0),
        ("0.25", 0.25),
        ("0", 0.0),
        ("-5", 0.0),  # never a negative wait
        ("100000", MAX_RETRY_AFTER),  # clamped
        (email.utils.formatdate(NOW + 30, usegmt=True), 30.0),
        (email.utils.formatdate(NOW - 30, usegmt=True), 0.0),  # a date in the past: at once
        (email.utils.formatdate(NOW + 86400, usegmt=True), MAX_RETRY_AFTER),
    ],
)
def test_retry_after_values(value: str, seconds: float) -> None:
    assert parse_retry_after(value, now=NOW) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "value", [None, "", "soon", "in a minute", "nan", "inf", "Mon, 99 Foo 2024 25:61:00 GMT"]
)
def test_unreadable_retry_after_is_none(value: str | None) -> None:
    assert parse_retry_after(value, now=NOW) is None


def test_backoff_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(max_attempts=8, backoff_base=0.5, backoff_max=3.0)
    assert [policy.backoff(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 3.0, 3.0]


@pytest.mark.parametrize("attempt", [1, 2, 3, 10])
def test_jitter_stays_between_half_and_all_of_the_backoff(attempt: int) -> None:
    policy = RetryPolicy(max_attempts=10, backoff_base=1.0, backoff_max=4.0)
    delays = [policy.delay(attempt) for _ in range(500)]
    backoff = policy.backoff(attempt)
    assert all(0.5 * backoff <= d <= backoff for d in delays)
    assert max(delays) - min(delays) > 0.25 * backoff  # really jittered


def test_retry_after_wins_over_the_backoff() -> None:
    policy = RetryPolicy(max_attempts=3, backoff_base=100.0, backoff_max=100.0)
    delays = [policy.delay(1, retry_after=2.0) for _ in range(500)]
    assert all(2.0 <= d <= 2.2 for d in delays)
    assert policy.delay(1, retry_after=0.0) == 0.0


def test_a_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0, backoff_base=1.0, backoff_max=1.0)


def _run(
    outcomes: list[Completion | FailedAttempt], max_attempts: int
) -> tuple[Completion | Failure, Counter[str], list[float], int]:
    """Run the loop over scripted outcomes; returns the result, counters, waits and calls."""
    script, waits, counters = list(outcomes), [], Counter()

    async def attempt() -> Completion | FailedAttempt:
        return script.pop(0)

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    policy = RetryPolicy(max_attempts=max_attempts, backoff_base=1.0, backoff_max=8.0)
    result = asyncio.run(with_retries(attempt, policy, counters, sleep=sleep))
    return result, counters, waits, len(outcomes) - len(script)


BUSY = FailedAttempt("http_429", "slow down", retry=True, retry_after=0.5)
DOWN = FailedAttempt("http_503", "overloaded", retry=True)
ANSWER = Completion("ok", "stop", 1, 1)


def test_the_loop_retries_until_an_answer() -> None:
    result, counters, waits, calls = _run([BUSY, DOWN, ANSWER], max_attempts=5)
    assert result == ANSWER and calls == 3
    assert counters == {"http_429": 1, "http_503": 1, "retries": 2}
    assert 0.5 <= waits[0] <= 0.55 and 1.0 <= waits[1] <= 2.0


def test_the_loop_stops_when_attempts_run_out() -> None:
    result, counters, waits, calls = _run([BUSY] * 3, max_attempts=3)
    assert result == Failure("http_429", attempts=3, detail="slow down")
    assert counters == {"http_429": 3, "retries": 2} and len(waits) == 2 and calls == 3


def test_the_loop_stops_at_once_on_a_non_retryable_failure() -> None:
    refused = FailedAttempt("http_400", "bad request", retry=False)
    result, counters, _, calls = _run([DOWN, refused, ANSWER], max_attempts=5)
    assert result == Failure("http_400", attempts=2, detail="bad request")
    assert counters == {"http_503": 1, "http_400": 1, "retries": 1} and calls == 2


def test_exceptions_from_an_attempt_pass_through() -> None:
    async def attempt() -> Completion:
        raise RuntimeError("the key was refused")

    policy = RetryPolicy(max_attempts=3, backoff_base=0.0, backoff_max=0.0)
    with pytest.raises(RuntimeError):
        asyncio.run(with_retries(attempt, policy))
