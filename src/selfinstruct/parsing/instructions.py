"""Split a bootstrap response into candidate instructions.

Completion style follows the paper: the model continues a numbered list after "9.", and the
text is split on a newline followed by a number, an optional space and a period. Chat models
write lists their own way ("9)", "**10.**", "- ", "Task 11:"), often after a preamble and
before a closing remark; the chat parser keeps only the list items.
"""

from __future__ import annotations

import re

_COMPLETION_SPLIT = re.compile(r"\n\d+\s?\.")
_CHAT_ITEM = re.compile(
    r"^\s*(?:[-*•]\s+)?(?:\*\*|__)?(?:(?:task|instruction)\s*)?#?(\d+)\s*(?:\*\*|__)?\s*[.):\-]"
    r"\s*(?:\*\*|__)?\s*(?P<body>.*)$",
    re.IGNORECASE,
)
_BULLET = re.compile(r"^\s*[-*•]\s+(?P<body>.+)$")
_EMPHASIS = re.compile(r"\*\*|__")


def collapse(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def split_completion(text: str) -> list[str]:
    """Pieces of a list continuation, whitespace-collapsed (empty pieces kept for counting)."""
    return [collapse(piece) for piece in _COMPLETION_SPLIT.split(text)]


def split_chat(text: str) -> list[str]:
    """List items of a chat answer; preambles, headings and closing remarks are left out."""
    items: list[list[str]] = []
    open_item = False
    for line in text.splitlines():
        match = _CHAT_ITEM.match(line) or _BULLET.match(line)
        if match:
            items.append([match.group("body")])
            open_item = True
        elif not line.strip():
            open_item = False
        elif open_item:
            items[-1].append(line)
    return [collapse(_EMPHASIS.sub("", " ".join(parts))).strip('"') for parts in items]


def split_instructions(text: str, style: str) -> list[str]:
    return split_chat(text) if style == "chat" else split_completion(text)
