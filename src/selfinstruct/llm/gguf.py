"""Read the metadata at the head of a GGUF model file, without loading the model.

A GGUF file starts with the magic `GGUF`, a version, the tensor count and the number of
metadata entries; each entry is a key string, a value type and a value (strings are a
little-endian u64 length and UTF-8 bytes; arrays are an element type, a u64 count and the
elements). Only scalar values are kept; arrays (the tokenizer's vocabulary, tens of thousands
of strings) are skipped, with their length recorded under the key.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

from selfinstruct.errors import BackendError

MAGIC = b"GGUF"
_SCALARS = {  # value type -> struct format
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
MAX_ENTRIES = 1 << 20
MAX_STRING = 1 << 26  # a chat template is a few KB; anything this long is a corrupt file


class ArrayInfo(int):
    """Stands for an array value that was skipped: its element count."""


Metadata = dict[str, object]


def read_metadata(path: Path) -> Metadata:
    """The metadata entries of a GGUF file (arrays as `ArrayInfo(count)`)."""
    try:
        with path.open("rb") as f:
            return _read(f, path)
    except OSError as exc:
        raise BackendError(f"{path}: cannot read the model file ({exc.strerror or exc})") from exc
    except (struct.error, UnicodeDecodeError, EOFError) as exc:
        raise BackendError(f"{path}: not a readable GGUF file ({exc})") from exc


def _read(f: BinaryIO, path: Path) -> Metadata:
    if f.read(4) != MAGIC:
        raise BackendError(f"{path}: not a GGUF model file (it does not start with 'GGUF')")
    version = _unpack(f, "<I")
    if version < 2:
        raise BackendError(f"{path}: GGUF version {version} is too old to read")
    _unpack(f, "<Q")  # tensor count
    count = _unpack(f, "<Q")
    if count > MAX_ENTRIES:
        raise BackendError(f"{path}: not a readable GGUF file ({count} metadata entries)")
    found: Metadata = {"GGUF.version": version}
    for _ in range(count):
        key = _string(f)
        found[key] = _value(f, _unpack(f, "<I"))
    return found


def _unpack(f: BinaryIO, fmt: str) -> int:
    size = struct.calcsize(fmt)
    data = f.read(size)
    if len(data) != size:
        raise EOFError("the file ends inside its metadata")
    return struct.unpack(fmt, data)[0]


def _string(f: BinaryIO) -> str:
    length = _unpack(f, "<Q")
    if length > MAX_STRING:
        raise EOFError(f"a metadata string of {length} bytes")
    data = f.read(length)
    if len(data) != length:
        raise EOFError("the file ends inside its metadata")
    return data.decode("utf-8")


def _value(f: BinaryIO, kind: int) -> object:
    if kind in _SCALARS:
        return _unpack(f, _SCALARS[kind])
    if kind == _STRING:
        return _string(f)
    if kind == _ARRAY:
        element, count = _unpack(f, "<I"), _unpack(f, "<Q")
        _skip_array(f, element, count)
        return ArrayInfo(count)
    raise EOFError(f"unknown metadata value type {kind}")


def _skip_array(f: BinaryIO, element: int, count: int) -> None:
    if element in _SCALARS:
        f.seek(struct.calcsize(_SCALARS[element]) * count, 1)
    elif element == _STRING:
        for _ in range(count):
            f.seek(_unpack(f, "<Q"), 1)
    else:  # arrays of arrays: not used by llama.cpp's files, read them the slow way
        for _ in range(count):
            _value(f, element)


def chat_template(metadata: Metadata) -> str | None:
    """The model's own chat template, if the file has one."""
    value = metadata.get("tokenizer.chat_template")
    return value if isinstance(value, str) and value.strip() else None
