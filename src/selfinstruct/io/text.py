"""Read a user's text file strictly as UTF-8, reporting where decoding fails."""

from __future__ import annotations

from pathlib import Path

from selfinstruct.errors import InputError

MAX_INPUT_BYTES = 512 * 1024 * 1024


def read_text(path: str | Path, *, allow_empty: bool = False) -> str:
    """The file's text; InputError for a missing, binary, badly encoded or empty file."""
    p = Path(path)
    if not p.exists():
        raise InputError(p, "file not found")
    if p.is_dir():
        raise InputError(p, "is a directory, expected a file")
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InputError(p, f"cannot read: {exc.strerror or exc}") from exc
    if len(data) > MAX_INPUT_BYTES:
        raise InputError(p, f"file is larger than {MAX_INPUT_BYTES // 2**20} MiB")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise InputError(
            p, f"not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8", line=line
        ) from exc
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise InputError(p, "contains a NUL byte: binary data, not a text file", line=line)
    if not allow_empty and not text.strip():
        raise InputError(p, "file is empty")
    return text
