"""What each command offers: only the options it uses (a stage that cannot start a run offers
none of what a run is made with), and the run it works on as `--run DIR` on every command
that works on an existing run (the stage commands also as `--out DIR`, as before)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import click
import pytest
from conftest import cli, records_snapshot

from selfinstruct.cli import main
from selfinstruct.llm.registry import backend_flags

# What a run is made with: fixed once it holds records, so only `run` and `bootstrap` (which
# may start one) offer them.
RUN_MADE_WITH = {
    "--seeds",
    "--num-instructions",
    "--backend",
    "--model",
    "--prompt-style",
    "--random-seed",
}
BOOTSTRAP = {"--classification-only", "--tokenizer", "--batches-in-flight"}
RELABEL = {"--relabel"}
JUDGE = {"--judge", "--judge-base-url", "--judge-api-key-env", "--judge-concurrency"}
JUDGE_STYLE = {"--judge-prompt-style"}
PREPARE = {"--include-seed-tasks", "--max-instances-per-task", "--decontaminate"}
EVERY = {"--out", "--run", "--config", "--set", "--quiet", "--templates"}
# What only a command that sends requests uses: the backends' flags, budgets, --estimate.
SENDING = {"--max-tokens", "--max-cost", "--estimate"} | {f.names[0] for f in backend_flags()}
BATCH = {"--batch-out", "--batch-in"}

OFFERED = {
    "run": EVERY | SENDING | RUN_MADE_WITH | BOOTSTRAP | RELABEL | JUDGE | JUDGE_STYLE | PREPARE,
    "bootstrap": EVERY | SENDING | RUN_MADE_WITH | BOOTSTRAP,
    "classify": EVERY | SENDING | BATCH,
    "instances": EVERY | SENDING | BATCH,
    "relabel": EVERY | SENDING | BATCH | RELABEL,
    "judge": EVERY | SENDING | BATCH | JUDGE | JUDGE_STYLE | {"--calibrate"},
    # prepare applies the label-consistency and judge checks (which judge's verdicts: its
    # model and style, not where it is served); it sends no request.
    "prepare": EVERY
    | PREPARE
    | RELABEL
    | {"--judge"}
    | JUDGE_STYLE
    | {"--import-instances", "--import-labels"},
}
CREATES = {"run", "bootstrap"}
# The commands that are not a stage's: each option is one the command reads.
OTHERS = {
    "export": {"--run", "--format", "--out", "--provenance", "--quiet"},
    "report": {"--run", "--out", "--compare", "--no-verbs"},
    "review": {
        *("--run", "--sample", "--per-task", "--reviewer", "--port", "--open"),
        *("--export", "--import"),
    },
    "merge": {"--out", "--no-prepare", "--quiet"},
    "evaluate": {
        *("--candidate", "--judge", "--pairwise", "--tasks", "--max-tasks", "--prompt-style"),
        *("--judge-style", "--max-tokens", "--config", "--templates", "--base-url"),
        *("--api-key-env", "--out", "--set", "--quiet"),
    },
    "finetune": {
        *("--data", "--run", "--base", "--out", "--epochs", "--max-steps", "--learning-rate"),
        *("--lora-rank", "--lora-alpha", "--batch-size", "--max-length", "--chat-template"),
        *("--loss-on-prompt", "--seed", "--config", "--set", "--quiet"),
    },
    "validate": {"--token-limit", "--epochs"},
}


def command(name: str) -> click.Command:
    found = main.get_command(click.Context(main), name)
    assert found is not None
    return found


def options(name: str) -> dict[str, click.Option]:
    return {p.opts[0]: p for p in command(name).params if isinstance(p, click.Option)}


def run_option_help(name: str) -> tuple[str, str]:
    found = options(name)
    return str(found["--out"].help), str(found["--run"].help)


@pytest.mark.parametrize("name", sorted({**OFFERED, **OTHERS}))
def test_a_command_offers_only_the_options_it_uses(name: str) -> None:
    assert set(options(name)) == {**OFFERED, **OTHERS}[name]


def test_the_table_names_every_command() -> None:
    assert set(main.list_commands(click.Context(main))) == set(OFFERED) | set(OTHERS)


@pytest.mark.parametrize("name", sorted(set(OFFERED) - CREATES))
def test_a_stage_that_cannot_start_a_run_offers_nothing_a_run_is_made_with(name: str) -> None:
    help_text = cli(name, "--help").stdout
    for flag in sorted(RUN_MADE_WITH | BOOTSTRAP):
        assert flag not in help_text, (name, flag)
    out_help, run_help = run_option_help(name)
    assert "created if missing" not in out_help
    assert "existing run" in out_help
    assert "--out" in run_help


@pytest.mark.parametrize("name", sorted(CREATES))
def test_a_command_that_may_start_a_run_says_so(name: str) -> None:
    out_help, run_help = run_option_help(name)
    assert "created if missing" in out_help
    assert "existing run" in run_help


@pytest.mark.parametrize("name", sorted(set(OFFERED) - CREATES))
def test_what_a_run_is_made_with_is_refused_where_it_cannot_apply(
    name: str, tmp_path: Path
) -> None:
    result = cli(name, "--out", tmp_path, "--num-instructions", "50", check=False)
    assert result.returncode == 2
    assert "No such option '--num-instructions'" in result.stderr


# ---------------------------------------------------------------------------------------------
# --run DIR: the run a command works on


def outputs(run: Path) -> dict[str, object]:
    """What a run holds and what it wrote (run.json without its times and paths)."""
    data = json.loads((run / "run.json").read_text(encoding="utf-8"))
    found: dict[str, object] = {"records": records_snapshot(run), "counts": data.get("counts")}
    for path in sorted((run / "exports").glob("*")):
        found[path.name] = path.read_bytes().replace(str(run).encode(), b"RUN")
    return found


def test_run_names_the_run_as_out_does_on_every_command(tmp_path: Path) -> None:
    """Each command on two copies of a run, one given --out DIR and the other --run DIR:
    the same records, counts and dataset."""
    by_out, by_run = tmp_path / "a" / "run", tmp_path / "b" / "run"  # the card names "run"
    cli("bootstrap", "--backend", "fake", "--num-instructions", "6", "--out", by_out, "-q")
    shutil.copytree(by_out, by_run)
    steps = [
        ("bootstrap", "--num-instructions", "8"),
        ("classify",),
        ("instances",),
        ("relabel", "--relabel"),
        ("judge", "--judge", "fake"),
        ("prepare",),
        ("run", "--num-instructions", "10"),
    ]
    for name, *args in steps:
        with_out = cli(name, *args, "--out", by_out, "-q")
        with_run = cli(name, *args, "--run", by_run, "-q")
        assert with_run.stdout == with_out.stdout.replace(str(by_out), str(by_run)), name
        assert outputs(by_run) == outputs(by_out), name


@pytest.mark.parametrize("name", sorted(set(OFFERED)))
def test_out_and_run_naming_two_directories_is_an_error_naming_both(
    name: str, tmp_path: Path
) -> None:
    one, other = tmp_path / "one", tmp_path / "other"
    result = cli(name, "--out", one, "--run", other, check=False)
    assert result.returncode == 2
    assert f"--out {one}" in result.stderr and f"--run {other}" in result.stderr
    assert not one.exists() and not other.exists()


def test_out_and_run_naming_the_same_run_is_that_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("bootstrap", "--backend", "fake", "--num-instructions", "4", "--out", run, "-q")
    cli("classify", "--out", run, "--run", tmp_path / "." / "run", "-q")
    assert json.loads((run / "run.json").read_text())["counts"]["labels"] == 4


@pytest.mark.parametrize("name", ["run", "bootstrap"])
def test_run_does_not_start_a_run(name: str, tmp_path: Path) -> None:
    new = tmp_path / "new"
    result = cli(name, "--backend", "fake", "--run", new, check=False)
    assert result.returncode == 2
    assert f"{new} is not a run directory" in result.stderr
    assert f"--out {new}" in result.stderr  # how to start one
    assert not new.exists()


@pytest.mark.parametrize("name", sorted(set(OFFERED)))
def test_a_command_without_its_run_says_both_ways_to_name_it(name: str) -> None:
    result = cli(name, check=False)
    assert result.returncode == 2
    assert "Missing option '--out'" in result.stderr and "--run" in result.stderr


def test_calibration_is_written_into_the_run_named_by_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("bootstrap", "--backend", "fake", "--num-instructions", "4", "--out", run, "-q")
    cli("judge", "--calibrate", "packaged", "--judge", "fake", "--run", run, "-q")
    assert (run / "calibration.json").is_file()


def test_finetune_takes_its_run_as_run(tmp_path: Path) -> None:
    other, out = tmp_path / "other", tmp_path / "model"
    both = cli("finetune", "--data", tmp_path, "--run", other, "--out", out, check=False)
    assert both.returncode == 2
    assert f"--data {tmp_path}" in both.stderr and f"--run {other}" in both.stderr
    plain = cli("finetune", "--run", tmp_path, "--out", out, check=False)
    assert plain.returncode == 2
    assert f"{tmp_path} is not a run directory" in plain.stderr
    assert not out.exists()
