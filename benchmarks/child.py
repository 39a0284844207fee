"""Time a command in a child process: wall seconds, and its peak resident set size from wait4
(the largest of the command and the processes it waited for)."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


def timed(command: Sequence[str], errors: Path | None = None) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of `command`, which must succeed. With `errors`, its
    stderr goes there (quoted when it fails) and its stdout nowhere; else both stay ours."""
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stderr = stack.enter_context(errors.open("wb")) if errors else None
        stdout = subprocess.DEVNULL if errors else None
        proc = subprocess.Popen(list(command), stdout=stdout, stderr=stderr)
        _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        said = errors.read_text()[-2000:] if errors else "its output is above"
        raise SystemExit(f"{' '.join(command)} failed: {said}")
    return seconds, usage.ru_maxrss / 1024
