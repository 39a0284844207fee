"""A directory written whole or not at all: built beside its place (`.NAME.merging-PID`) and
renamed there when complete; a failure or Ctrl-C removes it, and a later merge into the same
place removes those a killed process left."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable
from pathlib import Path

from selfinstruct.errors import RunError

TEMP = re.compile(r"\.(?P<name>.+)\.merging-(?P<pid>\d+)")


def written_whole(out: Path, fill: Callable[[Path], None]) -> None:
    """fill(tmp) writes into a new directory beside `out`, renamed to `out` when done; on
    any failure the directory is removed and `out` is left as it was."""
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    tmp = out.parent / f".{out.name}.merging-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        fill(tmp)
        try:
            os.rename(tmp, out)  # replaces `out` only if it is an empty directory
        except OSError as exc:
            raise RunError(f"--out {out} could not be written ({exc.strerror})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def remove_stale(out: Path) -> None:
    """Temporary directories of merges into `out` whose process is gone (killed)."""
    for path in out.parent.glob(f".{out.name}.merging-*"):
        found = TEMP.fullmatch(path.name)
        if found and found["name"] == out.name and not _alive(int(found["pid"])):
            shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
