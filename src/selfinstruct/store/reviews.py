"""People's reviews of a run's instances: the sample reviewers see (`review_items`, drawn once
and kept so every reviewer sees the same items in the same order), each reviewer's answers
(`review_ratings`, one row per instance and reviewer, every answer committed as it is given)
and the log of those answers (`review_events`), which undo walks back.

A rating holds the paper's three questions (1 yes, 0 no, NULL not answered yet), an A-D
rating (NULL: not yet), a note, the time of its last change and the digest of the instance
it rates (its instruction, input and output), so a rating can only ever be applied to the
text it was given for."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from selfinstruct.paper import QUESTIONS, RATINGS
from selfinstruct.store.family import Family
from selfinstruct.store.records import flag_column, flag_value
from selfinstruct.store.schema import now

MIGRATION = "0008_reviews"  # the migration that made the tables
FIELDS = (*QUESTIONS, "rating", "note")  # what a reviewer answers, in the page's order
NOTE_LIMIT = 2000  # characters of a note
COLUMNS = {"instruction": "instruction_ok", "input": "input_ok", "output": "output_ok"}


def digest(instruction: str, input: str, output: str) -> str:
    """What a rating is bound to: a hash of the text the reviewer was shown."""
    blob = json.dumps([instruction, input, output], ensure_ascii=False)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SampleItem:
    """One instance in the review sample, in the order reviewers see them."""

    ordinal: int
    instance: str  # "<instruction id>.<position>"
    is_classification: bool
    digest: str


@dataclass(frozen=True)
class StoredRating:
    """One reviewer's answers about one instance (None: not answered yet)."""

    instance: str
    reviewer: str
    answers: dict[str, bool | None]  # by QUESTIONS
    rating: str | None
    note: str
    digest: str
    rated_at: str

    @property
    def complete(self) -> bool:
        """Every question and the rating answered (the note is optional)."""
        return self.rating is not None and all(self.answers[q] is not None for q in QUESTIONS)

    @property
    def empty(self) -> bool:
        return (
            self.rating is None
            and not self.note
            and all(self.answers[q] is None for q in QUESTIONS)
        )

    def value(self, field: str) -> Any:
        if field in QUESTIONS:
            return self.answers[field]
        return self.rating if field == "rating" else self.note


def check_value(field: str, value: Any) -> str | None:
    """Why `value` cannot be the answer to `field` (None: it can)."""
    if field in QUESTIONS:
        return None if value is None or isinstance(value, bool) else "expected true, false or null"
    if field == "rating":
        return None if value is None or value in RATINGS else f"expected one of {RATINGS} or null"
    if field == "note":
        if not isinstance(value, str):
            return "expected a string"
        return None if len(value) <= NOTE_LIMIT else f"longer than {NOTE_LIMIT} characters"
    return f"unknown field (known: {', '.join(FIELDS)})"


def _split(instance: str) -> tuple[int, int]:
    instruction_id, _, position = instance.partition(".")
    return int(instruction_id), int(position)


class Reviews(Family):
    @property
    def present(self) -> bool:
        """The schema keeps reviews (a run made before them may not, opened read-only)."""
        return MIGRATION in self.migrations

    # -- the sample ---------------------------------------------------------------------
    def sample(self) -> list[SampleItem]:
        if not self.present:
            return []
        rows = self.db.execute(
            "SELECT ordinal, instruction_id, position, is_classification, digest "
            "FROM review_items ORDER BY ordinal"
        )
        return [SampleItem(o, f"{i}.{p}", bool(c), d) for o, i, p, c, d in rows]

    def add_to_sample(self, items: Iterable[tuple[str, bool, str]]) -> None:
        """Append (instance, is_classification, digest) items after the sample's last."""
        with self.transaction() as db:
            start = db.execute("SELECT COALESCE(MAX(ordinal), -1) + 1 FROM review_items")
            ordinal = start.fetchone()[0]
            for offset, (instance, is_clf, found) in enumerate(items):
                db.execute(
                    "INSERT INTO review_items VALUES (?, ?, ?, ?, ?)",
                    (ordinal + offset, *_split(instance), int(is_clf), found),
                )

    def set_sample_meta(self, value: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO meta VALUES ('review_sample', ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (json.dumps(value, sort_keys=True),),
            )

    # -- ratings ------------------------------------------------------------------------
    def ratings(self, reviewer: str | None = None) -> list[StoredRating]:
        """Every stored rating (of one reviewer), in instance and reviewer order; rows whose
        answers were all undone are left out."""
        if not self.present:
            return []
        sql = (
            "SELECT instruction_id, position, reviewer, instruction_ok, input_ok, output_ok, "
            "rating, note, digest, rated_at FROM review_ratings"
        )
        args: tuple[Any, ...] = ()
        if reviewer is not None:
            sql, args = sql + " WHERE reviewer = ?", (reviewer,)
        rows = self.db.execute(sql + " ORDER BY instruction_id, position, reviewer", args)
        found = [_rating(row) for row in rows]
        return [rating for rating in found if not rating.empty]

    def answer(
        self, reviewer: str, instance: str, found_digest: str, field: str, value: Any
    ) -> StoredRating:
        """Set one answer of `reviewer` about `instance`, logged for undo, in one commit."""
        problem = check_value(field, value)
        if problem is not None:
            raise ValueError(f"{field}: {problem}")
        with self.transaction():
            current = self._rating(reviewer, instance)
            previous = current.value(field) if current else (None if field != "note" else "")
            self._set(reviewer, instance, found_digest, field, value)
            self.db.execute(
                "INSERT INTO review_events (reviewer, instruction_id, position, field, value, "
                "previous, at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    reviewer,
                    *_split(instance),
                    field,
                    json.dumps(value),
                    json.dumps(previous),
                    now(),
                ),
            )
            rating = self._rating(reviewer, instance)
        assert rating is not None
        return rating

    def undo(self, reviewer: str) -> StoredRating | None:
        """Take back `reviewer`'s last answer not yet undone (None: nothing to undo); the
        rating as it is afterwards."""
        with self.transaction():
            row = self.db.execute(
                "SELECT id, instruction_id, position, field, previous FROM review_events "
                "WHERE reviewer = ? AND undone = 0 ORDER BY id DESC LIMIT 1",
                (reviewer,),
            ).fetchone()
            if row is None:
                return None
            event, instruction_id, position, field, previous = row
            instance = f"{instruction_id}.{position}"
            current = self._rating(reviewer, instance)
            if current is not None:
                self._set(reviewer, instance, current.digest, field, json.loads(previous))
            self.db.execute("UPDATE review_events SET undone = 1 WHERE id = ?", (event,))
            return self._rating(reviewer, instance)

    def put(self, ratings: Sequence[StoredRating]) -> int:
        """Store ratings made elsewhere (an import, a merge), inside the caller's
        transaction: a rating replaces the same reviewer's of the same instance when it is
        newer. Returns how many were stored."""
        stored = 0
        for rating in ratings:
            current = self._rating(rating.reviewer, rating.instance)
            if current is not None and current.rated_at >= rating.rated_at:
                continue
            self.db.execute(
                "INSERT OR REPLACE INTO review_ratings VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    *_split(rating.instance),
                    rating.reviewer,
                    *(flag_column(rating.answers[q]) for q in QUESTIONS),
                    rating.rating,
                    rating.note,
                    rating.digest,
                    rating.rated_at,
                ),
            )
            stored += 1
        return stored

    def _rating(self, reviewer: str, instance: str) -> StoredRating | None:
        row = self.db.execute(
            "SELECT instruction_id, position, reviewer, instruction_ok, input_ok, output_ok, "
            "rating, note, digest, rated_at FROM review_ratings "
            "WHERE instruction_id = ? AND position = ? AND reviewer = ?",
            (*_split(instance), reviewer),
        ).fetchone()
        return None if row is None else _rating(row)

    def _set(self, reviewer: str, instance: str, found_digest: str, field: str, value: Any) -> None:
        column = COLUMNS.get(field, field)
        stored = flag_column(value) if field in QUESTIONS else value
        self.db.execute(
            "INSERT INTO review_ratings (instruction_id, position, reviewer, digest, rated_at) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (*_split(instance), reviewer, found_digest, now()),
        )
        self.db.execute(
            f"UPDATE review_ratings SET {column} = ?, rated_at = ? "
            "WHERE instruction_id = ? AND position = ? AND reviewer = ?",
            (stored, now(), *_split(instance), reviewer),
        )


def _rating(row: Sequence[Any]) -> StoredRating:
    instruction_id, position, reviewer, *flags, rating, note, found_digest, rated_at = row
    return StoredRating(
        instance=f"{instruction_id}.{position}",
        reviewer=reviewer,
        answers={q: flag_value(v) for q, v in zip(QUESTIONS, flags, strict=True)},
        rating=rating,
        note=note,
        digest=found_digest,
        rated_at=rated_at,
    )
