"""`selfinstruct evaluate`: models answer user-oriented tasks; ROUGE-L and an LLM judge."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from selfinstruct.commands.common import handle_errors
from selfinstruct.commands.options import set_option
from selfinstruct.config import Config
from selfinstruct.errors import InputError
from selfinstruct.evaluation.models import build, parse_candidate, parse_spec
from selfinstruct.evaluation.run import Candidate, Settings
from selfinstruct.evaluation.run import evaluate as run_evaluation
from selfinstruct.evaluation.tasks import read_tasks
from selfinstruct.llm.base import LLM
from selfinstruct.prompts import TemplateSet
from selfinstruct.run.layers import Layers, layered, nest

STYLES = ("completion", "chat")


@click.command()
@click.option(
    "--candidate",
    "candidates",
    multiple=True,
    required=True,
    metavar="LABEL=SPEC",
    help="A model to evaluate, as LABEL=BACKEND[:MODEL] (repeat for several): "
    "base=embedded, tuned=transformers:out/merged, gpt=openai:gpt-4o-mini.",
)
@click.option(
    "--judge",
    default=None,
    metavar="BACKEND[:MODEL]",
    help="The judge for A/B/C/D ratings and pairwise preference (none: ROUGE-L only).",
)
@click.option(
    "--pairwise",
    "pairwise",
    default=None,
    metavar="LABEL1,LABEL2",
    help="Compare two candidates with the judge (default with a judge: the first two candidates).",
)
@click.option(
    "--tasks",
    "tasks_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Tasks in the paper's user-oriented format (default: our 60 tasks).",
)
@click.option(
    "--max-tasks", type=click.IntRange(min=1), default=None, help="Use only the first N tasks."
)
@click.option(
    "--prompt-style",
    type=click.Choice(STYLES),
    default="completion",
    help="How candidates are asked: completion (the fine-tuning prompt format) or "
    "chat (one user message).",
)
@click.option(
    "--judge-style",
    "--judge-prompt-style",
    "judge_style",
    type=click.Choice(STYLES),
    default="chat",
    help="How the judge is asked.",
)
@click.option(
    "--max-tokens", type=click.IntRange(min=1), default=256, help="Longest answer, in tokens."
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML config for backend settings (embedded, openai).",
)
@click.option(
    "--templates",
    type=click.Path(path_type=Path),
    default=None,
    help="Directory overriding prompt templates (judge_rating, judge_pairwise, ...).",
)
@click.option("--base-url", default=None, help="OpenAI-compatible server for openai models.")
@click.option("--api-key-env", default=None, help="Environment variable holding the API key.")
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Directory for results.jsonl, pairwise.jsonl, summary.json, summary.md.",
)
@set_option
@click.option("--quiet", "-q", is_flag=True, help="No progress bars.")
@handle_errors
def evaluate(**kwargs: Any) -> None:
    """Evaluate models on user-oriented tasks: ROUGE-L against the reference outputs, and with
    --judge the paper's A/B/C/D ratings and a pairwise win rate (both orders, so position
    bias cancels)."""
    config = _config(kwargs)
    tasks = read_tasks(kwargs["tasks_file"])[: kwargs["max_tasks"]]
    parsed = [parse_candidate(text) for text in kwargs["candidates"]]
    labels = [label for label, _, _ in parsed]
    if len(set(labels)) != len(labels):
        raise InputError("--candidate", "two candidates share a label; name them LABEL=...")
    pairs = _pairs(kwargs["pairwise"], labels, kwargs["judge"] is not None)
    templates = TemplateSet(kwargs["templates"])
    out: Path = kwargs["out"]
    if out.exists() and not out.is_dir():
        raise InputError(out, "exists and is not a directory")
    judge_spec = parse_spec(kwargs["judge"], "--judge") if kwargs["judge"] else None
    settings = Settings(
        style=kwargs["prompt_style"],
        judge_style=kwargs["judge_style"],
        max_tokens=kwargs["max_tokens"],
        end_of_text=config.prepare.end_of_text,
        quiet=kwargs["quiet"],
    )
    opened: list[LLM] = []
    try:
        judge = _open(opened, config, *judge_spec, settings.judge_style) if judge_spec else None
        candidates = [
            Candidate(
                label,
                f"{backend}:{model}" if model else backend,
                _open(opened, config, backend, model, settings.style),
            )
            for label, backend, model in parsed
        ]
        table = run_evaluation(tasks, candidates, judge, pairs, templates, settings, out)
    finally:
        for llm in opened:
            llm.close()
    click.echo(table)
    click.echo(
        f"\nwritten to {kwargs['out']}: results.jsonl"
        + (", pairwise.jsonl" if pairs else "")
        + ", summary.json, summary.md"
    )


def _open(opened: list[LLM], config: Config, backend: str, model: str, style: str) -> LLM:
    llm = build(config, backend, model, style)
    opened.append(llm)
    return llm


def _config(kwargs: dict[str, Any]) -> Config:
    flags = {"openai.base_url": kwargs["base_url"], "openai.api_key_env": kwargs["api_key_env"]}
    return layered(Layers(kwargs["config_file"], nest(flags), kwargs["sets"]))


def _pairs(option: str | None, labels: list[str], judged: bool) -> list[tuple[str, str]]:
    if option is None:
        return [(labels[0], labels[1])] if judged and len(labels) >= 2 else []
    if not judged:
        raise InputError("--pairwise", "needs --judge")
    names = [n.strip() for n in option.split(",")]
    if len(names) != 2 or names[0] == names[1] or any(n not in labels for n in names):
        raise InputError(
            "--pairwise",
            f"expected two different candidate labels out of {', '.join(labels)}, got '{option}'",
        )
    return [(names[0], names[1])]
