"""The Python API: the documented example (docs/reference/python-api.md) runs as written;
runs are created, generated, read and exported through `selfinstruct.Run`; errors are
typed."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

import selfinstruct
from selfinstruct.errors import EmptyDatasetError, InputError, RunError

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "python-api.md"


def documented_example() -> str:
    """The page's first Python block."""
    found = re.search(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert found is not None, f"{GUIDE} holds no Python example"
    return found.group(1)


def test_the_documented_example_runs_as_written(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", documented_example()],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "instances kept" in result.stdout
    assert "records exported" in result.stdout
    assert (tmp_path / "runs" / "api-demo.json").is_file()
    assert (tmp_path / "runs" / "api-demo" / "exports" / "alpaca.json").is_file()


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> selfinstruct.Run:
    path = tmp_path_factory.mktemp("api") / "run"
    created = selfinstruct.Run.create(path, backend="fake", num_instructions=12, quiet=True)
    created.generate()
    return created


def test_generate_returns_each_stages_counts(tmp_path: Path) -> None:
    run = selfinstruct.Run.create(tmp_path / "run", backend="fake", num_instructions=6, quiet=True)
    stats = run.generate()
    off = {"relabel", "judge"}  # off unless turned on
    assert list(stats) == [stage.name for stage in selfinstruct.STAGES if stage.name not in off]
    assert stats["bootstrap"].kept == 6
    assert stats["classify"].kept == 6
    assert stats["prepare"].outputs  # the files it wrote
    again = run.generate(num_instructions=8)  # extends the run
    assert again["bootstrap"].kept == 2 and again["classify"].kept == 2


def test_records_are_typed_and_match_the_cli_files(run: selfinstruct.Run) -> None:
    instructions = run.instructions()
    assert len(instructions) == 12
    assert all(isinstance(t, selfinstruct.Instruction) for t in instructions)
    assert all(t.is_classification in (True, False) for t in instructions)
    instances = run.instances()
    assert instances and all(isinstance(i, selfinstruct.Instance) for i in instances)
    ids = [i.id for i in instances]
    assert len(set(ids)) == len(ids)
    assert {i.instruction_id for i in instances} <= {t.id for t in instructions}
    assert instances == run.instances()  # stable


def test_export_and_dataset_agree(run: selfinstruct.Run, tmp_path: Path) -> None:
    count = run.export("alpaca", tmp_path / "a.json")
    assert count == len(run.dataset())
    assert (tmp_path / "a.json").read_bytes() == (run.path / "exports" / "alpaca.json").read_bytes()


def test_one_stage_at_a_time(tmp_path: Path) -> None:
    run = selfinstruct.Run.create(tmp_path / "run", backend="fake", num_instructions=5, quiet=True)
    assert run.stage("bootstrap").kept == 5
    assert [t.is_classification for t in run.instructions()] == [None] * 5
    assert run.stage("classify").kept == 5
    with pytest.raises(InputError, match="unknown stage 'polish'"):
        run.stage("polish")


def test_frames(run: selfinstruct.Run) -> None:
    frame = run.to_pandas()
    assert list(frame.columns) == [
        "id",
        "instruction_id",
        "instruction",
        "input",
        "output",
        "is_classification",
    ]
    assert len(frame) == len(run.instances())
    dataset = run.to_hf_dataset()
    assert dataset.num_rows == len(frame)


def test_estimate_reads_without_writing(run: selfinstruct.Run) -> None:
    before = (run.path / "run.json").read_bytes()
    rows = run.estimate(num_instructions=20)
    assert rows[0].stage == "bootstrap" and rows[0].requests > 0
    assert (run.path / "run.json").read_bytes() == before


def test_errors_are_typed(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="not a run directory"):
        selfinstruct.Run.open(tmp_path)
    with pytest.raises(InputError) as error:
        selfinstruct.Run.create(tmp_path / "bad", backend="fake", bootstrap={"top_p": 3})
    assert error.value.field == "bootstrap.top_p"
    assert not (tmp_path / "bad").exists()
    with pytest.raises(InputError, match="unknown backend"):
        selfinstruct.Run.create(tmp_path / "bad", backend="nonexistent")
    with pytest.raises(EmptyDatasetError):
        selfinstruct.Run.create(
            tmp_path / "none", backend="fake", num_instructions=0, quiet=True
        ).generate()


def test_rouge_functions_are_public() -> None:
    assert selfinstruct.rouge_l("a b c", "a b c") == 1.0
    pool = selfinstruct.RougePool()
    pool.add("Write a poem about the sea.")
    assert pool.score("Write a poem about the sea.").max == 1.0


def test_settings_given_to_open_apply_to_what_it_reads(run: selfinstruct.Run) -> None:
    capped = selfinstruct.Run.open(run.path, prepare={"max_instances_per_task": 1}, quiet=True)
    rows = capped.dataset()
    assert len({row["instruction"] for row in rows}) == len(rows) < len(run.dataset())
