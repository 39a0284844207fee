"""The options `run` and the stage commands share, and how they become a run's settings.

Besides the run directory, a config file, `--set`, budgets and `--estimate`, every option is
a `Flag` declared where its setting lives: the core settings here, each stage's in its
module, each backend's in its class. A new stage or backend brings its flags along.

Each command offers the options it uses (`setting_flags`): `run` all of them; a stage's
command what a run is made with only when it may start one, and otherwise its own flags, the
backends' when it sends requests, and (the stage that writes the dataset) the flags that
choose the checks it applies. The run is named `--out DIR` (created if missing, where the
command may start a run) or `--run DIR` (an existing run)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import click

from selfinstruct.config import PROMPT_STYLES, Flag
from selfinstruct.engine.stage import Stage
from selfinstruct.errors import RunError
from selfinstruct.llm.registry import backend_flags, known_backends
from selfinstruct.run.layers import Layers, nest
from selfinstruct.run.open import Limits, RunOptions
from selfinstruct.stages import registry
from selfinstruct.store.run_store import RunStore

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]

# What a run is made with: fixed once it holds records (a rerun may repeat them; a change is
# refused), so only the commands that may start a run offer them.
RUN_FLAGS = (
    Flag(
        ("--seeds",),
        "Seed tasks: the paper's JSONL, .txt (one instruction per line), .csv or .yaml. "
        "Default: the packaged seed set.",
        "seeds",
        kind="path",
    ),
    Flag(
        ("--num-instructions",),
        "Machine instructions to generate in total (paper default 100).",
        "num_instructions",
        kind="int",
        minimum=0,
    ),
    Flag(
        ("--backend",),
        "Language model backend (default: embedded).",
        "backend",
        kind="choice",
        choices_of=known_backends,
    ),
    Flag(
        ("--model",),
        "Model for the backend (embedded: a GGUF file path; default: the packaged "
        "SmolLM2-135M-Instruct).",
        "model",
    ),
    Flag(
        ("--prompt-style",),
        "completion: the paper's list continuation (base models); chat: messages for "
        "instruct models.",
        "prompt_style",
        kind="choice",
        choices=PROMPT_STYLES,
    ),
    Flag(("--random-seed",), "Seed for sampling and shuffling (42).", "random_seed", kind="int"),
)
# Each stage's templates are its own (a stage without records yet may take new ones; prepare's
# are the fine-tuning layouts), so every command offers them.
TEMPLATES_FLAG = Flag(
    ("--templates",),
    "Directory of prompt templates overriding ours file by file.",
    "templates",
    kind="path",
)
CORE_FLAGS = (*RUN_FLAGS, TEMPLATES_FLAG)

OUT_CREATES = "Run directory (created if missing; rerun to resume)."
OUT_EXISTING = "Run directory: an existing run (made by 'selfinstruct run' or 'bootstrap')."
RUN_EXISTING = "An existing run to continue (as --out, but never starts a new run)."
RUN_SAME = "The same as --out: the run to work on."

SET_HELP = (
    "Any setting, as SECTION.KEY=VALUE (repeatable), e.g. --set bootstrap.temperature=1 "
    "--set 'instances.stop=[\"Task:\"]'; VALUE is read as TOML (text may go unquoted). "
    "Applied over --config and the flags."
)


class NumberOrWord(click.ParamType):
    """A whole number >= 1, or one of a few words."""

    def __init__(self, words: tuple[str, ...], name: str) -> None:
        self.words = words
        self.name = name

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


class NamesOf(click.Choice):
    """A choice among names known when the command runs, not when it was built (backends:
    plug-ins come and go)."""

    def __init__(self, names: Callable[[], Sequence[str]]) -> None:
        self._names = names
        self.case_sensitive = True

    @property
    def choices(self) -> tuple[str, ...]:  # type: ignore[override]
        return tuple(self._names())


def setting_flags(stage: Stage | None = None) -> list[Flag]:
    """The flags that set settings a command uses: for `run` (no stage) every one, the core
    ones, the stages' in run order, then the backends'. For a stage's command: what a run is
    made with when it may start one; the templates; its own flags; for the stage that writes
    the dataset, those of the stages whose checks it applies (save how their requests are
    sent); the backends' when it sends requests."""
    if stage is None:
        stage_flags = [flag for each in registry.STAGES for flag in each.flags]
        return [*CORE_FLAGS, *stage_flags, *backend_flags()]
    found = [*RUN_FLAGS] if stage.creates_run else []
    found += [TEMPLATES_FLAG, *stage.flags]
    if stage.writes_dataset:
        checks = [each for each in registry.STAGES if each.screen is not None and each is not stage]
        found += [flag for each in checks for flag in each.flags if not flag.sending]
    if stage.generates:
        found += backend_flags()
    return found


def click_option(flag: Flag) -> Decorator:
    """The click option of a flag (every one defaults to None: not given)."""
    kwargs: dict[str, Any] = {"help": flag.help, "default": None}
    if flag.metavar:
        kwargs["metavar"] = flag.metavar
    if flag.multiple:
        kwargs.update(multiple=True, default=())
    if flag.kind != "switch":
        kwargs["type"] = _click_type(flag)
    return click.option(*flag.names, flag.parameter, **kwargs)


def _click_type(flag: Flag) -> Any:
    if flag.kind == "int":
        return click.IntRange(min=int(flag.minimum)) if flag.minimum is not None else int
    if flag.kind == "float":
        return click.FloatRange(min=flag.minimum) if flag.minimum is not None else float
    if flag.kind == "path":
        return click.Path(path_type=Path)
    if flag.kind == "choice":
        return NamesOf(flag.choices_of) if flag.choices_of else click.Choice(flag.choices)
    if flag.kind == "count":
        return NumberOrWord(flag.words, flag.metavar or "N")
    return str


def set_option(func: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--set", "sets", multiple=True, metavar="SECTION.KEY=VALUE", help=SET_HELP)(
        func
    )


def run_options(stage: Stage | None = None, *, out_help: str | None = None) -> Decorator:
    """The options of `run` (no stage) or of a stage's command: the run directory, as --out
    or --run (`run_directory` takes it from either), a config file, the setting flags it
    uses, budgets and --estimate when it sends requests, --set and --quiet (each setting
    defaults to the run's)."""
    creates = stage is None or stage.creates_run
    sends = stage is None or stage.generates
    options: list[Decorator] = [
        click.option(
            "--out",
            "out",
            type=click.Path(path_type=Path),
            metavar="DIR",
            help=out_help or (OUT_CREATES if creates else OUT_EXISTING),
        ),
        click.option(
            "--run",
            "run_dir",
            type=click.Path(path_type=Path),
            metavar="DIR",
            help=RUN_EXISTING if creates else RUN_SAME,
        ),
        click.option(
            "--config",
            "config_file",
            type=click.Path(path_type=Path),
            help="TOML file with any setting; flags override it.",
        ),
        *(click_option(flag) for flag in setting_flags(stage)),
    ]
    if sends:
        options += [
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
        ]
    options.append(set_option)
    if sends:
        options.append(
            click.option(
                "--estimate",
                is_flag=True,
                help="Print the expected requests, tokens and cost, and stop.",
            )
        )
    options.append(
        click.option("--quiet", "-q", is_flag=True, help="No progress bars or summaries.")
    )

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            func = option(func)
        return func

    return decorate


def run_directory(kwargs: dict[str, Any], *, creates: bool, required: bool = True) -> Path | None:
    """The run directory a command was given, as --out DIR or --run DIR (both: the same
    directory), put in kwargs["out"] (--run taken out). --run names an existing run: where
    --out could start one, a directory without a run is refused."""
    out, run = kwargs.get("out"), kwargs.pop("run_dir", None)
    if out is not None and run is not None and Path(out).resolve() != Path(run).resolve():
        raise click.UsageError(
            f"--out {out} and --run {run} name different directories; give one of them."
        )
    chosen = out if out is not None else run
    if chosen is None and required:
        raise click.UsageError("Missing option '--out' (or '--run').")
    if run is not None and creates and not RunStore.exists(run):
        raise RunError(
            f"{run} is not a run directory: --run continues an existing run (--out {run} "
            "starts a new one)"
        )
    kwargs["out"] = chosen
    return chosen


def given_settings(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The settings the flags given set, nested as in a config file (a command passes only
    the flags it offers; the others are not given)."""
    dotted: dict[str, Any] = {}
    for flag in setting_flags():
        dotted.update(flag.given(kwargs.get(flag.parameter)))
    return nest(dotted)


def run_options_from(kwargs: dict[str, Any]) -> RunOptions:
    layers = Layers(kwargs["config_file"], given_settings(kwargs), tuple(kwargs.get("sets") or ()))
    limits = Limits(kwargs.get("max_tokens"), kwargs.get("max_cost"))
    return RunOptions(out=kwargs["out"], layers=layers, quiet=kwargs["quiet"], limits=limits)
