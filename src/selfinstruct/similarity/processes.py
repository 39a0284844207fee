"""Helper processes that score chunks of the pool: the parent's side (`Helper`, `Segment`), the
rule every process follows to share a block's chunks (`walk`), and the helper's own loop
(the helper's own loop is `helper.py`, run as `python -m selfinstruct.similarity.helper R W`).

Threads could not use a second core well: rapidfuzz turns every pool item into its own string
view while holding the GIL, about half of a block's time against short items, so two threads
reached 1.3-1.6x one. A process has a GIL of its own.

A helper keeps a copy of the pool's encoded items (sent as the pool grows, before the block
that needs them). For each block it is told the candidates, the chunks (contiguous ranges of
pool items, largest first) and a shared-memory segment that holds a claim and a done flag per
chunk and the block's scores (a row per candidate, a column per pool item). Every process,
the parent included, walks the chunks in order and scores each one nobody has claimed yet;
the helper then answers with an empty message. No message per chunk, and no lock: two
processes that claim a chunk at the same moment both score it, and write the same floats (the
same code on the same numbers). A process skips a chunk only when it sees it claimed, and a
process that claims a chunk scores it, so none is left out unless a helper dies; the parent
then scores whatever is not marked done.

A helper is started with `subprocess` and talks over two pipes of its own, so it imports only
this module (not the user's main script) and never forks a process that runs threads. It
ignores SIGINT (the parent decides what Ctrl-C stops) and leaves when its pipe closes: when
the parent stops it, is collected, or dies. The segment belongs to the parent: its resource
tracker removes it even when the parent is killed.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from pathlib import Path
from typing import Any

import numpy as np

SPIN_SECONDS = 0.002  # how long a process polls for the other's message before it sleeps
STOP_WAIT = 5.0  # seconds a helper gets to leave before it is killed
READY = "ready"
HELPER_MODULE = "selfinstruct.similarity.helper"  # the helper's program (helper.py)


class HelperGone(Exception):
    """The helper process ended or its pipe broke."""


class Helper:
    """One helper process."""

    def __init__(self) -> None:
        child_reads, parent_writes = os.pipe()
        parent_reads, child_writes = os.pipe()
        self.process = subprocess.Popen(
            [sys.executable, "-m", HELPER_MODULE, str(child_reads), str(child_writes)],
            pass_fds=(child_reads, child_writes),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=_child_environment(),
        )
        os.close(child_reads)
        os.close(child_writes)
        self._send = Connection(parent_writes, readable=False)
        self._receive = Connection(parent_reads, writable=False)
        self.ready = False
        self.synced = 0  # pool items the helper holds
        self.busy = False  # told of a block it has not answered yet
        self.gone = False

    def is_ready(self) -> bool:
        """Whether the helper has started and said so (never waits)."""
        return self.wait_ready(0.0)

    def wait_ready(self, timeout: float) -> bool:
        """Wait up to timeout seconds for the helper to start."""
        if not self.ready and not self.gone:
            try:
                if self._receive.poll(timeout):
                    self.ready = self._receive.recv() == READY
            except (EOFError, OSError):
                self.gone = True
        return self.ready and not self.gone

    def begin(self, pool_items: list[str], block: tuple[list[str], int], segment: Segment) -> None:
        """Send the items the helper lacks, then the block (candidates, first pool item) to
        score in the segment's chunks."""
        if self.synced < len(pool_items):
            self._post(("items", pool_items[self.synced :]))
            self.synced = len(pool_items)
        self._post(("block", *block, segment.name, segment.shape, segment.chunks))
        self.busy = True

    def finish(self) -> None:
        """Wait until the helper has walked the block's chunks."""
        if self.busy:
            try:
                spin(self._receive, SPIN_SECONDS)
                self._receive.recv_bytes()
            except (EOFError, OSError) as error:
                raise self._lost() from error
            self.busy = False

    def stop(self) -> None:
        """Tell the helper to leave, and make sure it does."""
        self.gone = True
        for connection in (self._send, self._receive):
            with contextlib.suppress(OSError):
                connection.close()
        try:
            self.process.wait(STOP_WAIT)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def _post(self, message: tuple[Any, ...]) -> None:
        try:
            self._send.send(message)
        except (OSError, ValueError) as error:
            raise self._lost() from error

    def _lost(self) -> HelperGone:
        self.gone = True
        return HelperGone(f"ROUGE-L helper process {self.process.pid} ended")


Chunks = list[tuple[int, int]]


class Segment:
    """Shared memory for one block at a time: a claim and a done flag per chunk, then the
    scores. Grown as blocks grow (a new segment; helpers switch to it with the next block)."""

    def __init__(self) -> None:
        self._memory: SharedMemory | None = None
        self.shape = (0, 0)
        self.chunks: Chunks = []

    @property
    def name(self) -> str:
        assert self._memory is not None
        return self._memory.name

    def lay_out(self, shape: tuple[int, int], chunks: Chunks) -> Layout:
        """The segment laid out for a block of this shape cut into these chunks, every flag
        cleared; grown if need be."""
        size = _offset(len(chunks)) + max(8, shape[0] * shape[1] * 8)
        if self._memory is None or self._memory.size < size:
            self.close()
            self._memory = SharedMemory(create=True, size=size + size // 2)
        self.shape, self.chunks = shape, chunks
        layout = Layout(self._memory.buf, shape, len(chunks))
        layout.claimed[:] = 0
        layout.done[:] = 0
        return layout

    def forget(self) -> None:
        """Drop the segment without removing it (a forked child: it is the parent's)."""
        self._memory = None

    def close(self) -> None:
        if self._memory is not None:
            with contextlib.suppress(BufferError):  # views still out: unmapped when they go
                self._memory.close()
            self._memory.unlink()
            self._memory = None


class Layout:
    """Views of a segment's buffer: claimed and done flags (a byte per chunk), then the
    block's scores (float64, 8-byte aligned)."""

    def __init__(self, buffer: Any, shape: tuple[int, int], count: int) -> None:
        flags = np.ndarray((2, count), dtype=np.uint8, buffer=buffer)
        self.claimed, self.done = flags[0], flags[1]
        self.scores = np.ndarray(shape, dtype=np.float64, buffer=buffer, offset=_offset(count))


def _offset(count: int) -> int:
    return -(-2 * count // 8) * 8


def walk(chunks: Chunks, layout: Layout, score: Callable[[int, int], None]) -> list[int]:
    """Score, in order, every chunk no process has claimed yet; the chunks scored."""
    mine = []
    claimed, done = layout.claimed, layout.done
    for index, (first, last) in enumerate(chunks):
        if claimed[index]:
            continue
        claimed[index] = 1
        score(first, last)
        done[index] = 1
        mine.append(index)
    return mine


def attach(name: str) -> SharedMemory:
    """The parent's segment, in a helper. The parent's resource tracker owns it: the helper's
    must not remove it when the helper leaves (Python < 3.13 registers every attach)."""
    memory = SharedMemory(name)
    resource_tracker.unregister(memory._name, "shared_memory")  # type: ignore[attr-defined]
    return memory


def spin(connection: Connection, seconds: float) -> None:
    """Poll for a message for up to `seconds` before the caller blocks on it. A process that
    sleeps in a pipe read is woken onto the writer's core (Linux wakes a pipe's reader there,
    expecting the writer to sleep next), and the two then share one core until the scheduler
    moves one: measured, block scoring in two processes ran at 1.1-1.4x one instead of 1.7x.
    Blocks come a few milliseconds apart while a pool is scored in earnest, so a short spin
    keeps each process awake on its own core."""
    deadline = time.perf_counter() + seconds
    while not connection.poll() and time.perf_counter() < deadline:
        pass


def _child_environment() -> dict[str, str]:
    """This environment, with the directory this package was imported from first on the
    helper's path (the parent may have found it through a path set at run time)."""
    root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (root, env.get("PYTHONPATH")) if p)
    return env
