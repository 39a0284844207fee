"""The run's report built beside the stage that writes the dataset, on the machine's other
core, instead of after it.

`prepare` is one process doing one thing after another: build the dataset, write its files
and the card, then the report, most of whose time (reading the run, encoding and compressing
its records) needs nothing prepare does. So before prepare starts, `Beside.start` forks a
child that opens the store read-only (its own connection: it never touches the parent's),
builds the dataset as prepare will and everything of the report but the numbers prepare
itself records (its stage run, the stages' numbers), then waits. Once prepare is recorded,
`finish` tells it to read those, write report.html and report.json, and exit; the parent
waits for it. The bytes are those the report written after the stage would have.

Anything else (no fork on this system, one core, other threads in the process, a child that
fails or is told nothing because the parent stopped) falls back to the report built in the
parent, as before: the child writes nothing unless told to. The child dies with its parent
(PR_SET_PDEATHSIG on Linux)."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import os
import signal
import sys
import threading
from pathlib import Path
from types import ModuleType

from selfinstruct.analysis.verbs import VerbNouns
from selfinstruct.engine.context import RunContext
from selfinstruct.report import REPORT_NAME
from selfinstruct.report.collect import recorded, verb_nouns
from selfinstruct.store.run_store import RunStore

GO = b"g"
PR_SET_PDEATHSIG = 1


class Beside:
    """A forked child building the run's report while the parent runs prepare."""

    def __init__(self, pid: int, go: int, out: Path) -> None:
        self.pid = pid
        self.go = go  # the pipe's write end: GO, then closed
        self.out = out

    @classmethod
    def start(cls, ctx: RunContext, verbs: bool) -> Beside | None:
        """The child, or None when the report must be built in this process (no fork here,
        other threads running, a fork that failed)."""
        if not sys.platform.startswith("linux") or threading.active_count() > 1:
            return None  # a lock another thread holds would stay held in the child
        if len(os.sched_getaffinity(0)) < 2:
            return None  # one core: the two would take turns, slower than one after the other
        # Parsed (and kept) here, where the store may be written.
        nouns = verb_nouns(ctx.store, ctx.store.pool.instructions(), verbs)
        from selfinstruct.report import build  # loaded before the fork, not in the child

        parent = os.getpid()
        read_end, write_end = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError:
            os.close(read_end)
            os.close(write_end)
            return None
        if pid == 0:  # the child: never returns
            os.close(write_end)
            _child(ctx, nouns, read_end, build, parent)
        os.close(read_end)
        return cls(pid, write_end, ctx.store.run_dir / REPORT_NAME)

    def finish(self) -> Path | None:
        """Tell the child to write the report, wait for it: the report's path, or None when
        the child did not write it (the caller builds it then)."""
        with contextlib.suppress(OSError):
            os.write(self.go, GO)
        return self.out if self._wait() else None

    def cancel(self) -> None:
        """The parent is stopping without a report: the child is stopped, writing nothing."""
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        self._wait()

    def _wait(self) -> bool:
        """Whether the child wrote the report."""
        with contextlib.suppress(OSError):
            os.close(self.go)
        try:
            _, status = os.waitpid(self.pid, 0)
        except ChildProcessError:
            return False
        return os.waitstatus_to_exitcode(status) == 0


def _child(ctx: RunContext, nouns: VerbNouns, go: int, build: ModuleType, parent: int) -> None:
    """Build the report, write it when told to; exit (0: written) without returning."""
    code = 1
    try:
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C stops the parent; we die
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # it died before the line above
            os._exit(1)
        store = RunStore.open_readonly(ctx.store.run_dir)
        mine = dataclasses.replace(ctx, store=store)
        pages = build.Pages.made(mine, nouns)
        if os.read(go, 1) == GO:
            build.write_pages(mine, pages, store.run_dir / REPORT_NAME, latest=recorded(mine))
            code = 0
    except BaseException:  # anything: the parent builds the report itself then
        code = 2
    finally:
        os._exit(code)
