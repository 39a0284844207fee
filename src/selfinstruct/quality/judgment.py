"""A judge's review of one instance: the paper's three questions (valid task? appropriate
input? correct output?) and its A/B/C/D rating, each with a one-sentence reason, read from
the judge's answer. What cannot be read stays None: it is never guessed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from selfinstruct.paper import QUESTIONS, RATINGS

# The label of each answer line, as the templates ask for them (questions, then rating).
LINE_LABELS = {
    "instruction": "Valid task",
    "input": "Appropriate input",
    "output": "Correct output",
    "rating": "Rating",
}
FIRST_LINE = f"{LINE_LABELS['instruction']}:"  # completion prompts end with it


@dataclass(frozen=True)
class Judgment:
    """One judge's answers about one instance (None: the answer could not be read)."""

    answers: dict[str, bool | None]  # by QUESTIONS
    rating: str | None
    reasons: dict[str, str] = field(default_factory=dict)  # by QUESTIONS and "rating"

    @property
    def readable(self) -> bool:
        """Every question and the rating were answered in a readable way."""
        return self.rating is not None and all(self.answers.get(q) is not None for q in QUESTIONS)

    @property
    def all_yes(self) -> bool:
        return all(self.answers.get(q) is True for q in QUESTIONS)


@dataclass(frozen=True)
class Criteria:
    """What prepare asks of a judged instance: a rating at least `min_rating` (A best; empty:
    any) and "yes" to each question in `require`."""

    min_rating: str = ""
    require: tuple[str, ...] = ()

    @property
    def active(self) -> bool:
        return bool(self.min_rating or self.require)

    def failures(self, judgment: Judgment) -> list[tuple[str, str]]:
        """Why a readable judgment fails the criteria, as (question or "rating", what the
        judge said); empty when it passes."""
        found = [(q, f"{q}: no") for q in self.require if judgment.answers.get(q) is not True]
        rating = judgment.rating or "D"
        if self.min_rating and RATINGS.index(rating) > RATINGS.index(self.min_rating):
            found.append(("rating", f"rating {rating}"))
        return found


def check_choices(min_rating: str, require: Iterable[str]) -> list[tuple[str, str]]:
    """(key, message) for criteria settings out of range."""
    problems = []
    if min_rating and min_rating not in RATINGS:
        problems.append(("min_rating", f"must be one of {', '.join(RATINGS)} or empty"))
    unknown = [q for q in require if q not in QUESTIONS]
    if unknown:
        problems.append(
            ("require_yes", f"unknown question(s) {unknown}; known: {', '.join(QUESTIONS)}")
        )
    return problems


def parse_judgment(text: str, style: str) -> Judgment:
    """The answers in a judge's text. A completion prompt ends with the first line's label,
    so the text continues it. Each label's first occurrence counts (small models go on to
    write further reviews of their own)."""
    if style == "completion":
        text = f"{FIRST_LINE}{text}"
    answers: dict[str, bool | None] = {}
    reasons: dict[str, str] = {}
    for question in QUESTIONS:
        found = _line(text, LINE_LABELS[question], r"yes|no")
        answers[question] = None if found is None else found[0].lower() == "yes"
        if found is not None:
            reasons[question] = found[1]
    rating = _line(text, LINE_LABELS["rating"], r"[ABCD]")
    if rating is not None:
        reasons["rating"] = rating[1]
    return Judgment(answers, rating[0].upper() if rating else None, reasons)


def _line(text: str, label: str, choices: str) -> tuple[str, str] | None:
    """(choice, reason) of the first line labelled `label`, or None."""
    pattern = (
        rf"^[\s*#>\-\d.]*{re.escape(label)}\s*\**\s*:\s*\**\s*({choices})\b\**"
        rf"[\s|:.,;\-–—]*(.*)$"
    )
    match = re.search(pattern, text, re.IGNORECASE | re.MULTILINE)
    if match is None:
        return None
    return match.group(1), match.group(2).strip()[:500]
