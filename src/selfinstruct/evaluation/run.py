"""One evaluation: every candidate model answers every task, answers are scored by ROUGE-L
against the reference and, with a judge, rated A/B/C/D and compared pairwise (both orders).
Results go to OUT/results.jsonl, OUT/pairwise.jsonl, OUT/summary.json and OUT/summary.md."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from selfinstruct.evaluation.grading import (
    combine,
    pairwise_request,
    parse_preference,
    parse_rating,
    rating_request,
)
from selfinstruct.evaluation.respond import answer_request, answer_text, collect
from selfinstruct.evaluation.summary import format_table, model_summary, pair_summary
from selfinstruct.evaluation.tasks import EvalTask
from selfinstruct.io.atomic import write_atomic, write_json, write_jsonl
from selfinstruct.llm.base import LLM, Completion, Failure
from selfinstruct.prompts import TemplateSet
from selfinstruct.similarity.rouge import rouge_l


@dataclass(frozen=True)
class Candidate:
    label: str
    spec: str
    llm: LLM


@dataclass(frozen=True)
class Settings:
    style: str = "completion"  # how candidates are prompted
    judge_style: str = "chat"
    max_tokens: int = 256
    end_of_text: str = "<|endoftext|>"
    quiet: bool = False


def evaluate(
    tasks: Sequence[EvalTask],
    candidates: Sequence[Candidate],
    judge: LLM | None,
    pairs: Sequence[tuple[str, str]],
    templates: TemplateSet,
    settings: Settings,
    out: Path,
) -> str:
    """Run the evaluation and write its files; returns the summary table."""
    out.mkdir(parents=True, exist_ok=True)  # fails before any request is paid for
    (out / "pairwise.jsonl").unlink(missing_ok=True)  # never beside a newer summary
    answers = {c.label: _answers(c, tasks, templates, settings) for c in candidates}
    rows = {
        label: [_row(task, label, result) for task, result in zip(tasks, results, strict=True)]
        for label, results in answers.items()
    }
    if judge is not None:
        for label, model_rows in rows.items():
            _rate(judge, tasks, model_rows, label, templates, settings)
    comparisons = (
        [_compare(judge, tasks, rows, pair, templates, settings) for pair in pairs]
        if judge is not None
        else []
    )

    models = [
        model_summary(
            label,
            [r["rouge_l"] for r in model_rows],
            [r["rating"] for r in model_rows if r["output"] is not None]
            if judge is not None
            else None,
        )
        for label, model_rows in rows.items()
    ]
    summaries = [
        pair_summary(a, b, [r["outcome"] for r in records])
        for (a, b), records in zip(pairs, comparisons, strict=True)
    ]
    table = format_table(models, summaries)
    write_jsonl(out / "results.jsonl", [r for model_rows in rows.values() for r in model_rows])
    if comparisons:
        write_jsonl(out / "pairwise.jsonl", [r for records in comparisons for r in records])
    write_json(
        out / "summary.json",
        {
            "tasks": len(tasks),
            "candidates": {c.label: c.spec for c in candidates},
            "settings": dataclasses.asdict(settings),
            "models": [dataclasses.asdict(m) for m in models],
            "pairwise": [dataclasses.asdict(p) for p in summaries],
        },
    )
    write_atomic(out / "summary.md", [table + "\n"])
    return table


def _answers(
    candidate: Candidate, tasks: Sequence[EvalTask], templates: TemplateSet, settings: Settings
) -> list[Completion | Failure]:
    requests = [
        answer_request(t, settings.style, templates, settings.end_of_text, settings.max_tokens)
        for t in tasks
    ]
    return collect(candidate.llm, requests, candidate.label, settings.quiet)


def _row(task: EvalTask, label: str, result: Completion | Failure) -> dict:
    text = answer_text(result)
    return {
        "id": task.id,
        "motivation_app": task.motivation_app,
        "instruction": task.instruction,
        "input": task.input,
        "reference": task.reference,
        "model": label,
        "output": text,
        "finish_reason": result.finish_reason if isinstance(result, Completion) else None,
        "error": None if isinstance(result, Completion) else f"{result.reason}: {result.detail}",
        "rouge_l": rouge_l(task.reference, text) if text is not None else None,
        "rating": None,
        "rating_reason": None,
    }


def _rate(
    judge: LLM,
    tasks: Sequence[EvalTask],
    rows: list[dict],
    label: str,
    templates: TemplateSet,
    settings: Settings,
) -> None:
    todo = [(task, row) for task, row in zip(tasks, rows, strict=True) if row["output"] is not None]
    requests = [
        rating_request(task, row["output"], settings.judge_style, templates) for task, row in todo
    ]
    results = collect(judge, requests, f"judge {label}"[:12], settings.quiet)
    for (_, row), result in zip(todo, results, strict=True):
        if isinstance(result, Completion):
            verdict = parse_rating(result.text)
            row["rating"], row["rating_reason"] = verdict.choice, verdict.reason
        else:
            row["rating_reason"] = f"judge failed: {result.reason}"


def _compare(
    judge: LLM,
    tasks: Sequence[EvalTask],
    rows: dict[str, list[dict]],
    pair: tuple[str, str],
    templates: TemplateSet,
    settings: Settings,
) -> list[dict]:
    first, second = pair
    both = [
        (t, a["output"], b["output"])
        for t, a, b in zip(tasks, rows[first], rows[second], strict=True)
        if a["output"] is not None and b["output"] is not None
    ]
    records = [
        _forfeit(t, a, b, first, second)
        for t, a, b in zip(tasks, rows[first], rows[second], strict=True)
        if (a["output"] is None) != (b["output"] is None)
    ]
    requests = []
    for task, one, two in both:
        requests.append(pairwise_request(task, one, two, settings.judge_style, templates))
        requests.append(pairwise_request(task, two, one, settings.judge_style, templates))
    results = collect(judge, requests, "pairwise", settings.quiet)
    for index, (task, _, _) in enumerate(both):
        forward, backward = (
            parse_preference(r.text) if isinstance(r, Completion) else None
            for r in results[2 * index : 2 * index + 2]
        )
        outcome = combine(
            forward.choice if forward else None, backward.choice if backward else None
        )
        records.append(
            {
                "id": task.id,
                "first": first,
                "second": second,
                "first_shown_as_a": dataclasses.asdict(forward) if forward else None,
                "first_shown_as_b": dataclasses.asdict(backward) if backward else None,
                "outcome": outcome,
                "winner": {"1": first, "2": second, "tie": "tie", None: None}[outcome],
            }
        )
    return records


def _forfeit(task: EvalTask, a: dict, b: dict, first: str, second: str) -> dict:
    """Only one of the two answered: the one that answered wins without a judge."""
    outcome = "1" if a["output"] is not None else "2"
    return {
        "id": task.id,
        "first": first,
        "second": second,
        "first_shown_as_a": None,
        "first_shown_as_b": None,
        "outcome": outcome,
        "winner": first if outcome == "1" else second,
        "note": "the other answer failed",
    }
