"""How the fake backend answers: each stage (and evaluation's grader) says, for each kind of
request it sends, how a plausible answer looks, using text the fake backend lends it. So the
fake backend names no stage, and a new stage brings its fake answers along.

Answers are taught to the fake backend where they are declared (`teach`): declaring a `Stage`
teaches its `fake_answers`, and evaluation's grader teaches its own when its module loads.
A request is always built by the module that declares its kind, so the kind is known by the
time the request is answered; the test server imports every declaring module."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from selfinstruct.llm.base import Request


class FakeText(Protocol):
    """Plausible text for fake answers, drawn from `rng` (the request's own generator)."""

    rng: random.Random

    def instruction(self) -> str: ...
    def flawed_instruction(self, shown: Sequence[str]) -> str: ...
    def sentence(self) -> str: ...
    def rambling(self, words: int) -> str: ...
    def field(self) -> str: ...
    def label_set(self) -> Sequence[str]: ...


@dataclass(frozen=True)
class FakeAnswer:
    """How to answer one kind of request (`task`: the request's task, its template name).
    `marker`: text only prompts of this kind contain, to recognise requests that arrive over
    HTTP without their task; empty for the kind answered when nothing else matches."""

    task: str
    write: Callable[[FakeText, Request], str]
    marker: str = ""


_TAUGHT: dict[str, FakeAnswer] = {}  # by task, in the order they were taught


def teach(answers: Sequence[FakeAnswer]) -> None:
    """Tell the fake backend how to answer these kinds of request (a kind taught again keeps
    its first answer and place)."""
    for answer in answers:
        _TAUGHT.setdefault(answer.task, answer)


def taught_for(task: str) -> FakeAnswer | None:
    return _TAUGHT.get(task)


def taught() -> tuple[FakeAnswer, ...]:
    """Every answer taught so far, in the order taught."""
    return tuple(_TAUGHT.values())


def prompt_text(request: Request) -> str:
    """A request's prompt, or its messages' texts one per line."""
    return request.prompt or "\n".join(text for _, text in request.messages or ())
