"""Small GGUF files for tests: metadata only (no tensors), written byte by byte, and a copy of
a real model with its chat template hidden."""

from __future__ import annotations

import struct
from pathlib import Path

TEMPLATE_KEY = b"tokenizer.chat_template"


def _string(text: str) -> bytes:
    data = text.encode("utf-8")
    return struct.pack("<Q", len(data)) + data


def _value(value: object) -> bytes:
    if isinstance(value, bool):
        return struct.pack("<I?", 7, value)
    if isinstance(value, int):
        return struct.pack("<Iq", 11, value)
    if isinstance(value, float):
        return struct.pack("<Id", 12, value)
    if isinstance(value, str):
        return struct.pack("<I", 8) + _string(value)
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return struct.pack("<IIQ", 9, 8, len(value)) + b"".join(_string(v) for v in value)
    if isinstance(value, list):
        return struct.pack("<IIQ", 9, 5, len(value)) + struct.pack(f"<{len(value)}i", *value)
    raise TypeError(value)


def write_gguf(path: Path, metadata: dict[str, object]) -> Path:
    """A GGUF v3 file holding the metadata and no tensors."""
    body = b"".join(_string(key) + _value(value) for key, value in metadata.items())
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(metadata)) + body)
    return path


def without_chat_template(source: Path, target: Path) -> Path:
    """A copy of a GGUF whose chat template key is renamed (same length), so the model has
    no `tokenizer.chat_template`, like a base model."""
    data = bytearray(source.read_bytes())
    at = data.find(TEMPLATE_KEY, 0, 1 << 24)
    assert at > 0, f"{source} has no chat template to hide"
    data[at : at + len(TEMPLATE_KEY)] = b"tokenizer.chat_templatX"
    target.write_bytes(bytes(data))
    return target
