"""Pool scoring spread over threads: the pool's items cut into contiguous chunks.

rapidfuzz's `cdist` releases the GIL while it scores, but its own `workers` split the query
rows, and a block of 5-9 candidates is a single SIMD batch there: one thread does all the
work. Cutting the pool's items into chunks instead shares the work out whatever the block's
size, and every pair is still scored on its own, so the scores are the very numbers one call
would give.

The caller's thread and workers - 1 pool threads take chunks of up to MAX_CHUNK items until
none are left; the last ones get smaller (down to MIN_CHUNK), so the threads finish close
together, also when another process slows one core down. The threads start on first use and
stop at `close`.

Measured on a 2-core VM, 8 candidates a block: a chunk costs ~35 us beyond its pairs
(rapidfuzz builds the candidates' bit vectors per call); chunks of up to 4,096 items keep
their arrays in the 1 MB L2 cache and scaled best at 50,000 items (1.6-1.9x, against
1.4-1.6x with chunks of up to 16,384); two threads pay from about 8,000 items (1.0x at
4,096, 1.2x at 8,192, 1.4x at 16,384).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from itertools import pairwise
from typing import Generic, TypeVar

T = TypeVar("T")

CHUNK = 4096  # items per chunk on one thread
PARALLEL_FROM = 8192  # fewer items are scored on one thread: waking a thread (~0.3 ms here)
# and sharing the GIL cost about what a second core saves
MIN_CHUNK = 1024  # the smallest chunk handed to a thread (the last ones)
MAX_CHUNK = 4096  # the largest


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve(workers: int) -> int:
    """Threads for a `workers` setting: 0 means every core, n > 0 means n."""
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 0:
        raise ValueError(
            f"workers must be 0 (every core) or a positive number of threads, got {workers!r}"
        )
    return workers or cores()


def chunks(size: int, least: int) -> list[tuple[int, int]]:
    """range(size) cut into contiguous (start, stop) chunks, in order, each of `least` to
    2 x least items (one chunk when size is below 2 x least)."""
    parts = max(1, size // least)
    return list(pairwise(size * i // parts for i in range(parts + 1)))


class Chunks:
    """Runs a function over contiguous chunks of range(size) on up to `workers` threads."""

    def __init__(self, workers: int) -> None:
        self.workers = resolve(workers)
        self._executor: ThreadPoolExecutor | None = None
        self._pid = 0

    def run(self, work: Callable[[int, int], None], size: int) -> None:
        """Call work(start, stop) for chunks that cover range(size) once; return when all
        are done (an error is raised once every thread has stopped taking chunks)."""
        if self.workers == 1 or size < PARALLEL_FROM:
            for start, stop in chunks(size, CHUNK):
                work(start, stop)
            return
        queue = _Guided(size, self.workers)
        executor = self._threads()
        pending: list[Future[None]] = [
            executor.submit(queue.drain, work) for _ in range(self.workers - 1)
        ]
        try:
            queue.drain(work)
        finally:
            queue.stop()
            for future in pending:
                future.exception()  # wait: no thread may still write once we return
        for future in pending:
            future.result()

    def close(self) -> None:
        """Stop the threads (they start again if `run` needs them later)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def _threads(self) -> ThreadPoolExecutor:
        if self._executor is None or self._pid != os.getpid():  # a forked child has none
            self._executor = ThreadPoolExecutor(self.workers - 1, thread_name_prefix="rouge")
            self._pid = os.getpid()
        return self._executor


class _Guided:
    """Hands out chunks of range(size) in order, each 1 / (2 x threads) of what is left, kept
    within MIN_CHUNK..MAX_CHUNK (and never leaving less than MIN_CHUNK behind)."""

    def __init__(self, size: int, threads: int) -> None:
        self._size = size
        self._share = 2 * threads
        self._next = 0
        self._lock = threading.Lock()

    def take(self) -> tuple[int, int] | None:
        with self._lock:
            start, left = self._next, self._size - self._next
            if left <= 0:
                return None
            count = min(MAX_CHUNK, max(MIN_CHUNK, left // self._share))
            if left - count < MIN_CHUNK:
                count = left
            self._next = start + count
            return start, start + count

    def stop(self) -> None:
        with self._lock:
            self._next = self._size

    def drain(self, work: Callable[[int, int], None]) -> None:
        while (chunk := self.take()) is not None:
            try:
                work(*chunk)
            except BaseException:
                self.stop()  # the others finish their chunk and stop too
                raise


class Once(Generic[T]):
    """A value made by the first thread that asks for it (the others wait for it): work the
    chunks share is done after the threads were woken, while the first chunk is scored."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: list[T] = []
        self._lock = threading.Lock()

    def get(self) -> T:
        if not self._made:
            with self._lock:
                if not self._made:
                    self._made.append(self._make())
        return self._made[0]
