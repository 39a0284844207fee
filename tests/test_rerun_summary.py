"""What a rerun says: a run with nothing left to generate says it is complete (its
instructions, the dataset's instances) and which flag extends it, instead of a "kept 0" line
per stage; a rerun that still has work keeps its normal summary, and a stage with nothing left
to do says so instead of "kept 0"."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from conftest import cli

FAKE = ("--backend", "fake")
ZERO = re.compile(r"\b(kept|labelled|answered) 0 instructions")


@pytest.fixture(scope="module")
def complete(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int]:
    """A finished fake run of 20 instructions, and the instances its dataset holds."""
    out = tmp_path_factory.mktemp("complete") / "run"
    first = cli("run", *FAKE, "--num-instructions", "20", "--out", out)
    found = re.search(r"^\[prepare\] kept (\d+) instances", first.stderr, re.M)
    assert found is not None, first.stderr
    return out, int(found.group(1))


@pytest.fixture
def copy(complete: tuple[Path, int], tmp_path: Path) -> Path:
    """A copy of the finished run, for a test that writes to it."""
    return Path(shutil.copytree(complete[0], tmp_path / "run"))


def test_a_finished_runs_rerun_says_it_is_complete(complete: tuple[Path, int]) -> None:
    out, instances = complete
    again = cli("run", *FAKE, "--num-instructions", "20", "--out", out)
    lines = again.stderr.strip().splitlines()
    assert lines[-1] == (
        f"[run] already complete: 20 instructions, {instances} instances in the dataset; "
        "nothing left to generate (a --num-instructions larger than 20 extends it)"
    )
    assert not ZERO.search(again.stderr), again.stderr
    assert "[total]" not in again.stderr
    for stage in ("bootstrap", "classify", "instances"):
        assert f"[{stage}]" not in again.stderr, again.stderr
        assert f"{stage}: " not in again.stderr  # no progress bar of a stage with nothing to do
    assert "Dataset written:" in again.stdout  # prepare still writes (and lists) the dataset


def test_a_finished_runs_rerun_without_flags_says_the_same(complete: tuple[Path, int]) -> None:
    out, instances = complete
    again = cli("run", "--out", out)
    assert (
        again.stderr.strip()
        .splitlines()[-1]
        .startswith(f"[run] already complete: 20 instructions, {instances} instances")
    )


def test_a_finished_runs_quiet_rerun_says_nothing_false(complete: tuple[Path, int]) -> None:
    again = cli("run", "--out", complete[0], "--quiet")
    assert again.stderr == ""
    assert "Dataset written:" in again.stdout


@pytest.mark.parametrize(
    ("stage", "says"),
    [
        ("classify", "[classify] nothing left to do: 20 instructions already labelled"),
        ("instances", "[instances] nothing left to do: 20 instructions already answered"),
    ],
)
def test_a_stage_with_nothing_left_to_do_says_so(
    complete: tuple[Path, int], stage: str, says: str
) -> None:
    again = cli(stage, "--out", complete[0])
    assert again.stderr.strip() == says
    assert again.stdout == ""


def test_bootstrap_on_a_finished_run_says_the_run_is_complete(complete: tuple[Path, int]) -> None:
    out, instances = complete
    again = cli("bootstrap", "--out", out)
    assert again.stderr.strip() == (
        f"[bootstrap] already complete: 20 instructions, {instances} instances in the dataset; "
        "nothing left to generate (a --num-instructions larger than 20 extends it)"
    )


def test_a_larger_target_runs_with_its_normal_summary(copy: Path) -> None:
    again = cli("run", "--num-instructions", "25", "--out", copy)
    assert re.search(r"^\[bootstrap\] kept 5 instructions", again.stderr, re.M), again.stderr
    assert re.search(r"^\[classify\] labelled 5 instructions", again.stderr, re.M)
    assert again.stderr.strip().splitlines()[-1].startswith("[total] bootstrap kept 5")
    assert "already complete" not in again.stderr


def test_a_partial_rerun_keeps_its_summary_and_says_what_was_done_before(tmp_path: Path) -> None:
    out = tmp_path / "run"
    cli("bootstrap", *FAKE, "--num-instructions", "12", "--out", out, "--quiet")
    again = cli("run", "--out", out)
    assert "[bootstrap] nothing left to do: 12 instructions already kept" in again.stderr
    assert re.search(r"^\[classify\] labelled 12 instructions", again.stderr, re.M)
    assert re.search(r"^\[instances\] answered 12 instructions", again.stderr, re.M)
    total = again.stderr.strip().splitlines()[-1]
    assert total.startswith("[total] classify labelled 12 instructions, instances answered 12")
    assert not ZERO.search(again.stderr), again.stderr
    assert "already complete" not in again.stderr
