"""The options `run` and the stage commands share, and how they become a run's settings."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from selfinstruct.config import PROMPT_STYLES
from selfinstruct.llm.registry import known_backends
from selfinstruct.run.estimate import format_estimate
from selfinstruct.run.layers import Layers
from selfinstruct.run.open import Limits, RunOptions, estimate_run
from selfinstruct.stages.bootstrap import AUTO_SCHEDULE, PAPER_SCHEDULE, TOKENIZERS

# Flags with a setting of their own (any other setting: --set SECTION.KEY=VALUE).
FLAG_KEYS = {
    "seeds": "seeds",
    "num_instructions": "num_instructions",
    "backend": "backend",
    "model": "model",
    "prompt_style": "prompt_style",
    "random_seed": "random_seed",
    "templates": "templates",
    "classification_only": "bootstrap.classification_only",
    "tokenizer": "bootstrap.tokenizer",
    "include_seed_tasks": "prepare.include_seed_tasks",
    "max_instances_per_task": "prepare.max_instances_per_task",
    "base_url": "openai.base_url",
    "api_key_env": "openai.api_key_env",
    "concurrency": "openai.max_concurrency",
    "requests_per_minute": "openai.requests_per_minute",
    "tokens_per_minute": "openai.tokens_per_minute",
    "judge_base_url": "judge.base_url",
    "judge_api_key_env": "judge.api_key_env",
    "judge_concurrency": "judge.concurrency",
    "judge_prompt_style": "judge.prompt_style",
    "relabel": "relabel.enabled",
    "batches_in_flight": "bootstrap.batches_in_flight",
}


class NumberOrWord(click.ParamType):
    """A whole number >= 1, or one of a few words."""

    words: tuple[str, ...] = ()

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        word = str(value).strip().lower()
        if word in self.words:
            return word
        try:
            number = int(word)
        except ValueError:
            self.fail(f"{value!r} is not a number or {' or '.join(self.words)}", param, ctx)
        if number < 1:
            self.fail(f"{number} is not >= 1", param, ctx)
        return number


class Concurrency(NumberOrWord):
    """Requests in flight, or 'auto'."""

    name = "N|auto"
    words = ("auto",)


class BatchesInFlight(NumberOrWord):
    """k >= 1, 'auto' or 'paper' (k = 1)."""

    name = "K|auto|paper"
    words = (AUTO_SCHEDULE, PAPER_SCHEDULE)


SET_HELP = (
    "Any setting, as SECTION.KEY=VALUE (repeatable), e.g. --set bootstrap.temperature=1 "
    "--set 'instances.stop=[\"Task:\"]'; VALUE is read as TOML (text may go unquoted). "
    "Applied over --config and the flags."
)


def set_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help=SET_HELP)(
        func
    )


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by `run` and the stage commands (each defaults to the run's setting)."""
    options: list[Callable[[Callable[..., Any]], Callable[..., Any]]] = [
        click.option(
            "--out",
            "out",
            required=True,
            type=click.Path(path_type=Path),
            help="Run directory (created if missing; rerun to resume).",
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            help="TOML file with any setting; flags override it.",
        ),
        click.option(
            "--seeds",
            type=click.Path(path_type=Path),
            help="Seed tasks: the paper's JSONL, .txt (one instruction per line), "
            ".csv or .yaml. Default: the packaged seed set.",
        ),
        click.option(
            "--num-instructions",
            type=click.IntRange(min=0),
            help="Machine instructions to generate in total (paper default 100).",
        ),
        click.option(
            "--backend",
            type=click.Choice(known_backends()),
            help="Language model backend (default: embedded).",
        ),
        click.option(
            "--model",
            help="Model for the backend (embedded: a GGUF file path; "
            "default: the packaged SmolLM2-135M-Instruct).",
        ),
        click.option(
            "--prompt-style",
            type=click.Choice(PROMPT_STYLES),
            help="completion: the paper's list continuation (base models); "
            "chat: messages for instruct models.",
        ),
        click.option("--random-seed", type=int, help="Seed for sampling and shuffling (42)."),
        click.option(
            "--templates",
            type=click.Path(path_type=Path),
            help="Directory of prompt templates overriding ours file by file.",
        ),
        click.option(
            "--classification-only/--no-classification-only",
            default=None,
            help="Bootstrap from classification seeds only, asking for classification tasks.",
        ),
        click.option(
            "--tokenizer",
            type=click.Choice(TOKENIZERS),
            help="ROUGE-L tokenizer: rouge (the reference, ASCII) or unicode.",
        ),
        click.option(
            "--include-seed-tasks/--no-include-seed-tasks",
            default=None,
            help="Add the seed tasks' instances to the fine-tuning data.",
        ),
        click.option(
            "--max-instances-per-task",
            type=click.IntRange(min=1),
            help="Cap on instances per task in the fine-tuning data (5).",
        ),
        click.option(
            "--base-url",
            help="openai backend: the server's base URL, e.g. "
            "http://127.0.0.1:8000/v1 (default: OpenAI's).",
        ),
        click.option(
            "--api-key-env",
            metavar="NAME",
            help="openai backend: environment variable holding the API key "
            "(default OPENAI_API_KEY). The key itself is never stored.",
        ),
        click.option(
            "--concurrency",
            type=Concurrency(),
            help="openai backend: requests kept in flight (16), or 'auto': start low and "
            "adapt to the server from its 429s, Retry-After and latency.",
        ),
        click.option(
            "--batches-in-flight",
            type=BatchesInFlight(),
            help="Bootstrap batches composed ahead of judging: batch b's prompts show the "
            "pool as judged after batch b - K. 'paper' (K = 1): the paper's schedule. "
            "Default 'auto': 8 for a server (keeps 16 requests busy), 1 for a local engine.",
        ),
        click.option(
            "--max-tokens",
            "max_tokens",
            type=click.IntRange(min=0),
            help="Stop before the run's tokens (all its answers, prompt and generated) "
            "could exceed N; a rerun with a larger budget continues.",
        ),
        click.option(
            "--max-cost",
            "max_cost",
            type=click.FloatRange(min=0),
            metavar="AMOUNT",
            help="Stop before the run's cost (at the [pricing] and judge prices) could "
            "exceed AMOUNT; a rerun with a larger budget continues.",
        ),
        click.option(
            "--requests-per-minute",
            type=click.FloatRange(min=0),
            help="openai backend: client-side request rate limit (0: none).",
        ),
        click.option(
            "--tokens-per-minute",
            type=click.FloatRange(min=0),
            help="openai backend: client-side token rate limit (0: none).",
        ),
        click.option(
            "--judge",
            metavar="BACKEND[:MODEL]",
            help="Judge every instance with this model (e.g. openai:gpt-4o-mini, embedded) "
            "and filter on its verdicts in prepare (prepare.min_rating, default B); "
            "'none' turns a run's judge off.",
        ),
        click.option(
            "--judge-base-url",
            help="The judge's OpenAI-compatible server (default: the [openai] section's).",
        ),
        click.option(
            "--judge-api-key-env",
            metavar="NAME",
            help="Environment variable holding the judge's API key (never stored).",
        ),
        click.option(
            "--judge-concurrency",
            type=Concurrency(),
            help="The judge's requests kept in flight (default: its backend's setting).",
        ),
        click.option(
            "--judge-prompt-style",
            "--judge-style",
            "judge_prompt_style",
            type=click.Choice(PROMPT_STYLES),
            help="How the judge is asked (default: the run's prompt style).",
        ),
        click.option(
            "--relabel/--no-relabel",
            default=None,
            help="Label consistency: the model labels each classification input again, "
            "input first; prepare drops the instances whose labels disagree.",
        ),
        click.option(
            "--decontaminate",
            "decontaminate",
            multiple=True,
            type=click.Path(path_type=Path),
            metavar="FILE",
            help="Evaluation tasks (the paper's user-oriented JSONL) to decontaminate "
            "against, repeatable (default: our packaged evaluation tasks).",
        ),
        set_option,
        click.option(
            "--estimate",
            is_flag=True,
            help="Print the expected requests, tokens and cost, and stop.",
        ),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or summaries."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def run_options_from(kwargs: dict[str, Any]) -> RunOptions:
    flags = {FLAG_KEYS[k]: v for k, v in kwargs.items() if k in FLAG_KEYS and v is not None}
    if kwargs.get("judge") is not None:
        backend, _, model = kwargs["judge"].strip().partition(":")
        backend = "" if backend.lower() in ("", "none") else backend
        flags.update({"judge.backend": backend, "judge.model": model if backend else ""})
    if kwargs.get("decontaminate"):
        files = [str(path.resolve()) for path in kwargs["decontaminate"]]
        flags.update({"prepare.decontaminate": True, "prepare.decontaminate_files": files})
    layers = Layers(kwargs["config_file"], flags, tuple(kwargs.get("sets") or ()))
    limits = Limits(kwargs.get("max_tokens"), kwargs.get("max_cost"))
    return RunOptions(out=kwargs["out"], layers=layers, quiet=kwargs["quiet"], limits=limits)


def estimated(kwargs: dict[str, Any]) -> bool:
    """With --estimate: print the estimate and tell the command to stop."""
    if kwargs["estimate"]:
        click.echo(format_estimate(*estimate_run(run_options_from(kwargs))))
    return bool(kwargs["estimate"])
