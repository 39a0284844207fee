"""The `selfinstruct` command."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import click

from selfinstruct.commands.common import handle_errors
from selfinstruct.commands.evaluate import evaluate
from selfinstruct.commands.finetune import finetune
from selfinstruct.commands.validate import validate
from selfinstruct.config import PROMPT_STYLES, TOKENIZERS
from selfinstruct.exporters import FORMATS
from selfinstruct.llm.registry import known_backends
from selfinstruct.pipeline import (
    RunOptions,
    open_run,
    print_estimate,
    stage_bootstrap,
    stage_classify,
    stage_instances,
    stage_prepare,
)
from selfinstruct.reporting.summary import format_total
from selfinstruct.stages.batch_files import describe, read_batch, write_batch
from selfinstruct.stages.classify import plan_classify
from selfinstruct.stages.context import RunContext
from selfinstruct.stages.instances import plan_instances

PER_INSTRUCTION = {
    "classify": (plan_classify, stage_classify),
    "instances": (plan_instances, stage_instances),
}

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
}


def run_options(func: Callable[..., Any]) -> Callable[..., Any]:
    """Options shared by `run` and the stage commands (each defaults to the run's setting)."""
    options = [
        click.option("--out", "out", required=True, type=click.Path(path_type=Path),
                     help="Run directory (created if missing; rerun to resume)."),
        click.option("--config", "config_file", type=click.Path(path_type=Path),
                     help="TOML file with any setting; flags override it."),
        click.option("--seeds", type=click.Path(path_type=Path),
                     help="Seed tasks: the paper's JSONL, .txt (one instruction per line), "
                          ".csv or .yaml. Default: the packaged seed set."),
        click.option("--num-instructions", type=click.IntRange(min=0),
                     help="Machine instructions to generate in total (paper default 100)."),
        click.option("--backend", type=click.Choice(known_backends()),
                     help="Language model backend (default: embedded)."),
        click.option("--model", help="Model for the backend (embedded: a GGUF file path; "
                                       "default: the packaged SmolLM2-135M-Instruct)."),
        click.option("--prompt-style", type=click.Choice(PROMPT_STYLES),
                     help="completion: the paper's list continuation (base models); "
                          "chat: messages for instruct models."),
        click.option("--random-seed", type=int, help="Seed for sampling and shuffling (42)."),
        click.option("--templates", type=click.Path(path_type=Path),
                     help="Directory of prompt templates overriding ours file by file."),
        click.option("--classification-only/--no-classification-only", default=None,
                     help="Bootstrap from classification seeds only, asking for "
                          "classification tasks."),
        click.option("--tokenizer", type=click.Choice(TOKENIZERS),
                     help="ROUGE-L tokenizer: rouge (the reference, ASCII) or unicode."),
        click.option("--include-seed-tasks/--no-include-seed-tasks", default=None,
                     help="Add the seed tasks' instances to the fine-tuning data."),
        click.option("--max-instances-per-task", type=click.IntRange(min=1),
                     help="Cap on instances per task in the fine-tuning data (5)."),
        click.option("--base-url", help="openai backend: the server's base URL, e.g. "
                                         "http://127.0.0.1:8000/v1 (default: OpenAI's)."),
        click.option("--api-key-env", metavar="NAME",
                     help="openai backend: environment variable holding the API key "
                          "(default OPENAI_API_KEY). The key itself is never stored."),
        click.option("--concurrency", type=click.IntRange(min=1),
                     help="openai backend: requests kept in flight (16)."),
        click.option("--requests-per-minute", type=click.FloatRange(min=0),
                     help="openai backend: client-side request rate limit (0: none)."),
        click.option("--tokens-per-minute", type=click.FloatRange(min=0),
                     help="openai backend: client-side token rate limit (0: none)."),
        click.option("--estimate", is_flag=True,
                     help="Print the expected requests, tokens and cost, and stop."),
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or summaries."),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def _options(kwargs: dict[str, Any]) -> RunOptions:
    overrides = {FLAG_KEYS[k]: v for k, v in kwargs.items() if k in FLAG_KEYS and v is not None}
    return RunOptions(out=kwargs["out"], config_file=kwargs["config_file"],
                      overrides=overrides, quiet=kwargs["quiet"])


@contextmanager
def opened(kwargs: dict[str, Any], *, create: bool, generate: bool = True) -> Iterator[RunContext]:
    """The run named by the flags, open for the duration of the block (`generate`: the
    command may send requests, so the backend is checked before anything else)."""
    ctx = open_run(_options(kwargs), create=create, generate=generate)
    try:
        yield ctx
    finally:
        ctx.close()
        ctx.store.close()


def _estimated(kwargs: dict[str, Any]) -> bool:
    """With --estimate: print the estimate and tell the command to stop."""
    if kwargs["estimate"]:
        click.echo(print_estimate(_options(kwargs)))
    return bool(kwargs["estimate"])


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="selfinstruct")
def main() -> None:
    """Generate instruction-tuning data from a few seed tasks with a language model,
    following Self-Instruct (Wang et al., 2022): bootstrap -> classify -> instances -> prepare."""


@main.command()
@run_options
@handle_errors
def run(**kwargs: Any) -> None:
    """Run all four stages into the run directory --out (resumes an existing run)."""
    if _estimated(kwargs):
        return
    with opened(kwargs, create=True) as ctx:
        stages = [stage_bootstrap(ctx), stage_classify(ctx), stage_instances(ctx)]
        prepared, paths = stage_prepare(ctx)
    if not kwargs["quiet"]:
        click.echo(format_total([*stages, prepared], ctx.config.pricing), err=True)
    _print_outputs(paths)


@main.command()
@run_options
@handle_errors
def bootstrap(**kwargs: Any) -> None:
    """Stage 1: generate new instructions from the task pool (creates the run)."""
    if _estimated(kwargs):
        return
    with opened(kwargs, create=True) as ctx:
        stage_bootstrap(ctx)


def batch_options(func: Callable[..., Any]) -> Callable[..., Any]:
    func = click.option("--batch-in", type=click.Path(path_type=Path),
                        help="Read a batch results file (OpenAI Batch API or vllm run-batch "
                             "output) into the run, then run the stage.")(func)
    return click.option("--batch-out", type=click.Path(path_type=Path),
                        help="Write the stage's pending requests as OpenAI Batch API JSONL "
                             "(what vllm run-batch reads) and stop.")(func)


def _per_instruction_stage(kwargs: dict[str, Any], stage: str) -> None:
    batch_out, batch_in = kwargs.pop("batch_out"), kwargs.pop("batch_in")
    if batch_out and batch_in:
        raise click.UsageError("--batch-out and --batch-in go in separate runs")
    if _estimated(kwargs):
        return
    plan, run_stage = PER_INSTRUCTION[stage]
    with opened(kwargs, create=False) as ctx:
        if batch_out:
            count = write_batch(ctx, plan(ctx), batch_out)
            click.echo(f"wrote {count} {stage} requests to {batch_out}")
            return
        if batch_in:
            counts = read_batch(ctx, plan(ctx), batch_in)
            click.echo(f"read {batch_in}: {describe(counts)}", err=True)
        run_stage(ctx)


@main.command()
@run_options
@batch_options
@handle_errors
def classify(**kwargs: Any) -> None:
    """Stage 2: decide which instructions are classification tasks."""
    _per_instruction_stage(kwargs, "classify")


@main.command()
@run_options
@batch_options
@handle_errors
def instances(**kwargs: Any) -> None:
    """Stage 3: generate input/output instances for each instruction."""
    _per_instruction_stage(kwargs, "instances")


@main.command()
@run_options
@click.option("--import-instances", type=click.Path(path_type=Path),
              help="The paper's machine_generated_instances.jsonl from another run.")
@click.option("--import-labels", type=click.Path(path_type=Path),
              help="The paper's is_clf_or_not_*.jsonl matching --import-instances.")
@handle_errors
def prepare(import_instances: Path | None, import_labels: Path | None, **kwargs: Any) -> None:
    """Stage 4: parse, filter and write fine-tuning data and exports. With --import-instances
    and --import-labels, works on the paper's intermediate files instead of a run."""
    if _estimated(kwargs):
        return
    if (import_instances is None) != (import_labels is None):
        raise click.UsageError("--import-instances and --import-labels go together")
    if import_instances is not None and import_labels is not None:
        from selfinstruct.datasets import prepare_imported

        paths = prepare_imported(_options(kwargs), import_instances, import_labels)
    else:
        with opened(kwargs, create=False, generate=False) as ctx:
            _, paths = stage_prepare(ctx)
    _print_outputs(paths)


@main.command()
@click.option("--run", "run_dir", required=True, type=click.Path(path_type=Path),
              help="Run directory to export from.")
@click.option("--format", "fmt", required=True, type=click.Choice(sorted(FORMATS)),
              help="alpaca (JSON array of instruction/input/output), openai-chat "
                   "(chat fine-tuning JSONL), prompt-completion (JSONL).")
@click.option("--out", "out_file", required=True, type=click.Path(path_type=Path),
              help="File to write.")
@click.option("--quiet", "-q", is_flag=True, help="No summary.")
@handle_errors
def export(run_dir: Path, fmt: str, out_file: Path, quiet: bool) -> None:
    """Write a run's dataset in one format to a file."""
    from selfinstruct.datasets import export_run

    count = export_run(run_dir, fmt, out_file, quiet=quiet)
    click.echo(f"wrote {count} records to {out_file}")
    if fmt == "openai-chat" and not quiet:
        from selfinstruct.training.hosted import check_chat_file, format_report

        click.echo(format_report(check_chat_file(out_file)))


def _print_outputs(paths: list[Path]) -> None:
    click.echo("Dataset written:")
    for path in paths:
        click.echo(f"  {path}")


main.add_command(evaluate)
main.add_command(finetune)
main.add_command(validate)
