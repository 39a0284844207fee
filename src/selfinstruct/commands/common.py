"""What every command shares: turning errors into one clear line and an exit code."""

from __future__ import annotations

import errno
import functools
import sqlite3
import sys
from collections.abc import Callable
from typing import Any

import click

from selfinstruct.errors import SelfInstructError

STORAGE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EIO}
RESUME_HINT = (
    "everything committed before this point is intact; fix the cause (free space, "
    "permissions, a read-only filesystem) and rerun the same command"
)

Command = Callable[..., Any]


def handle_errors(func: Command | None = None, *, resumable: bool = False) -> Any:
    """Decorate a command: errors become one line and an exit code. `resumable`: the command
    works on a run store, so an interruption keeps what was committed (and says so)."""
    if func is None:
        return functools.partial(handle_errors, resumable=resumable)

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out") or kwargs.get("run_dir")
        try:
            return func(*args, **kwargs)
        except SelfInstructError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except sqlite3.DatabaseError as exc:
            click.echo(
                f"error: {out}: the run store could not be written ({exc}); {RESUME_HINT}", err=True
            )
            sys.exit(1)
        except OSError as exc:
            hint = f"; {RESUME_HINT}" if exc.errno in STORAGE_ERRNOS else ""
            named = exc.filename or (out if hint else None)
            where = f"{named}: " if named else ""
            click.echo(f"error: {where}{exc.strerror or exc}{hint}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            if resumable:
                click.echo(
                    f"\ninterrupted: everything accepted so far is saved in {out}; "
                    "rerun the same command to continue.",
                    err=True,
                )
            else:
                click.echo(
                    "\ninterrupted: nothing was written; rerun the command to start again.",
                    err=True,
                )
            sys.exit(130)

    return wrapper
