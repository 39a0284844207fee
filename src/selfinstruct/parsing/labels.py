"""Read the classification stage's yes/no answer."""

from __future__ import annotations

import re

YES = ("Yes", "yes", "YES")


def is_yes(raw: str, style: str = "completion") -> bool:
    """Completion style: the paper's rule (stripped answer is Yes/yes/YES).
    Chat style: the first word, ignoring case, markdown and punctuation, is yes."""
    if style != "chat":
        return raw.strip() in YES
    words = re.findall(r"[A-Za-z]+", raw)
    return bool(words) and words[0].lower() == "yes"
