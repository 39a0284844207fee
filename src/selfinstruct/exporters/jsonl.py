"""JSON Lines that always parse, written atomically (temp file, fsync, rename)."""

from __future__ import annotations

import errno
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

# Characters json.dumps leaves raw that str.splitlines() and some readers treat as line breaks.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def json_line(obj: Any) -> str:
    """One line of JSON: readable UTF-8, with every line-breaking character escaped."""
    text = json.dumps(obj, ensure_ascii=False)
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: keep them, escaped
        text = json.dumps(obj, ensure_ascii=True)
    return text


def write_atomic(path: Path, chunks: Iterable[str]) -> None:
    """Write all chunks to `path` or leave the old file untouched."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file path", str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(path: Path, records: Iterable[Any]) -> None:
    write_atomic(path, (json_line(record) + "\n" for record in records))


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, [json.dumps(obj, ensure_ascii=False, indent=2) + "\n"])
