"""What selfinstruct writes follows the umask, as files written with `open()` do: under umask
022 a file is 0644 and a directory 0755, under 077 both are private. Temporary files made
private by `tempfile` (then renamed into place) must not keep that mode."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli

from selfinstruct.exporters import formats


@pytest.fixture(params=[0o022, 0o077, 0o002], ids=lambda mask: f"umask-{mask:03o}")
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    """The process umask for one test, put back after it (commands here run in-process)."""
    previous = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(previous)


def modes(top: Path) -> dict[str, str]:
    """Each path under `top` (and `top` itself) with its permission bits, as octal text."""
    found = {".": f"{stat.S_IMODE(top.stat().st_mode):04o}"}
    for path in sorted(top.rglob("*")):
        found[str(path.relative_to(top))] = f"{stat.S_IMODE(path.stat().st_mode):04o}"
    return found


# The run store's files: SQLite creates its own (and its journals) as 0644 at most, as does
# the run's lock; a umask that allows more (002) leaves them at that.
STORE_FILES = {"selfinstruct.db", "selfinstruct.db-wal", "selfinstruct.db-shm", ".lock"}


def expected(top: Path, mask: int) -> dict[str, str]:
    """The modes `open()` and `mkdir()` give under `mask`, for the same paths."""
    found = {}
    for name in modes(top):
        most = 0o777 if (top / name).is_dir() else 0o644 if name in STORE_FILES else 0o666
        found[name] = f"{most & ~mask:04o}"
    return found


@pytest.mark.parametrize("fmt", sorted(formats()))
def test_every_export_format_follows_the_umask(tmp_path: Path, umask: int, fmt: str) -> None:
    run = tmp_path / "run"
    cli("run", "--out", str(run), "--backend", "fake", "--num-instructions", "6", "-q")
    out = tmp_path / "exported" / f"data.{fmt}"
    cli("export", "--run", str(run), "--format", fmt, "--out", str(out), "-q")
    assert modes(out) == expected(out, umask)
    if fmt == "hf":  # replacing a saved dataset keeps to the umask too
        cli("export", "--run", str(run), "--format", fmt, "--out", str(out), "-q")
        assert modes(out) == expected(out, umask)


def test_a_run_directory_follows_the_umask(tmp_path: Path, umask: int) -> None:
    run = tmp_path / "run"
    cli("run", "--out", str(run), "--backend", "fake", "--num-instructions", "6", "-q")
    cli("report", "--run", str(run))
    assert modes(run) == expected(run, umask)
