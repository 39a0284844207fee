"""Advice for bootstrap responses cut off at max_tokens: what they looked like, and what can
help (a larger limit alone seldom does: a model that rambles rambles on)."""

from __future__ import annotations

from statistics import median
from typing import Protocol


class BootstrapLimits(Protocol):
    """The bootstrap settings the advice reads."""

    max_tokens: int
    truncated_responses: str
    num_prompt_instructions: int


SHOWN = 10


def truncation_advice(
    items: list[int],
    responses: int,
    *,
    settings: BootstrapLimits,
    style: str,
    stops: list[str],
    has_records: bool,
    whole_batch: bool,
) -> str:
    """items: the list items each cut response held before the cut (the last one cut);
    stops: the stop sequences the requests used."""
    cut = len(items)
    if whole_batch:
        head = f"every response of a bootstrap batch ({cut}) was cut off"
    else:
        head = f"{cut} of {responses} bootstrap responses were cut off"
    head += f" at max_tokens ({settings.max_tokens} tokens)"
    if settings.truncated_responses == "discard":
        head += " and discarded whole (the paper's rule)"
    else:
        head += "; their last, cut item was dropped"
    shown = ", ".join(str(n) for n in items[-SHOWN:]) + (", ..." if cut > SHOWN else "")
    looks = f"They held {shown} list items when cut: {_diagnosis(items, settings, stops)}."
    remedies = "".join(f"\n  - {remedy}" for remedy in _remedies(settings, style, stops))
    return f"{head}. {looks}\nWhat can help:{remedies}\n{_where(has_records)}"


def _diagnosis(items: list[int], settings: BootstrapLimits, stops: list[str]) -> str:
    typical = median(items) if items else 0
    if typical <= 1:
        return "the model writes one long item instead of a list of short ones"
    if typical >= settings.num_prompt_instructions - 1:
        return (
            "the model keeps adding items: its numbering or layout never reaches a stop "
            f"sequence ({', '.join(repr(s) for s in stops)})"
        )
    return "its items are long, or it keeps writing after its list"


def _remedies(settings: BootstrapLimits, style: str, stops: list[str]) -> list[str]:
    other = "chat" if style == "completion" else "completion"
    remedies = [
        "stop sequences that end its answers (bootstrap.stop, in a --config file or with "
        f"--set; now {stops!r})",
        f"the other prompt style (--prompt-style {other})",
    ]
    if settings.truncated_responses == "discard":
        remedies.append(
            'bootstrap.truncated_responses = "keep_complete_items": keep the '
            "complete items of a cut response (the Alpaca rule)"
        )
    remedies.append(f"a larger bootstrap.max_tokens (now {settings.max_tokens})")
    return remedies


def _where(has_records: bool) -> str:
    if has_records:
        return (
            "This run already holds bootstrap records made with its settings: try changed "
            "bootstrap settings in a new --out directory."
        )
    return (
        "This run holds no bootstrap records yet: rerunning the same --out with changed "
        "settings works."
    )
