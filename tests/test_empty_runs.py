"""A run that ends with no data is a failure that says which stage lost everything and why;
a dataset far smaller than asked for gets a warning; a bootstrap stopped by max_requests says
so."""

from __future__ import annotations

import json
import random
from pathlib import Path
from subprocess import CompletedProcess

import pytest
from conftest import cli
from scripted import ScriptedLLM, answer, run_against

from selfinstruct.llm.backends.fake_text import instruction
from selfinstruct.llm.base import Completion, Request
from selfinstruct.testing.openai_server import MockOpenAIServer


def no_examples(request: Request) -> Completion:
    return answer("I am sorry, I cannot think of any examples for this task.\n\n")


def off_limits(request: Request) -> Completion:
    """Every item names a blocked keyword (image)."""
    rng = random.Random(request.seed)
    items = [f"Describe the image of {instruction(rng).lower()}" for _ in range(5)]
    return answer(" " + "\n".join(f"{9 + i}. {t}" for i, t in enumerate(items))[3:] + "\n\n")


def mostly_unparseable(request: Request) -> Completion:
    """A usable answer for one instruction in five."""
    if (request.seed or 0) % 5:
        return no_examples(request)
    return answer("Example 1\nText: The sky is blue.\nOutput: It describes the sky.\n\n")


@pytest.mark.slow  # a local HTTP server
def test_a_run_whose_instances_all_fail_to_parse_exits_non_zero(tmp_path: Path) -> None:
    run = tmp_path / "run"
    llm = ScriptedLLM(instances_generation=no_examples, instances_classification=no_examples)
    with MockOpenAIServer(llm=llm) as server:
        result = run_against(server.base_url, run, "--num-instructions", "8")
    assert result.returncode == 1, result.stderr
    assert "Dataset written:" not in result.stdout
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith(
        "error: the dataset is empty: prepare kept no instance of the 8 "
        "instance responses (tasks dropped 8: unparseable 8)"
    ), error
    assert "Nothing was written to finetuning_data/ or exports/" in error
    assert not (run / "exports").exists() and not (run / "finetuning_data").exists()
    funnel = json.loads((run / "run.json").read_text())["funnel"]
    assert funnel["instructions"] == 8 and funnel["answered"] == 8
    assert funnel["prepared"]["instances"] == 0
    assert funnel["prepared"]["tasks_dropped"] == {"unparseable": 8}

    again = cli("prepare", "--out", str(run), check=False)
    assert again.returncode == 1 and "the dataset is empty" in again.stderr
    export = cli(
        "export",
        "--run",
        str(run),
        "--format",
        "alpaca",
        "--out",
        str(tmp_path / "a.json"),
        check=False,
    )
    assert export.returncode == 1 and "holds no instance to export" in export.stderr
    assert not (tmp_path / "a.json").exists()


@pytest.mark.slow  # a local HTTP server
def test_a_bootstrap_stopped_by_max_requests_says_so_and_the_empty_run_fails(
    tmp_path: Path,
) -> None:
    run = tmp_path / "run"
    with MockOpenAIServer(llm=ScriptedLLM(bootstrap=off_limits)) as server:
        result = run_against(
            server.base_url,
            run,
            "--num-instructions",
            "10",
            config="[bootstrap]\nmax_requests = 10\n",
        )
    assert result.returncode == 1, result.stderr
    assert (
        "warning: bootstrap stopped at bootstrap.max_requests (10 requests) with 0 of the "
        "10 instructions asked for"
    ) in result.stderr
    assert (
        "error: the dataset is empty: bootstrap accepted no instruction in 10 requests "
        "(responses: ok 10); candidates dropped 50 (keyword 50)"
    ) in result.stderr


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory: pytest.TempPathFactory) -> tuple[CompletedProcess, Path]:
    """A run of 20 instructions where only about one in five gets usable instances."""
    run = tmp_path_factory.mktemp("small") / "run"
    llm = ScriptedLLM(
        instances_generation=mostly_unparseable, instances_classification=mostly_unparseable
    )
    with MockOpenAIServer(llm=llm) as server:
        return run_against(server.base_url, run, "--num-instructions", "20"), run


@pytest.mark.slow  # a local HTTP server
def test_a_dataset_far_below_what_was_asked_for_is_a_warning(
    small_dataset: tuple[CompletedProcess, Path],
) -> None:
    result, run = small_dataset
    assert result.returncode == 0, result.stderr
    assert "Dataset written:" in result.stdout
    warning = next(
        line
        for line in result.stderr.splitlines()
        if line.startswith("warning: the dataset covers")
    )
    tasks = json.loads((run / "run.json").read_text())["funnel"]["prepared"]["tasks"]
    assert 0 < tasks < 10
    assert warning.startswith(
        f"warning: the dataset covers {tasks} of the 20 instructions "
        f"asked for; {20 - tasks} instructions gave no instance "
        f"(tasks dropped {20 - tasks}: unparseable {20 - tasks}"
    )


@pytest.mark.slow  # a local HTTP server
def test_the_prepare_summary_counts_tasks_and_instances_apart(
    small_dataset: tuple[CompletedProcess, Path],
) -> None:
    result, run = small_dataset
    line = next(x for x in result.stderr.splitlines() if x.startswith("[prepare]"))
    prepared = json.loads((run / "run.json").read_text())["funnel"]["prepared"]
    dropped_tasks = 20 - prepared["tasks"]
    assert line.startswith(f"[prepare] kept {prepared['instances']} instances")
    assert f"; tasks dropped {dropped_tasks} (unparseable {dropped_tasks})" in line
    assert "instances dropped" not in line  # no instance-level drops in this run
