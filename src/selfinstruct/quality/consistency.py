"""Label consistency: the label a model gives an input when asked the ordinary way (input
first), read off its answer and compared with the label the instance was written for (output
first). An answer naming no label of the task, or several, is unreadable: never guessed."""

from __future__ import annotations

import re
from collections.abc import Sequence


def normalize(text: str) -> str:
    """Lower case, single spaces, no surrounding quotes or punctuation."""
    text = " ".join(text.lower().split())
    return text.strip(" \t\"'`*.,;:!?()[]{}")


def answered_label(answer: str, labels: Sequence[str]) -> str | None:
    """The one label of `labels` the answer's first line names (None: none or several)."""
    lines = [line for line in answer.strip().splitlines() if line.strip()]
    first = normalize(lines[0]) if lines else ""
    wanted = {normalize(label): label for label in labels if normalize(label)}
    if first in wanted:
        return wanted[first]
    named = [key for key in wanted if re.search(rf"(?<!\w){re.escape(key)}(?!\w)", first)]
    named = [key for key in named if not any(key != other and key in other for other in named)]
    return wanted[named[0]] if len(named) == 1 else None


def agrees(answer: str, label: str, labels: Sequence[str]) -> bool | None:
    """Whether the answer names `label` (None: it names no label of the task, or several)."""
    found = answered_label(answer, labels)
    return None if found is None else normalize(found) == normalize(label)


def label_set(outputs: Sequence[str]) -> list[str]:
    """A task's labels: its instances' outputs, each once, in first-seen order."""
    seen: dict[str, str] = {}
    for output in outputs:
        if normalize(output):
            seen.setdefault(normalize(output), output.strip())
    return list(seen.values())
