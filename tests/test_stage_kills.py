"""The later stages killed with SIGKILL at random moments, and rerun each time: label
consistency (relabel) and the judge, on the run's server (streamed with the generating
stages) or the judge's own (after the stream), both servers failing 30% of attempts; runs
stopped by a budget; `selfinstruct merge`; and the report writer. Each ends with exactly the
records and files of a run never killed, and no half-written file is ever seen. The number
of kills each stage took (and of the faults it survived) is printed, for the record."""

from __future__ import annotations

import base64
import gzip
import json
import random
import re
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RUN_TABLES, assert_same_nonempty, cli, interruptible
from stage_harness import (
    assert_same_run,
    count,
    dataset_files,
    finished,
    kill_when,
    quality_snapshot,
    rows,
)

from selfinstruct.testing.openai_server import MockOpenAIServer

# Kill harnesses: dozens of runs, each SIGKILLed and rerun (minutes in all).
pytestmark = pytest.mark.slow

FAULTS = ("429", "500", "503", "drop", "truncated")
PATIENT = ["--set", "openai.max_attempts=12", "--set", "openai.backoff_base=0.01"]


def command(*args: str | Path) -> list[str]:
    return [sys.executable, "-m", "selfinstruct", *map(str, args)]


def start(*args: str | Path) -> subprocess.Popen:
    """`selfinstruct ARGS` in a child process, to be killed."""
    return subprocess.Popen(
        command(*args),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=interruptible,
    )


def stage_windows(
    process: subprocess.Popen, under_way: Callable[[], list[str]]
) -> dict[str, float]:
    """How long each stage was seen under way in a process that must succeed (polled)."""
    first: dict[str, float] = {}
    last: dict[str, float] = {}
    while process.poll() is None:
        now = time.monotonic()
        for stage in under_way():
            first.setdefault(stage, now)
            last[stage] = now
        time.sleep(0.005)
    finished(process)
    return {stage: last[stage] - first[stage] for stage in first}


def partly_done(run: Path, table: str, total: int) -> bool:
    return 0 < count(run, table) < total


# -- relabel and the judge ----------------------------------------------------------------

N = 150
RUN = ["--backend", "openai", "--model", "fake", "--num-instructions", str(N)]
RUN += ["--random-seed", "9", "--concurrency", "8", "--relabel", "--judge", "openai:fake"]
RUN += ["--judge-concurrency", "4", "--set", "prepare.report_verbs=false", "-q", *PATIENT]


@pytest.mark.parametrize("judge", ["run's server", "own server"])
def test_relabel_and_the_judge_killed_through_faults_equal_an_uninterrupted_run(
    tmp_path: Path, judge: str
) -> None:
    def args(out: Path, model: MockOpenAIServer, other: MockOpenAIServer) -> list[str]:
        judge_url = (other if judge == "own server" else model).base_url
        return ["run", "--out", str(out), *RUN, "--base-url", model.base_url,
                "--judge-base-url", judge_url]  # fmt: skip

    reference = tmp_path / "reference"
    tables = {"relabel": "relabels", "judge": "judgments"}
    totals: dict[str, int] = {}

    def under_way(out: Path) -> list[str]:
        return [s for s, table in tables.items() if partly_done(out, table, totals[s])]

    def partial_in(stage: str, out: Path) -> Callable[[], bool]:
        return lambda: partly_done(out, tables[stage], totals[stage])

    with MockOpenAIServer(latency=0.003) as model, MockOpenAIServer(latency=0.003) as other:
        finished(start(*args(reference, model, other)))
        totals.update({stage: count(reference, table) for stage, table in tables.items()})
        assert all(totals.values()), totals
        timed = tmp_path / "timed"
        windows = stage_windows(start(*args(timed, model, other)), lambda: under_way(timed))
    assert set(windows) == set(tables), windows

    # Each start killed a random time after the stage aimed at (the one with the fewest
    # kills) is seen under way, up to the time it was seen under way in the timed run (halved
    # whenever a kill misses it: a resumed start has less of it left); every tenth start, or
    # once it finishes first, a run is let finish and compared.
    rng = random.Random(17)
    made: Counter[str] = Counter()
    faults: Counter[str] = Counter()
    attempt = 0
    while min(made[stage] for stage in tables) < 8:
        assert attempt < 10, f"kills by stage: {dict(made)}"
        out = tmp_path / f"killed{attempt}"
        attempt += 1
        with (
            MockOpenAIServer(
                latency=0.003, fault_rate=0.3, faults=FAULTS, retry_after=0.01, seed=attempt
            ) as model,
            MockOpenAIServer(
                latency=0.003, fault_rate=0.3, faults=FAULTS, retry_after=0.01, seed=50 + attempt
            ) as other,
        ):
            for _ in range(10):
                aim = min(tables, key=lambda stage: made[stage])
                process = start(*args(out, model, other))
                ready = partial_in(aim, out)
                if not kill_when(process, ready, rng.uniform(0, windows[aim])):
                    windows[aim] /= 2
                    break  # it finished
                landed = under_way(out)
                made.update(landed or ["between stages"])
                if aim not in landed:
                    windows[aim] /= 2
            else:
                finished(start(*args(out, model, other)))
            faults.update(model.stage_faults)
            faults.update(other.stage_faults)
        assert_same_run(out, reference)
    print(f"judge on the {judge}: kills by stage under way {dict(made)}; faults {dict(faults)}")


# -- budgets ------------------------------------------------------------------------------

BUDGETED = ["--backend", "openai", "--model", "fake", "--num-instructions", "120"]
BUDGETED += ["--random-seed", "4", "--concurrency", "8", "--relabel", "--judge", "openai:fake"]
BUDGETED += ["--set", "prepare.report_verbs=false", "-q", "--set", "pricing.input_per_million=2"]
BUDGETED += ["--set", "pricing.output_per_million=8", *PATIENT]


def spent(run: Path) -> tuple[int, float]:
    """The tokens of the run's stored answers, and their cost at BUDGETED's prices."""
    if count(run, "responses") <= 0:
        return 0, 0.0
    ((prompt, completion),) = rows(
        run, "SELECT SUM(prompt_tokens), SUM(completion_tokens) FROM responses"
    )
    return prompt + completion, (prompt * 2 + completion * 8) / 1e6


@pytest.mark.parametrize("flag", ["--max-tokens", "--max-cost"])
def test_a_budgeted_run_killed_and_rerun_with_larger_budgets_equals_an_unbudgeted_one(
    tmp_path: Path, flag: str
) -> None:
    """Budgets a tenth of the run apart, each start killed at a random moment or stopped by
    its budget (exit 3, within it), and a last one without a budget, against a server failing
    30% of attempts: the records and files of a run that never had a budget or a fault."""
    reference = tmp_path / "reference"
    with MockOpenAIServer(latency=0.004) as clean:
        started = time.monotonic()
        finished(start("run", "--out", reference, *BUDGETED, "--base-url", clean.base_url))
        duration = time.monotonic() - started
    tokens, cost = spent(reference)
    with MockOpenAIServer(
        latency=0.004, fault_rate=0.3, faults=FAULTS, retry_after=0.01, seed=6
    ) as server:
        url = ["--base-url", server.base_url]
        out = tmp_path / "budgeted"
        rng = random.Random(3)
        kills, stops = 0, Counter[str]()
        for tenth in range(1, 11):
            limit = (
                f"{tokens * tenth // 10}" if flag == "--max-tokens" else f"{cost * tenth / 10:.6f}"
            )
            # Killed at a random moment, then rerun until its budget stops it (exit 3).
            process = start("run", "--out", out, *BUDGETED, *url, flag, limit)
            kills += kill_when(process, lambda: True, rng.uniform(0.3, duration), ok=(0, 3))
            process = start("run", "--out", out, *BUDGETED, *url, flag, limit)
            _, stderr = process.communicate(timeout=300)
            if process.returncode != 0:
                assert process.returncode == 3 and "budget reached" in stderr.decode(), stderr
                stage = re.search(r"the next (\w+) request", stderr.decode())
                stops[stage.group(1) if stage else "?"] += 1
            used = spent(out)
            assert (used[0] if flag == "--max-tokens" else used[1]) <= float(limit) + 1e-9
        finished(start("run", "--out", out, *BUDGETED, *url))
        faults = server.stage_faults
    print(f"{flag}: {kills} kills, budget stops by stage {dict(stops)}, faults {faults}")
    assert kills >= 3 and len(stops) >= 2, (kills, stops)
    assert_same_run(out, reference)


# -- merge --------------------------------------------------------------------------------

SOURCES = {"alpha": (3, 300), "beta": (1, 400), "gamma": (2, 200)}
QUICK = ["--backend", "fake", "-q", "--judge", "fake", "--relabel"]
QUICK += ["--set", "prepare.report_verbs=false"]


MERGED = (*RUN_TABLES, "judgments", "relabels", "merge_sources")  # the tables a merge fills


def merged_state(out: Path) -> dict[str, list[tuple]]:
    return {
        **quality_snapshot(out),
        "merge_sources": rows(out, "SELECT * FROM merge_sources ORDER BY 1"),
    }


def decisions(out: Path) -> dict:
    """merge.json but for when the merge was made and how long it took."""
    manifest = json.loads((out / "merge.json").read_text(encoding="utf-8"))
    return {k: v for k, v in manifest.items() if k not in ("created_at", "seconds_deciding")}


def test_a_killed_merge_leaves_no_directory_or_a_whole_one_and_its_rerun_is_the_same(
    tmp_path: Path,
) -> None:
    sources = []
    for name, (seed, n) in SOURCES.items():
        sources.append(tmp_path / name)
        cli("run", "--out", sources[-1], "--random-seed", seed, "--num-instructions", n, *QUICK)
    reference = tmp_path / "reference"
    started = time.monotonic()
    process = start("merge", *sources, "--out", reference, "-q")
    while not reference.exists() and process.poll() is None:
        time.sleep(0.005)
    renamed = time.monotonic() - started  # built: the rest is prepare's
    finished(process)
    duration = time.monotonic() - started
    expected = merged_state(reference)
    manifest = decisions(reference)

    rng = random.Random(8)
    kills: Counter[str] = Counter()
    attempt = 0
    while kills["building"] < 4 or kills["preparing"] < 4:
        assert attempt < 16, kills
        out = tmp_path / f"merged{attempt}"
        attempt += 1
        process = start("merge", *sources, "--out", out, "-q")
        if kills["building"] >= 4 or (attempt % 2 and kills["preparing"] < 4):
            # Once the merged run is in place, while prepare writes its dataset.
            ready, delay = out.exists, rng.uniform(0, duration - renamed)
        else:
            ready, delay = (lambda: True), rng.uniform(0.2, renamed)
        if not kill_when(process, ready, delay):
            kills["none: finished"] += 1
            continue
        if not out.exists():
            # Killed while building it: nothing at --out; the rerun builds it whole.
            kills["building"] += 1
            finished(start("merge", *sources, "--out", out, "-q"))
        else:
            # Killed after the rename: the merged run is whole; prepare had not finished.
            kills["preparing"] += 1
            assert decisions(out) == manifest
            assert_same_nonempty(merged_state(out), expected, MERGED)
            again = subprocess.run(
                command("merge", *sources, "--out", out, "-q"), capture_output=True, text=True
            )
            # Merging again is refused, saying what finishes it.
            hint = f"'selfinstruct prepare --out {out}' writes its dataset"
            assert again.returncode != 0 and hint in again.stderr, again.stderr
            finished(start("prepare", "--out", out, "-q"))
        assert not list(tmp_path.glob(f".{out.name}.merging-*")), "a merge's leftovers"
        assert_same_nonempty(merged_state(out), expected, MERGED)
        assert decisions(out) == manifest
        assert dataset_files(out) == dataset_files(reference)
    print(f"merge: kills {dict(kills)}")


# -- the report writer --------------------------------------------------------------------

REPORT_FILES = ("report.html", "report.json")


def report_whole(run: Path) -> None:
    """The report's files, where present, are whole: the page ends, its records decode, the
    numbers parse."""
    html_path, json_path = run / "report.html", run / "report.json"
    if html_path.exists():
        html = html_path.read_text(encoding="utf-8")
        assert html.rstrip().endswith("</html>")
        found = re.search(r'id="report-data"[^>]*>([^<]*)<', html)
        assert found
        json.loads(gzip.decompress(base64.b64decode(found.group(1))))
    if json_path.exists():
        json.loads(json_path.read_text(encoding="utf-8"))


def temporaries(run: Path) -> list[Path]:
    """The temporary files of writes under way (or of a killed writer)."""
    return [p for d in (run, run / "exports", run / "finetuning_data") for p in d.glob(".*.tmp")]


def derived_whole(run: Path) -> None:
    """Every derived JSON file of the run parses, every line of every JSON Lines file."""
    for path in run.rglob("*.jsonl"):
        if not path.name.startswith("."):
            for line in path.read_text(encoding="utf-8").splitlines():
                json.loads(line)
    if (run / "exports" / "alpaca.json").exists():
        json.loads((run / "exports" / "alpaca.json").read_text(encoding="utf-8"))


def report_bytes(run: Path, *, economics: bool) -> dict[str, bytes]:
    """The report's files, their timestamp left out, and the economics (the requests and
    seconds of each process that worked on the run: a prepare that was killed counts) unless
    `economics`."""
    found = {}
    for name in REPORT_FILES:
        data = re.sub(
            rb'"generated_at": "[^"]*"|<dt>Report</dt><dd>[^,<]*', b"", (run / name).read_bytes()
        )
        if not economics:
            data = re.sub(rb'<section id="economics">.*?</section>', b"", data, flags=re.S)
            data = re.sub(rb'\n  "economics": \{.*?\n  \},?', b"", data, flags=re.S)
        found[name] = data
    return found


@pytest.mark.parametrize("writer", ["report", "prepare"])
def test_a_killed_report_writer_leaves_whole_files_and_its_rerun_the_same_bytes(
    tmp_path: Path, writer: str
) -> None:
    """`selfinstruct report` (and prepare, which writes the dataset, the card and the report)
    killed at random moments, most near its end where it writes: every report file seen is
    whole, and the rerun writes the bytes of an uninterrupted one but for its timestamp."""
    run = tmp_path / "run"
    cli("run", "--out", run, "--backend", "fake", "--num-instructions", "1000", *QUICK[2:])
    if writer == "report":
        args = ["report", "--run", run, "--no-verbs"]
    else:
        args = ["prepare", "--out", run, "-q"]
    economics = writer == "report"  # it only reads the run
    started = time.monotonic()
    finished(start(*args))
    duration = time.monotonic() - started
    expected, files = report_bytes(run, economics=economics), dataset_files(run)
    rng = random.Random(21)
    kills = mid_write = attempt = 0
    while kills < 6 or mid_write < 2:
        assert attempt < 16, (kills, mid_write)
        attempt += 1
        for name in REPORT_FILES:
            (run / name).unlink(missing_ok=True)
        if attempt % 2 or kills >= 6:  # the moment a file is being written
            ready, delay = (lambda: bool(temporaries(run))), 0.0
        else:
            ready, delay = (lambda: True), duration * rng.uniform(0.2, 0.9)
        if not kill_when(start(*args), ready, delay):
            continue
        kills += 1
        report_whole(run)
        derived_whole(run)
        mid_write += bool(temporaries(run))
        finished(start(*args))
        report_whole(run)
        assert report_bytes(run, economics=economics) == expected
        assert dataset_files(run) == files
    finished(start("prepare", "--out", run, "-q"))  # removes what a killed writer left
    assert not list(run.rglob("*.tmp"))
    print(f"{writer}: {kills} kills, {mid_write} of them while a file was being written")
