"""Checks shared by every seed format: field types and unique ids."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from selfinstruct.errors import InputError
from selfinstruct.seeds.task import SeedTask


def require_str(value: object, path: Path, line: int, name: str, *, nonempty: bool = False) -> str:
    if not isinstance(value, str):
        raise InputError(path, f"expected a string, got {_kind(value)}", line=line, field=name)
    if nonempty and not value.strip():
        raise InputError(path, "must not be empty", line=line, field=name)
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(
            path, "contains invalid Unicode (a lone surrogate escape)", line=line, field=name
        ) from None
    return value


def require_bool(value: object, path: Path, line: int, name: str) -> bool:
    if not isinstance(value, bool):
        raise InputError(path, f"expected true or false, got {_kind(value)}", line=line, field=name)
    return value


def check_unique(tasks: Sequence[SeedTask], lines: Sequence[int], path: Path) -> None:
    """Reject duplicate ids; reject an empty task list."""
    if not tasks:
        raise InputError(path, "no seed tasks found")
    seen: dict[str, int] = {}
    for task, line in zip(tasks, lines, strict=True):
        if task.id in seen:
            raise InputError(
                path,
                f"duplicate id '{task.id}' (first used on line {seen[task.id]})",
                line=line,
                field="id",
            )
        seen[task.id] = line


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {
        bool: "a boolean",
        int: "a number",
        float: "a number",
        list: "a list",
        dict: "an object",
        str: "a string",
    }.get(type(value), type(value).__name__)
