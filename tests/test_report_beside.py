"""The report built beside prepare (report/beside.py): a forked child makes the same report
the run would have made after prepare, and anything that goes wrong in it leaves the report
to the parent. Each case runs `prepare` in a process of its own (a forked child in pytest's
worker would share its threads), reporting what the child did."""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import cli

pytestmark = pytest.mark.slow  # processes

# Runs `prepare` on a run in this process, spying on the child: prints "beside: PATH" when the
# child wrote the report, "beside: None" when the parent had to, "beside: off" when none ran.
SPY = """
import sys
from selfinstruct.report import beside
if sys.argv[2] == "fail":
    def broken(run_dir):
        raise OSError("the child cannot open the store")
    beside.RunStore.open_readonly = staticmethod(broken)
said = []
start, finish = beside.Beside.start.__func__, beside.Beside.finish
def spied_start(cls, ctx, verbs):
    found = start(cls, ctx, verbs)
    said.append("off" if found is None else "started")
    return found
def spied_finish(self):
    found = finish(self)
    said.append(str(found))
    return found
beside.Beside.start = classmethod(spied_start)
beside.Beside.finish = spied_finish
from selfinstruct.cli import main
try:
    main(["prepare", "--out", sys.argv[1], "-q"])
except SystemExit as exc:
    assert not exc.code, exc.code
print("beside:", said[-1])
"""
DATA = re.compile(r'id="report-data"[^>]*>([^<]*)<')


def prepare_spied(run: Path, how: str = "ok") -> str:
    done = subprocess.run(
        [sys.executable, "-c", SPY, str(run), how], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip().splitlines()[-1]


def pages(html: Path) -> tuple[dict, str]:
    """report.json beside `html` without its time, and the page's records, decoded."""
    numbers = json.loads(html.with_suffix(".json").read_text())
    numbers.pop("generated_at")
    blob = DATA.search(html.read_text())
    assert blob is not None
    return numbers, gzip.decompress(base64.b64decode(blob.group(1))).decode()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("beside") / "run"
    cli("run", "--backend", "fake", "--num-instructions", "40", "--out", str(out), "-q",
        "--set", "prepare.report_verbs=false")  # fmt: skip
    return out


def test_the_report_built_beside_prepare_is_the_one_built_after_it(run: Path) -> None:
    assert prepare_spied(run) == f"beside: {run / 'report.html'}"
    cli("report", "--run", str(run), "--out", str(run.parent / "after.html"))
    beside, after = pages(run / "report.html"), pages(run.parent / "after.html")
    assert beside[0]["funnel"] and json.loads(beside[1])["instructions"]
    assert beside == after


def test_a_child_that_fails_leaves_the_report_to_the_parent(run: Path) -> None:
    (run / "report.html").unlink()
    assert prepare_spied(run, "fail") == "beside: None"
    cli("report", "--run", str(run), "--out", str(run.parent / "after.html"))
    assert pages(run / "report.html") == pages(run.parent / "after.html")
