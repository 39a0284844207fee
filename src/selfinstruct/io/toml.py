"""TOML files parsed with errors that name the line."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputError


def parse_toml(text: str, path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputError(path, f"invalid TOML: {exc}", line=_error_line(str(exc), text)) from exc
    except ValueError as exc:  # an integer of thousands of digits
        raise InputError(
            path,
            f"invalid TOML value: {str(exc)[:120]}",
            line=_first_match_line(text, r"\d{4000,}"),
        ) from exc
    except RecursionError as exc:
        raise InputError(
            path, "invalid TOML: nested too deeply", line=_first_match_line(text, r"[\[{]{200,}")
        ) from exc


def _first_match_line(text: str, pattern: str) -> int | None:
    match = re.search(pattern, text)
    return text[: match.start()].count("\n") + 1 if match else None


def _error_line(message: str, text: str) -> int | None:
    """The line tomllib reports ("at line N, column M"), or the last line for an error "at
    end of document"."""
    match = re.search(r"\(at line (\d+),", message)
    if match:
        return int(match.group(1))
    if "at end of document" in message:
        return max(1, len(text.splitlines()))
    return None
