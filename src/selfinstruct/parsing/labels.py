"""Read the classification stage's yes/no answer.

`is_yes` decides, by the paper's rule (completion style: the stripped answer is Yes/yes/YES;
chat style: the first word is yes). `read_label` says what the answer was: "yes", "no", or
`UNREADABLE` for anything else ("Decision:", "1. Dec", "Task: Determine"), which the paper's
rule counts as not classification. Nothing is guessed: the summary counts unreadable answers.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

YES = ("Yes", "yes", "YES")
NO = ("No", "no", "NO")
UNREADABLE = "unreadable_label"


def _first_word(raw: str) -> str:
    words = re.findall(r"[A-Za-z]+", raw)
    return words[0].lower() if words else ""


def is_yes(raw: str, style: str = "completion") -> bool:
    """Completion style: the paper's rule (stripped answer is Yes/yes/YES).
    Chat style: the first word, ignoring case, markdown and punctuation, is yes."""
    if style != "chat":
        return raw.strip() in YES
    return _first_word(raw) == "yes"


def read_label(raw: str, style: str = "completion") -> str:
    """ "yes", "no" or UNREADABLE, read the way `is_yes` reads a yes."""
    if style != "chat":
        stripped = raw.strip()
        return "yes" if stripped in YES else "no" if stripped in NO else UNREADABLE
    word = _first_word(raw)
    return word if word in ("yes", "no") else UNREADABLE


def label_counts(raws: Iterable[str], style: str) -> dict[str, int]:
    """How many answers were read as classification, not classification, or unreadable."""
    read = Counter(read_label(raw, style) for raw in raws)
    return {
        "classification": read["yes"],
        "not_classification": read["no"],
        UNREADABLE: read[UNREADABLE],
    }


def unreadable_answers(raws: Iterable[str], style: str, top: int = 5) -> list[tuple[str, int]]:
    """The most common unreadable answers (whitespace collapsed), with their counts."""
    found = Counter(" ".join(raw.split()) for raw in raws if read_label(raw, style) == UNREADABLE)
    return found.most_common(top)
