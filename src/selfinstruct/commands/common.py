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
RESUMABLE = {"run", "bootstrap", "classify", "instances", "prepare"}  # commands on a run store
RESUME_HINT = ("everything committed before this point is intact; fix the cause (free space, "
               "permissions, a read-only filesystem) and rerun the same command")


def handle_errors(func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        out = kwargs.get("out") or kwargs.get("run_dir")
        try:
            return func(*args, **kwargs)
        except SelfInstructError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(exc.exit_code)
        except sqlite3.DatabaseError as exc:
            click.echo(f"error: {out}: the run store could not be written ({exc}); "
                       f"{RESUME_HINT}", err=True)
            sys.exit(1)
        except OSError as exc:
            hint = f"; {RESUME_HINT}" if exc.errno in STORAGE_ERRNOS else ""
            named = exc.filename or (out if hint else None)
            where = f"{named}: " if named else ""
            click.echo(f"error: {where}{exc.strerror or exc}{hint}", err=True)
            sys.exit(1)
        except KeyboardInterrupt:
            if func.__name__ in RESUMABLE:
                click.echo(f"\ninterrupted: everything accepted so far is saved in {out}; "
                           "rerun the same command to continue.", err=True)
            else:
                click.echo("\ninterrupted: nothing was written; rerun the command to start "
                           "again.", err=True)
            sys.exit(130)
    return wrapper
