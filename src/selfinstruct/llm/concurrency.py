"""How many requests a server backend keeps in flight: a fixed number, or `auto`.

`auto` adapts the number to the server (additive increase, multiplicative decrease), so a
user need not know its capacity:

* It starts low (`start`) and, while no request has been refused, grows by one for every
  answer to a request sent while at least half the limit was in use (about doubling once
  per round trip; a caller that has too few requests to fill the limit does not grow it).
* A 429, an overloaded answer (503, 529), a timeout, or an answer slower than `slow`
  seconds cuts the limit to `BACK_OFF` of the number in flight when the refused request
  was sent, and remembers that number as the server's ceiling. Requests sent before the
  cut that are refused too belong to the same event and cut nothing more. A Retry-After
  holds any growth until it has passed.
* Below the ceiling it grows by one per round trip (of a full limit); at or above it, by
  one every
  1 / `PROBE` round trips, so a server whose capacity is fixed refuses seldom, and one that
  gained capacity is found again.

The limit never exceeds `maximum`. A request waiting to be retried holds no slot.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

BACK_OFF = 0.9  # the limit after a refusal, as a share of the number then in flight
PROBE = 0.25  # growth per round trip at or above the last ceiling
AUTO = "auto"

# What an attempt's outcome says about the server's load.
OK, THROTTLED, ERROR = "ok", "throttled", "error"


@dataclass(frozen=True)
class Slot:
    """One request in flight: when it was sent, and how many were in flight with it."""

    sent: float
    level: int


class Gate:
    """A fixed number of requests in flight."""

    def __init__(self, limit: int) -> None:
        self.limit = float(limit)
        self.maximum = limit
        self.in_flight = 0
        self.waiting = 0  # requests sleeping before a retry (they hold no slot)
        self.queued = 0  # requests waiting in `acquire` for a slot
        self.peak = 0
        self._condition: asyncio.Condition | None = None
        # Set when a slot frees while its request lives on (it waits to retry).
        self.changed: asyncio.Event | None = None

    @property
    def slots(self) -> int:
        return max(1, int(self.limit))

    def room(self, tasks: int) -> int:
        """How many more requests a caller running `tasks` of them may start."""
        return self.slots - (tasks - self.waiting)

    async def acquire(self) -> Slot:
        """A slot; waits (behind any request already waiting) while all are in use. The
        usual case, a free slot and nobody waiting, takes no lock: nothing can come between
        the check and the taking (one event loop, no await)."""
        if not self.queued and self.in_flight < self.slots:
            return self._take()
        condition = self._ready()
        self.queued += 1
        try:
            async with condition:
                await condition.wait_for(lambda: self.in_flight < self.slots)
                return self._take()
        finally:
            self.queued -= 1

    def _take(self) -> Slot:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        return Slot(time.monotonic(), self.in_flight)

    async def release(self, slot: Slot, outcome: str, retry_after: float | None = None) -> None:
        self.in_flight -= 1
        self.adapt(slot, outcome, retry_after)
        if self.queued:
            condition = self._ready()
            async with condition:
                condition.notify_all()
        # No `changed` here: the request either ends (which wakes its caller anyway) or
        # waits to retry (`sleep` signals).

    async def sleep(self, seconds: float) -> None:
        """Wait before a retry without holding a slot."""
        self.waiting += 1
        self._signal()
        try:
            await asyncio.sleep(seconds)
        finally:
            self.waiting -= 1

    def adapt(self, slot: Slot, outcome: str, retry_after: float | None) -> None:
        """A fixed gate never changes."""

    def describe(self) -> str:
        return str(self.slots)

    def bind(self) -> asyncio.Event:
        """Create the asyncio parts (in the running event loop); returns `changed`."""
        self._ready()
        assert self.changed is not None  # made with the condition
        return self.changed

    def _ready(self) -> asyncio.Condition:
        if self._condition is None:
            self._condition = asyncio.Condition()
            self.changed = asyncio.Event()
        return self._condition

    def _signal(self) -> None:
        if self.changed is not None:
            self.changed.set()


class AdaptiveGate(Gate):
    """`auto`: the limit follows the server's answers (see the module docstring)."""

    def __init__(self, start: int, maximum: int, slow: float) -> None:
        super().__init__(start)
        self.maximum = maximum
        self.slow = slow
        self.ceiling: int | None = None
        self.last_cut = float("-inf")
        self.hold_until = float("-inf")
        self.cuts = 0

    def adapt(self, slot: Slot, outcome: str, retry_after: float | None) -> None:
        now = time.monotonic()
        if outcome == OK and now - slot.sent > self.slow:
            outcome = THROTTLED
        if outcome == THROTTLED:
            self._cut(slot, now, retry_after)
        elif outcome == OK and now >= self.hold_until and 2 * slot.level >= self.slots:
            self._grow()

    def _cut(self, slot: Slot, now: float, retry_after: float | None) -> None:
        if retry_after:
            self.hold_until = max(self.hold_until, now + retry_after)
        if slot.sent <= self.last_cut:
            return  # sent before the last cut: the same overload
        self.ceiling = max(1, slot.level - 1)
        self.limit = max(1.0, min(self.limit, float(slot.level)) * BACK_OFF)
        self.last_cut = now
        self.cuts += 1

    def _grow(self) -> None:
        if self.ceiling is None:
            step = 1.0
        elif self.limit < self.ceiling:
            step = 1.0 / self.limit
        else:
            step = PROBE / self.limit
        self.limit = min(float(self.maximum), self.limit + step)

    def describe(self) -> str:
        return f"auto (now {self.slots}, at most {self.maximum})"


def outcome_of(reason: str | None) -> str:
    """OK for an answer; THROTTLED for a failure that says the server is overloaded."""
    if reason is None:
        return OK
    if reason in ("http_429", "http_503", "http_529", "timeout"):
        return THROTTLED
    return ERROR
