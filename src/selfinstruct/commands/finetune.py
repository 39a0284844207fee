"""`selfinstruct finetune`: LoRA fine-tuning on a run's data or an exported file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from selfinstruct.commands.common import handle_errors
from selfinstruct.commands.options import set_option
from selfinstruct.errors import RunError
from selfinstruct.prompts import TemplateSet
from selfinstruct.run.layers import Layers, layered
from selfinstruct.store.run_store import RunStore
from selfinstruct.training.data import load_rows
from selfinstruct.training.finetune import FinetuneSettings
from selfinstruct.training.finetune import finetune as run_finetune


@click.command()
@click.option(
    "--data",
    type=click.Path(path_type=Path),
    help="A run directory (its finetuning_data/gpt3_*.jsonl) or an exported file: "
    "prompt-completion or OpenAI chat JSONL, Alpaca JSON.",
)
@click.option(
    "--run",
    "run_dir",
    type=click.Path(path_type=Path, file_okay=False),
    help="A run to train on its data (the same as --data DIR).",
)
@click.option(
    "--base",
    default="embedded",
    show_default=True,
    help="Base model: 'embedded' (the packaged SmolLM2 GGUF), a .gguf file, or a "
    "Hugging Face model directory.",
)
@click.option(
    "--out",
    required=True,
    type=click.Path(path_type=Path),
    help="Output directory: adapter/, merged/, README.md, training_log.jsonl.",
)
@click.option(
    "--epochs",
    type=click.FloatRange(min=0, min_open=True),
    default=2.0,
    show_default=True,
    help="Training epochs (the paper used 2).",
)
@click.option(
    "--max-steps",
    type=int,
    default=-1,
    help="Stop after this many optimizer steps (overrides --epochs).",
)
@click.option(
    "--learning-rate",
    type=click.FloatRange(min=0, min_open=True),
    default=2e-4,
    show_default=True,
    help="Peak learning rate.",
)
@click.option(
    "--lora-rank", type=click.IntRange(min=1), default=8, show_default=True, help="LoRA rank r."
)
@click.option(
    "--lora-alpha",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="LoRA scaling alpha.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=4,
    show_default=True,
    help="Examples per device per step.",
)
@click.option(
    "--max-length",
    type=click.IntRange(min=16),
    default=512,
    show_default=True,
    help="Longest tokenized example (longer ones are truncated).",
)
@click.option(
    "--chat-template",
    type=click.Path(path_type=Path, exists=True),
    default=None,
    help="A Jinja chat template file for chat data (default: the tokenizer's).",
)
@click.option(
    "--loss-on-prompt",
    is_flag=True,
    help="Train on prompt tokens too (default: completion only, as the paper).",
)
@click.option("--seed", type=int, default=42, show_default=True, help="Training seed.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(path_type=Path),
    default=None,
    help="TOML config (templates and end-of-text marker for Alpaca files).",
)
@set_option
@click.option("--quiet", "-q", is_flag=True, help="No progress output.")
@handle_errors
def finetune(**kwargs: Any) -> None:
    """Fine-tune a model with LoRA (TRL + PEFT) on generated data; CPU for small models, GPU
    when present. Needs the train extra: pip install 'selfinstruct[train]'."""
    kwargs["data"] = training_data(kwargs["data"], kwargs.pop("run_dir"))
    config = layered(Layers(kwargs["config_file"], {}, kwargs["sets"]))
    out: Path = kwargs["out"]
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise RunError(f"{out} exists and is not an empty directory")
    templates = TemplateSet(config.templates or None)
    rows = load_rows(kwargs["data"], templates, config.prepare.end_of_text)
    settings = FinetuneSettings(
        epochs=kwargs["epochs"],
        learning_rate=kwargs["learning_rate"],
        lora_rank=kwargs["lora_rank"],
        lora_alpha=kwargs["lora_alpha"],
        batch_size=kwargs["batch_size"],
        max_length=kwargs["max_length"],
        max_steps=kwargs["max_steps"],
        completion_only_loss=not kwargs["loss_on_prompt"],
        chat_template=str(kwargs["chat_template"] or ""),
        seed=kwargs["seed"],
    )
    if not kwargs["quiet"]:
        click.echo(
            f"fine-tuning {kwargs['base']} on {len(rows)} examples from {kwargs['data']}", err=True
        )
    result = run_finetune(
        rows, kwargs["data"], kwargs["base"], out, settings, quiet=kwargs["quiet"]
    )
    click.echo(
        f"adapter: {result.adapter}\nmerged model: {result.merged}\n"
        f"model card: {result.card}\nsteps {result.steps}, mean loss of the first "
        f"and last tenth of the steps {_fmt(result.first_loss)} -> "
        f"{_fmt(result.last_loss)}, {result.seconds:.0f}s"
    )


def training_data(data: Path | None, run: Path | None) -> Path:
    """What to train on: --data (a run or a file), or the run --run names."""
    if data is not None and run is not None and data.resolve() != run.resolve():
        raise click.UsageError(f"--data {data} and --run {run} name different data; give one")
    if run is not None and not RunStore.exists(run):
        raise RunError(f"{run} is not a run directory (--data takes an exported file)")
    found = data or run
    if found is None:
        raise click.UsageError("Missing option '--data' (or '--run').")
    return found


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"
