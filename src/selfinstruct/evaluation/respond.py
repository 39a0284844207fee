"""Ask a model to answer evaluation tasks, and collect answers from any backend."""

from __future__ import annotations

from collections.abc import Sequence

from tqdm import tqdm

from selfinstruct.evaluation.tasks import EvalTask
from selfinstruct.llm.base import LLM, Completion, Failure, Request
from selfinstruct.llm.untrusted import storable_completion
from selfinstruct.prompts import TemplateSet, TemplateSpec

ANSWER_TEMPLATE = TemplateSpec("evaluate_answer", frozenset({"instruction"}), frozenset({"input"}))


def answer_request(
    task: EvalTask, style: str, templates: TemplateSet, end_of_text: str, max_tokens: int
) -> Request:
    """The prompt a model answers: in the completion style the first fine-tuning layout (the
    format a model fine-tuned on our data was trained on), in the chat style one user turn."""
    if style == "chat":
        prompt = templates.render(
            "chat", ANSWER_TEMPLATE, instruction=task.instruction, input=task.input
        )
        return Request(messages=prompt.messages, max_tokens=max_tokens, task="evaluate")
    layouts = templates.finetune_layouts()["with_input" if task.input else "without_input"]
    text = layouts[0].prompt.substitute(
        instruction=task.instruction, input=task.input, end_of_text=end_of_text
    )
    stop = (end_of_text,) if end_of_text else ()
    return Request(prompt=text, max_tokens=max_tokens, stop=stop, task="evaluate")


def collect(
    llm: LLM, requests: Sequence[Request], label: str, quiet: bool
) -> list[Completion | Failure]:
    """Every request's result, in order, with a progress bar."""
    results: list[Completion | Failure | None] = [None] * len(requests)
    with tqdm(
        total=len(requests), desc=f"{label:>12}", unit="req", disable=quiet, dynamic_ncols=True
    ) as bar:

        def done(index: int, result: Completion | Failure) -> None:
            results[index] = (
                storable_completion(result) if isinstance(result, Completion) else result
            )
            bar.update(1)

        llm.stream(list(requests), done)
    return [r if r is not None else Failure("missing", 0, "no result") for r in results]


def answer_text(result: Completion | Failure) -> str | None:
    return result.text.strip() if isinstance(result, Completion) else None
