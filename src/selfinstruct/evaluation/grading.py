"""Grading candidates' answers with a model (`selfinstruct evaluate --judge`): the paper's
A/B/C/D rating of one response, and a pairwise preference between two responses asked in
both orders so that position bias cancels out."""

from __future__ import annotations

import re
from dataclasses import dataclass

from selfinstruct.evaluation.tasks import EvalTask
from selfinstruct.llm.base import Request
from selfinstruct.llm.fake_answers import FakeAnswer, FakeText, teach
from selfinstruct.prompts import TemplateSet, TemplateSpec

JUDGE_MAX_TOKENS = 96
_ASKED = frozenset({"instruction", "input", "reference"})
RATING_TEMPLATE = TemplateSpec("judge_rating", _ASKED | {"response"})
PAIRWISE_TEMPLATE = TemplateSpec("judge_pairwise", _ASKED | {"response_a", "response_b"})


@dataclass(frozen=True)
class Verdict:
    """A parsed judge answer: the choice (a rating, or A/B/tie) or None, and the reason."""

    choice: str | None
    reason: str


def rating_request(task: EvalTask, response: str, style: str, templates: TemplateSet) -> Request:
    return _judge_request(RATING_TEMPLATE, task, style, templates, response=response)


def pairwise_request(
    task: EvalTask, first: str, second: str, style: str, templates: TemplateSet
) -> Request:
    return _judge_request(
        PAIRWISE_TEMPLATE, task, style, templates, response_a=first, response_b=second
    )


def _judge_request(
    spec: TemplateSpec, task: EvalTask, style: str, templates: TemplateSet, **responses: str
) -> Request:
    prompt = templates.render(
        style,
        spec,
        instruction=task.instruction,
        input=task.input or "(none)",
        reference=task.reference,
        **{k: v or "(empty)" for k, v in responses.items()},
    )
    return Request(
        prompt=prompt.text,
        messages=prompt.messages,
        max_tokens=JUDGE_MAX_TOKENS,
        stop=("\n\n",) if style == "completion" else (),
        task=spec.name,
    )


def parse_rating(text: str) -> Verdict:
    """'Rating: B\\nReason: ...' or, after a prompt ending in 'Rating:', ' B\\nReason: ...'."""
    verdict = _parse(text, "Rating", r"[ABCD]")
    return Verdict(verdict.choice.upper() if verdict.choice else None, verdict.reason)


def parse_preference(text: str) -> Verdict:
    verdict = _parse(text, "Preferred", r"tie|Tie|TIE|A|B")
    choice = verdict.choice
    return Verdict("tie" if choice and choice.lower() == "tie" else choice, verdict.reason)


def _parse(text: str, label: str, choices: str) -> Verdict:
    """The answer at the very start (after a prompt ending in the label) wins over a labelled
    one later: small models go on to write further examples with labels of their own."""
    leading = re.match(rf"\s*\**\s*({choices})\b", text)
    labelled = re.search(rf"\**{label}\**\s*:\s*\**\s*({choices})\b", text, re.IGNORECASE)
    match = leading or labelled
    reason = re.search(r"Reason\s*:\s*(.+)", text)
    return Verdict(
        match.group(1) if match else None, reason.group(1).strip() if reason else text.strip()[:300]
    )


def combine(forward: str | None, backward: str | None) -> str | None:
    """One preference from both orders. forward: the judge's choice with model 1 shown as A;
    backward: with model 1 shown as B. Returns "1", "2", "tie", or None if unparsed. Only a
    preference that survives swapping the positions counts; otherwise it is a tie."""
    if forward is None or backward is None:
        return None
    first = {"A": "1", "B": "2", "tie": "tie"}[forward]
    second = {"A": "2", "B": "1", "tie": "tie"}[backward]
    return first if first == second else "tie"


def _fake_rating(text: FakeText, request: Request) -> str:
    rating = text.rng.choice("AABBCD")  # completion prompts end in "Rating:" already
    return f"{'' if request.prompt else 'Rating:'} {rating}\nReason: {text.sentence()}"


def _fake_preference(text: FakeText, request: Request) -> str:
    choice = text.rng.choice(["A", "B", "tie"])
    return f"{'' if request.prompt else 'Preferred:'} {choice}\nReason: {text.sentence()}"


# How the fake backend answers the judge (see llm/fake_answers.py).
FAKE_ANSWERS = (
    FakeAnswer(PAIRWISE_TEMPLATE.name, _fake_preference, marker="Preferred: <A, B or tie>"),
    FakeAnswer(RATING_TEMPLATE.name, _fake_rating, marker="Rating: <A, B, C or D>"),
)
teach(FAKE_ANSWERS)
