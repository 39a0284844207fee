"""The paper's stage-4 filters for a task's parsed instances."""

from __future__ import annotations

from collections import Counter

Pair = tuple[str, str]


def invalid_reason(pair: Pair) -> str | None:
    inp, out = pair
    if not out.strip():
        return "empty_output"
    if inp.strip() == out.strip():
        return "input_equals_output"
    if inp.strip().endswith(":") or out.strip().endswith(":"):
        return "ends_with_colon"
    return None


def filter_instances(pairs: list[Pair], dropped: Counter[str]) -> list[Pair]:
    """Drop invalid pairs; drop the whole task when one non-empty input has two outputs;
    remove exact duplicates (first occurrence kept, order preserved). Counts reasons."""
    valid = []
    for pair in pairs:
        reason = invalid_reason(pair)
        if reason:
            dropped[reason] += 1
        else:
            valid.append(pair)
    outputs: dict[str, str] = {}
    for inp, out in valid:
        if inp and outputs.setdefault(inp, out) != out:
            dropped["same_input_different_output"] += len(valid)
            return []
    unique = list(dict.fromkeys(valid))
    dropped["duplicate"] += len(valid) - len(unique)
    return unique
