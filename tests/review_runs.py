"""Helpers of the review tests: a fake run with a review sample, a reviewer's session of it,
what its store holds of reviews, and requests to a review server over real HTTP."""

from __future__ import annotations

import http.client
import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol

from conftest import cli

from selfinstruct.reviewing.sample import candidates, draw_order, ensure_sample
from selfinstruct.reviewing.session import (
    LOCK_PATIENCE,
    ReviewSession,
    patient_writer,
    sample_items,
)
from selfinstruct.run.open import viewed
from selfinstruct.store.reviews import SampleItem
from selfinstruct.store.run_store import RunStore
from selfinstruct.views.tasks import ParsedTask, parsed_tasks

PER_TASK = "one"  # the paper's: one instance per instruction


def fake_run(run: Path, instructions: int = 30) -> Path:
    cli("run", "--backend", "fake", "--num-instructions", instructions, "--out", run, "-q")
    return run


def run_tasks(run: Path) -> tuple[list[ParsedTask], str]:
    """The run's parsed tasks and the seed its sample is drawn with (read-only)."""
    with viewed(run, quiet=True) as ctx:
        return parsed_tasks(ctx.store, ctx.config.prompt_style), str(ctx.config.random_seed)


def first_in_sample(run: Path) -> str:
    """The instance a sample of this run would show first."""
    return in_sample(run, 0)


def in_sample(run: Path, position: int) -> str:
    """The instance a sample of this run would show at `position` (0: first)."""
    tasks, seed = run_tasks(run)
    return draw_order(candidates(tasks, PER_TASK, seed))[position].instance


def set_output(run: Path, instance: str, output: str) -> None:
    """Replace an instance's parsed output in the store (before the sample is drawn: the
    sample binds each item to a digest of its text)."""
    instruction_id, position = (int(part) for part in instance.split("."))
    with sqlite3.connect(run / "selfinstruct.db") as db:
        changed = db.execute(
            "UPDATE parsed_instances SET output = ? WHERE instruction_id = ? AND position = ?",
            (output, instruction_id, position),
        ).rowcount
    assert changed == 1


def draw(run: Path, size: int) -> list[SampleItem]:
    tasks, seed = run_tasks(run)
    with RunStore.open(run) as store:
        return ensure_sample(store, tasks, size, PER_TASK, seed)


def session(run: Path, reviewer: str, patience: float = LOCK_PATIENCE) -> ReviewSession:
    """A reviewer's session of the run's stored sample; an answer waits `patience` seconds
    for the run's lock."""
    tasks, _ = run_tasks(run)
    with RunStore.open_readonly(run) as store:
        sample = store.reviews.sample()
    writer = partial(patient_writer, patience=patience)
    return ReviewSession(run, reviewer, sample_items(sample, tasks), writer)


def stored_reviews(run: Path) -> tuple[list[Any], list[tuple[Any, ...]]]:
    """Every reviewer's ratings and the answer log, as the store holds them."""
    with RunStore.open_readonly(run) as store:
        ratings = store.reviews.ratings()
        events = store.db.execute("SELECT * FROM review_events ORDER BY id").fetchall()
    return ratings, events


def ratings_of(run: Path, reviewer: str) -> dict[str, Any]:
    with RunStore.open_readonly(run) as store:
        return {rating.instance: rating for rating in store.reviews.ratings(reviewer)}


class Served(Protocol):
    """A review server: in this process (ReviewServer) or the command's."""

    url: str
    port: int


@dataclass
class Response:
    status: int
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    server: Served,
    method: str,
    path: str,
    body: Any = None,
    headers: Mapping[str, str] | None = None,
    *,
    raw: bytes | None = None,
    absolute: bool = False,
) -> Response:
    """One request to the server: `path` under its URL (or from the root when `absolute`),
    a JSON `body` (or `raw` bytes), application/json unless `headers` say otherwise."""
    sent = dict(headers or {})
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    if data is not None:
        sent.setdefault("Content-Type", "application/json")
    target = path if absolute else server.url.split(str(server.port), 1)[1] + path
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.request(method, target, body=data, headers=sent)
        response = connection.getresponse()
        return Response(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()
