"""JSON Lines input: one object per line, errors located by file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputError


def json_objects(text: str, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) for every non-blank line. Lines end at "\\n" only: a raw U+2028
    inside a JSON string is text, not a line break."""
    for number, raw in enumerate(text.split("\n"), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise InputError(
                path, f"invalid JSON: {exc.msg} (column {exc.colno})", line=number
            ) from exc
        except (ValueError, RecursionError) as exc:  # huge integers, absurd nesting
            raise InputError(path, f"invalid JSON: {str(exc)[:120]}", line=number) from exc
        if not isinstance(obj, dict):
            raise InputError(path, "expected a JSON object per line", line=number)
        yield number, obj


def string_field(
    obj: dict[str, Any],
    key: str,
    path: Path,
    *,
    line: int | None = None,
    field: str | None = None,
    default: str | None = None,
) -> str:
    """obj[key] as a string (`default` when absent, if given), or an InputError naming the
    file, line and field (`field`, default the key)."""
    value = obj.get(key, default)
    if not isinstance(value, str):
        problem = "missing required field" if key not in obj else "expected a string"
        raise InputError(path, problem, line=line, field=field or key)
    return value
