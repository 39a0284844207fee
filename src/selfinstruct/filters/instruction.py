"""The paper's heuristic filters for a new instruction (ROUGE-L is applied separately)."""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from functools import lru_cache
from typing import Protocol

from selfinstruct.filters import reasons


class InstructionRules(Protocol):
    """The bootstrap settings the heuristics read."""

    min_words: int
    max_words: int
    blocked_keywords: list[str]
    blocked_prefixes: list[str]


Check = Callable[[str, InstructionRules], str | None]


def upper_first(text: str) -> str:
    """Upper-case the first character only (the paper's code used str.capitalize(), which also
    lower-cases the rest: "NASA" became "nasa"; we do not)."""
    return text[:1].upper() + text[1:]


@lru_cache(maxsize=64)
def _keyword_pattern(words: tuple[str, ...]) -> re.Pattern[str]:
    alternatives = "|".join(re.escape(word) for word in words)
    return re.compile(rf"\b(?:{alternatives})\b", re.IGNORECASE)


def _empty(text: str, s: InstructionRules) -> str | None:
    return reasons.EMPTY if not text else None


def _length(text: str, s: InstructionRules) -> str | None:
    words = len(text.split())
    if words < s.min_words:
        return reasons.TOO_SHORT
    return reasons.TOO_LONG if words > s.max_words else None


def _keyword(text: str, s: InstructionRules) -> str | None:
    if not s.blocked_keywords:
        return None
    return reasons.KEYWORD if _keyword_pattern(tuple(s.blocked_keywords)).search(text) else None


def _prefix(text: str, s: InstructionRules) -> str | None:
    return reasons.BLOCKED_PREFIX if any(text.startswith(p) for p in s.blocked_prefixes) else None


def _first_char(text: str, s: InstructionRules) -> str | None:
    if text[0] in string.punctuation:
        return reasons.STARTS_WITH_PUNCTUATION
    return reasons.STARTS_NON_ASCII if not text[0].isascii() else None


CHECKS: tuple[Check, ...] = (_empty, _length, _keyword, _prefix, _first_char)


def heuristic_reason(text: str, settings: InstructionRules) -> str | None:
    """The first reason to drop `text`, or None to keep it."""
    for check in CHECKS:
        reason = check(text, settings)
        if reason:
            return reason
    return None
