"""Client-side limits on requests and tokens per minute (token buckets, asyncio).

A bucket holds a one-second burst and refills at the rest of the per-minute allowance, so no
60-second window carries more than the limit (a request larger than the burst may start
once the bucket holds a burst's worth; its excess becomes debt that later requests wait out).
"""

from __future__ import annotations

import asyncio
import time


class Bucket:
    """A per-minute allowance; 0 means unlimited."""

    def __init__(self, per_minute: float) -> None:
        self.capacity = max(1.0, per_minute / 60.0) if per_minute > 0 else 0.0
        refill = per_minute - self.capacity if per_minute > self.capacity else per_minute / 2
        self.rate = refill / 60.0
        self.level = self.capacity
        self.stamp = time.monotonic()

    def wait_time(self, cost: float) -> float:
        """0 and the cost taken when the bucket allows it now, else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        need = min(cost, self.capacity)
        if self.level >= need:
            self.level -= cost
            return 0.0
        return (need - self.level) / self.rate

    def give_back(self, cost: float) -> None:
        self.level += cost


class RateLimiter:
    def __init__(self, requests_per_minute: float = 0, tokens_per_minute: float = 0) -> None:
        self.requests = Bucket(requests_per_minute)
        self.tokens = Bucket(tokens_per_minute)
        self._lock = asyncio.Lock()
        self.unlimited = self.requests.rate <= 0 and self.tokens.rate <= 0

    async def acquire(self, tokens: float) -> None:
        """Wait until one more request of about `tokens` tokens fits both limits."""
        if self.unlimited:  # the usual case: no lock to take for every request
            return
        async with self._lock:
            while True:
                delay = self.requests.wait_time(1)
                if delay == 0.0:
                    delay = self.tokens.wait_time(tokens)
                    if delay == 0.0:
                        return
                    self.requests.give_back(1)
                await asyncio.sleep(delay)
