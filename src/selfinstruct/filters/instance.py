"""The paper's stage-4 filters for a task's parsed instances."""

from __future__ import annotations

from collections import Counter

from selfinstruct.filters import reasons

Pair = tuple[str, str]


def invalid_reason(pair: Pair) -> str | None:
    inp, out = pair
    if not out.strip():
        return reasons.EMPTY_OUTPUT
    if inp.strip() == out.strip():
        return reasons.INPUT_EQUALS_OUTPUT
    if inp.strip().endswith(":") or out.strip().endswith(":"):
        return reasons.ENDS_WITH_COLON
    return None


def instance_verdicts(pairs: list[Pair]) -> list[str | None]:
    """Each pair's drop reason, or None for a pair kept: invalid pairs; every valid pair of
    a task where one non-empty input has two outputs; exact repeats of an earlier pair."""
    verdicts = [invalid_reason(pair) for pair in pairs]
    valid = [i for i, reason in enumerate(verdicts) if reason is None]
    outputs: dict[str, str] = {}
    if any(_conflicts(pairs[i], outputs) for i in valid):
        for i in valid:
            verdicts[i] = reasons.SAME_INPUT_DIFFERENT_OUTPUT
        return verdicts
    seen: set[Pair] = set()
    for i in valid:
        if pairs[i] in seen:
            verdicts[i] = reasons.DUPLICATE
        seen.add(pairs[i])
    return verdicts


def _conflicts(pair: Pair, outputs: dict[str, str]) -> bool:
    """Whether a non-empty input was seen before with another output (records it)."""
    inp, out = pair
    return bool(inp) and outputs.setdefault(inp, out) != out


def count_verdicts(verdicts: list[str | None], dropped: Counter[str]) -> None:
    """Count one task's drop reasons (`duplicate` as zero whenever the task is kept)."""
    dropped.update(reason for reason in verdicts if reason)
    if reasons.SAME_INPUT_DIFFERENT_OUTPUT not in verdicts:
        dropped[reasons.DUPLICATE] += 0


def filter_instances(pairs: list[Pair], dropped: Counter[str]) -> list[Pair]:
    """The pairs `instance_verdicts` keeps, in order; counts the reasons of the others."""
    verdicts = instance_verdicts(pairs)
    count_verdicts(verdicts, dropped)
    return [pair for pair, reason in zip(pairs, verdicts, strict=True) if reason is None]
