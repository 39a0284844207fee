"""JSON Lines that always parse, written atomically (temp file, fsync, rename); what is
written so gets the mode the umask gives, like any new file."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TEMP_SUFFIX = ".tmp"  # write_atomic's temporary files: ".<name>.<random>.tmp" beside the target
_TEMP_NAME = re.compile(r"\..+\.[a-z0-9_]{8}\.tmp")  # tempfile.mkstemp's 8 random characters

# Characters json.dumps leaves raw that str.splitlines() and some readers treat as line breaks.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\x85": "\\u0085"}


def json_line(obj: Any) -> str:
    """One line of JSON: readable UTF-8, with every line-breaking character escaped."""
    return _json_text(obj)


def _json_text(obj: Any, indent: int | None = None) -> str:
    """JSON as readable UTF-8 where possible; escaped where a lone surrogate forbids it."""
    text = json.dumps(obj, ensure_ascii=False, indent=indent)
    for raw, escaped in _LINE_BREAKS.items():
        text = text.replace(raw, escaped)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: keep them, escaped
        text = json.dumps(obj, ensure_ascii=True, indent=indent)
    return text


def write_atomic(path: Path, chunks: Iterable[str]) -> None:
    """Write all chunks to `path` or leave the old file untouched."""
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "is a directory, expected a file path", str(path))
    with replaced_atomically(path) as tmp, tmp.open("w", encoding="utf-8", newline="\n") as out:
        for chunk in chunks:
            out.write(chunk)
        out.flush()
        os.fsync(out.fileno())


@contextmanager
def replaced_atomically(path: Path, *, directory: bool = False) -> Iterator[Path]:
    """A new, empty temporary file (a directory if asked) beside `path` to write into. When
    the block ends without an error it gets the mode a new file or directory gets under the
    umask (tempfile makes them private) and replaces `path` (an existing directory is removed
    first); when the block fails it is removed and `path` is left as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = f".{path.name}."
    if directory:
        tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=prefix, suffix=TEMP_SUFFIX))
    else:
        fd, name = tempfile.mkstemp(dir=path.parent, prefix=prefix, suffix=TEMP_SUFFIX)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        os.chmod(tmp, (0o777 if directory else 0o666) & ~current_umask())
        if directory and path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        if directory:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise


def remove_stale_temporaries(
    directory: Path, subdirectories: tuple[str, ...] = ("finetuning_data", "exports")
) -> int:
    """Delete the temporary files that writers killed mid-write (SIGKILL, power loss) left in
    a run directory and the subdirectories our outputs go to; call it only while holding the
    run's lock (every writer there holds it)."""
    removed = 0
    places = [directory, *(directory / name for name in subdirectories)]
    for path in (p for place in places if place.is_dir() for p in place.glob(f".*{TEMP_SUFFIX}")):
        if path.is_file() and _TEMP_NAME.fullmatch(path.name):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def current_umask() -> int:
    """The process umask (reading it means setting it: it is put back at once)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_jsonl(path: Path, records: Iterable[Any]) -> None:
    write_atomic(path, (json_line(record) + "\n" for record in records))


def write_json(path: Path, obj: Any) -> None:
    write_atomic(path, [_json_text(obj, indent=2) + "\n"])
