"""One reviewer's session: the sampled items with their text, the reviewer's answers, and
answering and undoing, each committed to the run store as it is given (the store is opened for
each change, so other commands can work on the run between answers)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.errors import InputError, RunError
from selfinstruct.paper import QUESTIONS
from selfinstruct.store.reviews import FIELDS, SampleItem, StoredRating, check_value, digest
from selfinstruct.store.run_store import RunStore
from selfinstruct.views.tasks import ParsedTask

LOCK_PATIENCE = 5.0  # seconds an answer waits for the run's lock (another command writing)
REVIEWER = re.compile(r"[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]{0,62}[^\s\x00-\x1f\x7f])?")


@contextmanager
def patient_writer(run_dir: Path, patience: float = LOCK_PATIENCE) -> Iterator[RunStore]:
    """The run store opened for writing, waiting a little while another command (a prepare,
    another reviewer's app) holds the run's lock."""
    deadline = time.monotonic() + patience
    while True:
        try:
            store = RunStore.open(run_dir)
            break
        except RunError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)
    with store:
        yield store


class UnknownItem(LookupError):
    """An item that is not in the review sample."""


def check_reviewer(name: str) -> str:
    """A reviewer's name as stored: 1-64 printable characters, no surrounding spaces."""
    if not REVIEWER.fullmatch(name):
        raise InputError("--reviewer", "must be 1-64 printable characters (e.g. your name)")
    return name


@dataclass(frozen=True)
class Item:
    """A sampled instance as the page shows it."""

    ordinal: int
    instance: str
    instruction: str
    input: str
    output: str
    is_classification: bool
    digest: str

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.instance,
            "instruction": self.instruction,
            "input": self.input,
            "output": self.output,
            "is_classification": self.is_classification,
        }


def texts_of(tasks: Sequence[ParsedTask]) -> dict[str, tuple[str, str, str, bool]]:
    """(instruction, input, output, is_classification) of every instance, by id."""
    return {
        record.id: (task.instruction, record.input, record.output, task.is_classification)
        for task in tasks
        for record in task.instances
    }


def sample_items(sample: list[SampleItem], tasks: list[ParsedTask]) -> list[Item]:
    """The sample's items with their text (an item whose text no longer matches the digest it
    was drawn with is left out: its ratings could not be trusted)."""
    texts = texts_of(tasks)
    items = []
    for entry in sample:
        found = texts.get(entry.instance)
        if found is None or digest(*found[:3]) != entry.digest:
            continue
        items.append(Item(entry.ordinal, entry.instance, *found, entry.digest))
    return items


def rating_dict(rating: StoredRating | None) -> dict[str, Any]:
    """A rating as the page reads it ({} for none)."""
    if rating is None:
        return {}
    return {
        **{q: rating.answers[q] for q in QUESTIONS},
        "rating": rating.rating,
        "note": rating.note,
        "complete": rating.complete,
        "rated_at": rating.rated_at,
    }


class ReviewSession:
    """What the review page reads and changes, for one reviewer of one run."""

    def __init__(
        self,
        run_dir: Path,
        reviewer: str,
        items: list[Item],
        writer: Callable[[Path], AbstractContextManager[RunStore]] = patient_writer,
    ) -> None:
        self.run_dir = run_dir
        self.reviewer = check_reviewer(reviewer)
        self.items = items
        self.by_id = {item.instance: item for item in items}
        self._writer = writer
        self._writing = threading.Lock()  # the server answers requests on several threads

    def state(self) -> dict[str, Any]:
        """Everything the page needs: the items, this reviewer's answers, the progress."""
        with RunStore.open_readonly(self.run_dir) as store:
            mine = {r.instance: r for r in store.reviews.ratings(self.reviewer)}
        ratings = {i: rating_dict(mine[i]) for i in self.by_id if i in mine}
        return {
            "reviewer": self.reviewer,
            "run": self.run_dir.name,
            "items": [item.as_dict() for item in self.items],
            "ratings": ratings,
            "progress": self._progress(ratings),
        }

    def answer(self, instance: str, field: str, value: Any) -> dict[str, Any]:
        """Store one answer; the item's rating afterwards. UnknownItem for an item outside
        the sample, ValueError for a field or value the page cannot give."""
        item = self.by_id.get(instance)
        if item is None:
            raise UnknownItem(instance)
        if field not in FIELDS:
            raise ValueError(f"unknown field {field!r}")
        problem = check_value(field, value)
        if problem is not None:
            raise ValueError(f"{field}: {problem}")
        with self._writing, self._writer(self.run_dir) as store:
            rating = store.reviews.answer(self.reviewer, instance, item.digest, field, value)
        return {"id": instance, "rating": rating_dict(rating)}

    def undo(self) -> dict[str, Any]:
        """Take back this reviewer's last answer; which item it was about and its rating now
        (id None: nothing to undo)."""
        with self._writing, self._writer(self.run_dir) as store:
            rating = store.reviews.undo(self.reviewer)
        if rating is None:
            return {"id": None, "rating": {}}
        return {"id": rating.instance, "rating": rating_dict(rating)}

    def _progress(self, ratings: dict[str, dict[str, Any]]) -> dict[str, int]:
        complete = sum(1 for found in ratings.values() if found.get("complete"))
        return {"complete": complete, "started": len(ratings), "total": len(self.items)}
