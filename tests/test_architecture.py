"""The package's layers hold: each imports only the layers below it, and no modules or
packages import each other, lazy imports inside functions included (the contracts are in
pyproject.toml's [tool.importlinter])."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# What the `lint-imports` script runs (the interpreter of these tests, whatever is on PATH).
LINT_IMPORTS = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"


@pytest.mark.slow  # a process of its own
def test_the_import_contracts_are_kept() -> None:
    found = subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert found.returncode == 0, found.stdout[-3000:] + found.stderr[-2000:]
    assert "2 kept, 0 broken" in found.stdout
