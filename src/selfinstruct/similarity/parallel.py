"""Pool scoring spread over processes: the pool's items cut into contiguous chunks, scored here
and in helper processes (`processes.py`).

rapidfuzz's `cdist` releases the GIL while it scores, but its own `workers` split the query
rows, and a block of 5-9 candidates is a single SIMD batch there: one thread does all the
work. Cutting the pool's items into chunks instead shares the work out whatever the block's
size, and every pair is still scored on its own, so the scores are the very numbers one call
would give. The chunks go to processes, not threads: rapidfuzz holds the GIL while it reads
the pool's strings, about half the work on short instructions, and two threads reached only
1.3-1.6x one thread on two cores (two processes: 1.9-2.0x).

The pool's range is cut into chunks, each 1 / (2 x processes) of what is left, kept within
MIN_CHUNK..MAX_CHUNK, largest first; every process takes the next chunk nobody has taken
(`processes.walk`), so everyone finishes close together, also when another program slows one
core down. The helpers start the first time a block is large enough (PARALLEL_FROM items),
take part once they have started (about 0.3 s; until then this process scores alone), and stop
at `close`, when the pool is collected, or at exit. A helper that fails is dropped, with a
warning, and whatever it left undone is scored here.
"""

from __future__ import annotations

import logging
import os
import weakref
from collections.abc import Callable
from functools import partial
from itertools import pairwise

import numpy as np

from selfinstruct.similarity.processes import Helper, HelperGone, Segment, walk

log = logging.getLogger(__name__)

CHUNK = 4096  # items per chunk when this process scores alone
PARALLEL_FROM = 8192  # fewer items are scored here alone: below this a block takes ~2 ms,
# and handing it to a helper (a message each way, its scores copied back) eats the gain
MIN_CHUNK = 1024  # the smallest chunk handed out (the last ones)
MAX_CHUNK = 4096  # the largest


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve(workers: int) -> int:
    """Processes for a `workers` setting: 0 means every core, n > 0 means n."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(
            f"workers must be 0 (every core) or a positive number of processes, got {workers!r}"
        )
    return workers or cores()


def chunks(size: int, least: int) -> list[tuple[int, int]]:
    """range(size) cut into contiguous (start, stop) chunks, in order, each of `least` to
    2 x least items (one chunk when size is below 2 x least)."""
    parts = max(1, size // least)
    return list(pairwise(size * i // parts for i in range(parts + 1)))


def guided(size: int, processes: int) -> list[tuple[int, int]]:
    """range(size) cut into chunks in order, each 1 / (2 x processes) of what is left, kept
    within MIN_CHUNK..MAX_CHUNK (and never leaving less than MIN_CHUNK behind)."""
    cut, start = [], 0
    while start < size:
        left = size - start
        count = min(MAX_CHUNK, max(MIN_CHUNK, left // (2 * processes)))
        if left - count < MIN_CHUNK:
            count = left
        cut.append((start, start + count))
        start += count
    return cut


Local = Callable[[int, int], None]  # scores items first..last of the block here


class Spread:
    """Scores a block of candidates against a range of the pool on up to `workers` processes:
    this one and workers - 1 helpers."""

    def __init__(self, workers: int) -> None:
        self.workers = resolve(workers)
        self._helpers: list[Helper] = []
        self._pid = os.getpid()
        self._failed = False
        self._segment = Segment()
        self._finalizer = weakref.finalize(self, _stop, self._helpers, self._segment)

    def run(
        self, local: Local, out: np.ndarray, items: list[str], encoded: list[str], start: int
    ) -> None:
        """Fill out (a row per candidate of `encoded`, a column per pool item from `start`):
        local(first, last) scores here, helpers score from their copy of `items`."""
        width = out.shape[1]
        helpers = self._ready() if self.workers > 1 and width >= PARALLEL_FROM else []
        if not helpers:
            for first, last in chunks(width, CHUNK):
                local(first, last)
            return
        cut = guided(width, len(helpers) + 1)
        layout = self._segment.lay_out(out.shape, cut)
        try:
            for helper in helpers:
                self._guard(partial(helper.begin, items, (encoded, start), self._segment))
            mine = set(walk(cut, layout, local))
            for helper in helpers:
                self._guard(helper.finish)
            for index, (first, last) in enumerate(cut):
                if index in mine:
                    continue
                if layout.done[index]:
                    out[:, first:last] = layout.scores[:, first:last]
                else:  # claimed by a helper that died
                    local(first, last)
        except BaseException:
            del layout
            self.close()  # helpers may still be writing: start afresh next time
            raise

    def wait_ready(self, timeout: float = 30.0) -> int:
        """Start the helpers if need be and wait for them; the number ready."""
        if self.workers == 1:
            return 0
        self._ready()
        return sum(helper.wait_ready(timeout) for helper in self._helpers)

    def close(self) -> None:
        """Stop the helpers (they start again if `run` needs them later)."""
        _stop(self._helpers, self._segment)

    def _ready(self) -> list[Helper]:
        """The helpers that have started; starts them the first time."""
        if self._pid != os.getpid():  # a forked child must not use its parent's helpers
            self._helpers.clear()
            self._segment.forget()
            self._pid = os.getpid()
        if self._failed:
            return []
        if not self._helpers:
            try:
                self._helpers.extend(Helper() for _ in range(self.workers - 1))
            except OSError as error:
                self._fail(f"could not start a helper process ({error})")
                return []
        if any(helper.gone for helper in self._helpers):
            self._fail("a helper process ended")
            return []
        return [helper for helper in self._helpers if helper.is_ready()]

    def _guard(self, step: Callable[[], None]) -> None:
        """Run a step with a helper; a helper that is gone is left out from then on."""
        try:
            step()
        except HelperGone:
            self._fail("a helper process ended")

    def _fail(self, why: str) -> None:
        if not self._failed:
            log.warning("ROUGE-L scoring continues in this process alone: %s", why)
        self._failed = True
        _stop_helpers(self._helpers)  # the segment stays: this block's views still read it


def _stop(helpers: list[Helper], segment: Segment) -> None:
    _stop_helpers(helpers)
    segment.close()


def _stop_helpers(helpers: list[Helper]) -> None:
    for helper in helpers:
        helper.stop()
    helpers.clear()
