"""Errors the command line reports as one clear message and a non-zero exit."""

from __future__ import annotations

from pathlib import Path


class SelfInstructError(Exception):
    """Base class of every error that is the user's to fix (never shown as a traceback)."""

    exit_code = 2


class InputError(SelfInstructError):
    """A problem with an input file, located by file, line and field."""

    def __init__(
        self,
        path: str | Path,
        message: str,
        *,
        line: int | None = None,
        field: str | None = None,
    ) -> None:
        self.path = str(path)
        self.line = line
        self.field = field
        self.detail = message
        where = self.path
        if line is not None:
            where += f", line {line}"
        if field is not None:
            where += f", field '{field}'"
        super().__init__(f"{where}: {message}")


class RunError(SelfInstructError):
    """The run directory cannot be used as asked (settings changed, locked, corrupt...)."""


class BudgetExhausted(RunError):
    """The run's next request could exceed its budget (--max-tokens, --max-cost): exit code
    3; a rerun with a larger budget continues."""

    exit_code = 3


class BackendError(SelfInstructError):
    """The language model backend cannot serve requests (missing package, bad model...)."""


class EmptyDatasetError(SelfInstructError):
    """A run (or prepare) that produced no instance: not a success."""

    exit_code = 1
