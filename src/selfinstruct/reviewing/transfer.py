"""People's ratings moved between machines: exported as JSON Lines, imported into a copy of the
same run, so a team can review on several machines and merge what they rated.

One line per rating (complete or in progress):

    {"format": "selfinstruct-review", "version": 1, "run": "<run id>", "id": "12.0",
     "reviewer": "alice", "answers": {"instruction": "yes", "input": "no", "output": null},
     "rating": "C", "note": "", "rated_at": "2026-12-07T10:00:00+00:00",
     "digest": "<hash of the text rated>",
     "item": {"instruction": "...", "input": "...", "output": "...", "is_classification": false}}

`run` names the run (a hash of its creation time) and `digest` the text the reviewer was
shown; an import refuses a line of another run, or one whose instance reads differently here,
naming the file, line and field. `item` is there for people reading the file: an import does
not read it. Answers are "yes", "no" or null (not answered yet)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputError
from selfinstruct.io.atomic import json_line, write_atomic
from selfinstruct.io.jsonl import json_objects, string_field
from selfinstruct.io.text import read_text
from selfinstruct.paper import QUESTIONS, RATINGS
from selfinstruct.reviewing.session import REVIEWER, texts_of
from selfinstruct.store.reviews import NOTE_LIMIT, StoredRating, digest
from selfinstruct.store.run_store import RunStore
from selfinstruct.views.tasks import ParsedTask

FORMAT = "selfinstruct-review"
VERSION = 1
ANSWERS = {"yes": True, "no": False, None: None}
# Keys every line has ("note" and "item" may be left out; null answers and rating say "not
# answered yet"). A rating stamped later than this ahead of this machine's clock is refused:
# it would win over every rating given after it.
REQUIRED = ("format", "version", "run", "id", "reviewer", "answers", "rating", "digest", "rated_at")
CLOCK_SKEW = timedelta(days=1)


def run_id(store: RunStore) -> str:
    """The run's name in an export: a hash of when it was created (a copy of the run directory
    has the same)."""
    created = str(store.get_meta("created_at") or "")
    return hashlib.sha256(f"selfinstruct-run:{created}".encode()).hexdigest()[:16]


def export_lines(
    store: RunStore, tasks: Sequence[ParsedTask], reviewer: str | None = None
) -> list[dict[str, Any]]:
    """The export's records: every stored rating (of one reviewer), in instance order."""
    texts = texts_of(tasks)
    found = run_id(store)
    lines = []
    for rating in store.reviews.ratings(reviewer):
        instruction, input, output, is_clf = texts.get(rating.instance, ("", "", "", False))
        lines.append(
            {
                "format": FORMAT,
                "version": VERSION,
                "run": found,
                "id": rating.instance,
                "reviewer": rating.reviewer,
                "answers": {q: _said(rating.answers[q]) for q in QUESTIONS},
                "rating": rating.rating,
                "note": rating.note,
                "rated_at": rating.rated_at,
                "digest": rating.digest,
                "item": {
                    "instruction": instruction,
                    "input": input,
                    "output": output,
                    "is_classification": is_clf,
                },
            }
        )
    return lines


def write_export(path: Path, lines: Sequence[Mapping[str, Any]]) -> None:
    write_atomic(path, (json_line(line) + "\n" for line in lines))


def read_imports(
    paths: Sequence[Path], store: RunStore, tasks: Sequence[ParsedTask]
) -> list[StoredRating]:
    """Every rating in the files, each line checked against this run (InputError naming the
    file, line and field at the first bad one). A rating given twice (same instance and
    reviewer) counts once: the newer."""
    expected_run = run_id(store)
    texts = texts_of(tasks)
    newest: dict[tuple[str, str], StoredRating] = {}
    for path in paths:
        for rating in _ratings(path, expected_run, texts):
            key = (rating.instance, rating.reviewer)
            if key not in newest or newest[key].rated_at < rating.rated_at:
                newest[key] = rating
    return [newest[key] for key in sorted(newest)]


def _ratings(
    path: Path, expected_run: str, texts: Mapping[str, tuple[str, str, str, bool]]
) -> Iterator[StoredRating]:
    found_any = False
    for line, obj in json_objects(read_text(path), path):
        found_any = True
        yield _rating(obj, path, line, expected_run, texts)
    if not found_any:
        raise InputError(path, "no rating found (an empty file)")


def _rating(
    obj: dict[str, Any],
    path: Path,
    line: int,
    expected_run: str,
    texts: Mapping[str, tuple[str, str, str, bool]],
) -> StoredRating:
    def fail(field: str, message: str) -> InputError:
        return InputError(path, message, line=line, field=field)

    if obj.get("format") != FORMAT:
        raise fail("format", f'not a review export (expected "{FORMAT}")')
    for key in REQUIRED:
        if key not in obj:
            raise fail(key, "missing required field")
    if obj["version"] != VERSION:
        raise fail("version", f"unsupported version {obj['version']!r} (this release: 1)")
    if string_field(obj, "run", path, line=line) != expected_run:
        raise fail("run", "exported from another run: ratings can only go into a copy of the run")
    instance = string_field(obj, "id", path, line=line)
    if instance not in texts:
        raise fail("id", f"this run has no instance {instance!r}")
    found_digest = string_field(obj, "digest", path, line=line)
    if found_digest != digest(*texts[instance][:3]):
        raise fail("digest", f"instance {instance} reads differently in this run")
    reviewer = string_field(obj, "reviewer", path, line=line)
    if not REVIEWER.fullmatch(reviewer):
        raise fail("reviewer", "must be 1-64 printable characters")
    return StoredRating(
        instance=instance,
        reviewer=reviewer,
        answers=_answers(obj.get("answers"), fail),
        rating=_choice(obj, "rating", fail),
        note=_note(obj, path, line),
        digest=found_digest,
        rated_at=_time(obj, path, line),
    )


def _answers(value: Any, fail: Any) -> dict[str, bool | None]:
    if not isinstance(value, dict):
        raise fail("answers", "expected an object of answers")
    found: dict[str, bool | None] = {}
    for question in QUESTIONS:
        if question not in value:
            raise fail(f"answers.{question}", "missing required field (null: not answered yet)")
        said = value[question]
        if said not in ANSWERS:
            raise fail(f"answers.{question}", f'expected "yes", "no" or null, got {said!r}')
        found[question] = ANSWERS[said]
    return found


def _choice(obj: dict[str, Any], key: str, fail: Any) -> str | None:
    value = obj.get(key)
    if value is not None and value not in RATINGS:
        raise fail(key, f"expected one of {', '.join(RATINGS)} or null, got {value!r}")
    return value


def _note(obj: dict[str, Any], path: Path, line: int) -> str:
    note = string_field(obj, "note", path, line=line, default="")
    if len(note) > NOTE_LIMIT:
        raise InputError(path, f"longer than {NOTE_LIMIT} characters", line=line, field="note")
    return note


def _time(obj: dict[str, Any], path: Path, line: int) -> str:
    text = string_field(obj, "rated_at", path, line=line)
    try:
        when = datetime.fromisoformat(text)
    except ValueError as exc:
        raise InputError(path, "expected an ISO 8601 time", line=line, field="rated_at") from exc
    if when.tzinfo is None:
        raise InputError(path, "expected a time with its UTC offset", line=line, field="rated_at")
    if when > datetime.now(UTC) + CLOCK_SKEW:
        raise InputError(path, "a time in the future", line=line, field="rated_at")
    return text


def _said(value: bool | None) -> str | None:
    return None if value is None else ("yes" if value else "no")
