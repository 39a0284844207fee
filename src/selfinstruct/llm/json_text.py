"""JSON text exactly as `json.dumps(value, ensure_ascii=False)` writes it, built from parts.

Every request sent is keyed, stored and sent as JSON, and its prompt (kilobytes) dominates
each encoding. Encoding each field once and joining the texts gives the canonical JSON (keys
in field order) and the cache key's blob (keys sorted) from one pass over the prompt, where
json.dumps would make one pass per document and a new encoder per call. The output is the
same text: the same escapes for strings, `repr` for ints and finite floats, `json` itself
for anything else, and the separators json.dumps uses by default.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

_ENCODER = json.JSONEncoder(ensure_ascii=False)
_STRING = json.encoder.encode_basestring  # what that encoder uses for strings


def value_text(value: Any) -> str:
    """json.dumps(value, ensure_ascii=False)."""
    kind = type(value)
    if kind is str:
        return _STRING(value)
    if value is None:
        return "null"
    if kind is int:
        return int.__repr__(value)
    if kind is float and math.isfinite(value):
        return float.__repr__(value)
    if kind is list:
        return "[" + ", ".join([value_text(item) for item in value]) + "]"
    return _ENCODER.encode(value)


def object_format(keys: Sequence[str]) -> str:
    """The JSON object with these keys, in this order, as a %-format of its value texts
    (`object_format(keys) % texts`); keys are plain names (identifiers: nothing in them to
    escape, nor a "%")."""
    return "{" + ", ".join(f'"{key}": %s' for key in keys) + "}"
