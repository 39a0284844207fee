"""Client-side limits on requests and tokens per minute (token buckets, asyncio)."""

from __future__ import annotations

import asyncio
import time


class Bucket:
    """Holds up to `per_minute` units, refilled continuously; 0 means unlimited."""

    def __init__(self, per_minute: float) -> None:
        self.rate = per_minute / 60.0
        self.capacity = per_minute
        self.level = per_minute
        self.stamp = time.monotonic()

    def wait_time(self, cost: float) -> float:
        if self.rate <= 0:
            return 0.0
        now = time.monotonic()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        cost = min(cost, self.capacity)
        if self.level >= cost:
            self.level -= cost
            return 0.0
        return (cost - self.level) / self.rate


class RateLimiter:
    def __init__(self, requests_per_minute: float = 0, tokens_per_minute: float = 0) -> None:
        self.requests = Bucket(requests_per_minute)
        self.tokens = Bucket(tokens_per_minute)
        self._lock = asyncio.Lock()

    async def acquire(self, tokens: float) -> None:
        """Wait until one more request of about `tokens` tokens fits both limits."""
        async with self._lock:
            while True:
                delay = max(self.requests.wait_time(1), 0.0)
                if delay == 0.0:
                    delay = self.tokens.wait_time(tokens)
                    if delay == 0.0:
                        return
                    self.requests.level += 1  # give back the request slot taken above
                await asyncio.sleep(delay)
