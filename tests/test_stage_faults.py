"""Faults in the quality stages: label consistency (relabel) and the judge, on the run's server
or the judge's own, through 30% injected faults, and through a server that dies in the middle
of the stage and comes back on the same port, end with exactly the records and files of a run
that met none of it: a retry budget longer than the outage rides through it; a shorter one
ends the run saying which requests failed ("rerun to retry them"), and the rerun completes
it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import cli
from stage_harness import Outage, assert_same_run, count

from selfinstruct.testing.openai_server import MockOpenAIServer

N = 40
GENERATE = ["--model", "fake", "--num-instructions", str(N), "--random-seed", "5"]
GENERATE += ["--concurrency", "8", "--set", "prepare.report_verbs=false"]
FAULTS = ("429", "500", "503", "drop", "truncated")
# 12 attempts: with 30% of attempts failing, a request fails for good once in 2 million.
PATIENT = ["--set", "openai.max_attempts=12", "--set", "openai.backoff_base=0.01"]
# An outage of OUTAGE seconds: ridden through with 8 attempts 0.2 s apart and more (at least
# 2.7 s of waits with jitter), given up on with 2 attempts 10 ms apart.
OUTAGE = 0.6
RIDE = ["--set", "openai.max_attempts=8", "--set", "openai.backoff_base=0.2"]
RIDE += ["--set", "openai.backoff_max=1.0"]
GIVE_UP = ["--set", "openai.max_attempts=2", "--set", "openai.backoff_base=0.01"]


def run(out: Path, url: str, judge_url: str, *extra: str, check: bool = True):
    """`selfinstruct run` against the server at `url`, relabel on, judged on `judge_url`."""
    return cli(
        "run", "--out", out, "--backend", "openai", "--base-url", url, *GENERATE,
        "--relabel", "--judge", "openai:fake", "--judge-base-url", judge_url,
        "--judge-concurrency", "4", *extra, check=check,
    )  # fmt: skip


@pytest.fixture(scope="module")
def servers() -> Iterator[tuple[MockOpenAIServer, MockOpenAIServer]]:
    with MockOpenAIServer(latency=0.002) as model, MockOpenAIServer(latency=0.002) as judge:
        yield model, judge


@pytest.fixture(scope="module")
def reference(
    servers: tuple[MockOpenAIServer, MockOpenAIServer], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The run that met no fault."""
    out = tmp_path_factory.mktemp("reference") / "run"
    run(out, servers[0].base_url, servers[1].base_url, "-q")
    return out


@pytest.fixture(scope="module")
def generated(
    servers: tuple[MockOpenAIServer, MockOpenAIServer], tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The same run's first three stages only (copied by each test that adds the others)."""
    out = tmp_path_factory.mktemp("generated") / "run"
    cli("run", "--out", out, "--backend", "openai", "--base-url", servers[0].base_url,
        *GENERATE, "-q")  # fmt: skip
    return out


@pytest.mark.slow  # local HTTP servers
@pytest.mark.parametrize("judge", ["own server", "run's server"])
def test_thirty_percent_faults_in_every_stage_change_nothing(
    reference: Path, tmp_path: Path, judge: str
) -> None:
    """The whole run, relabel and judge included, through a server failing 30% of attempts
    (and a judge server failing as often): the records and files of the run without faults."""
    out = tmp_path / "run"
    with (
        MockOpenAIServer(
            latency=0.002, fault_rate=0.3, faults=FAULTS, retry_after=0.01, seed=3
        ) as model,
        MockOpenAIServer(
            latency=0.002, fault_rate=0.3, faults=FAULTS, retry_after=0.01, seed=4
        ) as other,
    ):
        judge_server = other if judge == "own server" else model
        run(out, model.base_url, judge_server.base_url, *PATIENT, "-q")
        faults = {**model.stage_faults}
        for stage, n in other.stage_faults.items():
            faults[stage] = faults.get(stage, 0) + n
    print(f"faults by stage ({judge}): {faults}")
    assert faults.get("relabel", 0) >= 3 and faults.get("judge", 0) >= 20, faults
    assert_same_run(out, reference)


STAGES = {
    # stage: (the table that fills while it works, whether the judge has its own server)
    "relabel": ("relabels", True),
    "judge on its own server": ("judgments", True),
    "judge on the run's server": ("judgments", False),
}


@pytest.mark.slow  # each waits out an outage, on a server slowed to let it land mid-stage
@pytest.mark.parametrize("patience", ["rides it out", "gives up"])
@pytest.mark.parametrize("stage", list(STAGES))
def test_a_server_that_dies_mid_stage_and_comes_back(
    servers: tuple[MockOpenAIServer, MockOpenAIServer],
    reference: Path,
    generated: Path,
    tmp_path: Path,
    stage: str,
    patience: str,
) -> None:
    table, own = STAGES[stage]
    out = tmp_path / "run"
    shutil.copytree(generated, out)
    total = count(reference, table)
    # Slow enough for the stage to be under way when the server dies.
    slow = ["--concurrency", "2", "--judge-concurrency", "2"]
    with MockOpenAIServer(latency=0.03) as model, MockOpenAIServer(latency=0.03) as judge:
        judge_server = judge if own else model
        dying = model if table == "relabels" else judge_server
        with Outage(dying, lambda: count(out, table) >= total // 3, OUTAGE) as outage:
            result = run(
                out, model.base_url, judge_server.base_url,
                *slow, *(RIDE if patience == "rides it out" else GIVE_UP), check=False,
            )  # fmt: skip
        assert outage.died.is_set(), "the stage ended before the server died"
        if patience == "rides it out":
            # The stage went on once the server was back, and finished in the same run.
            assert result.returncode == 0, result.stderr
            assert dying.stats["requests"] > outage.served_before
        else:
            # The run ends while the server is down, saying which requests failed: a stage
            # with some answers is counted and the run goes on (exit 0); a stage none of
            # whose requests got through stops it (exit 2). The stage's records are short.
            assert "rerun to retry them" in result.stderr, result.stderr
            if result.returncode != 0:
                assert result.returncode == 2, result.stderr
                assert re.search(r"error: every \w+ request failed", result.stderr)
            assert count(out, table) < total
            result = run(out, model.base_url, judge_server.base_url, *GIVE_UP)
        assert "rerun to retry them" not in result.stderr, result.stderr
    assert_same_run(out, reference)


@pytest.mark.slow  # a local HTTP server
def test_a_judge_of_the_run_s_model_on_a_server_of_its_own_is_asked_there(
    tmp_path: Path,
) -> None:
    """The judge names the run's backend and model but its own server: its requests go there
    (after the stream), none to the run's server; relabel stays with the run's."""
    with MockOpenAIServer() as model, MockOpenAIServer() as judge:
        run(tmp_path / "run", model.base_url, judge.base_url, "-q", "--num-instructions", "10")
        asked, judged = model.service_stats["stages"], judge.service_stats["stages"]
    assert set(judged) == {"judge_instance"} and judged["judge_instance"]["requests"] > 0
    assert "judge_instance" not in asked and "relabel" in asked
