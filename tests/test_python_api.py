"""The Python API: the documented example (docs/reference/python-api.md) runs as written;
runs are created, generated, read and exported through `selfinstruct.Run`; errors are
typed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement

import selfinstruct
from selfinstruct.errors import EmptyDatasetError, InputError, RunError

GUIDE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "python-api.md"


def documented_example() -> str:
    """The page's first Python block."""
    found = re.search(r"```python\n(.*?)```", GUIDE.read_text(encoding="utf-8"), re.S)
    assert found is not None, f"{GUIDE} holds no Python example"
    return found.group(1)


# What `make demo` installs: this package with these extras, and all they require.
DEMO_EXTRAS = ("embedded", "report")

# Run before the example: an import of a module that no distribution `make demo` installs
# fails as it would there (a test environment holds more: pandas, datasets, torch).
DEMO_ONLY = """
import sys

class NotInstalled:
    allowed = set({allowed!r}) | set(sys.stdlib_module_names)
    allowed |= {{name.partition(".")[0] for name in sys.modules}}

    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.partition(".")[0] not in cls.allowed:
            raise ModuleNotFoundError(f"No module named {{name!r}} (not in make demo)", name=name)
        return None

sys.meta_path.insert(0, NotInstalled)
"""


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed_with(name: str, extras: tuple[str, ...]) -> set[str]:
    """The distributions `pip install 'NAME[EXTRAS]'` brings (normalized names), as the
    installed ones' metadata says."""
    seen: set[tuple[str, str]] = set()
    wanted = [(name, extra) for extra in ("", *extras)]
    while wanted:
        dist, extra = wanted.pop()
        if (normalized(dist), extra) in seen:
            continue
        seen.add((normalized(dist), extra))
        for line in metadata.requires(dist) or []:
            required = Requirement(line)
            if required.marker is None or required.marker.evaluate({"extra": extra}):
                wanted += [(required.name, x) for x in ("", *required.extras)]
    return {dist for dist, _ in seen}


def demo_modules() -> list[str]:
    """The top-level modules of what `make demo` installs."""
    dists = installed_with("selfinstruct", DEMO_EXTRAS)
    owners = metadata.packages_distributions()
    found = {
        module for module, names in owners.items() if any(normalized(n) in dists for n in names)
    }
    return sorted(found | {"selfinstruct"})


def test_what_make_demo_installs_is_known() -> None:
    modules = demo_modules()
    assert {"selfinstruct", "llama_cpp", "spacy", "numpy", "click"} <= set(modules)
    assert not {"pandas", "datasets", "torch", "pyarrow"} & set(modules)


@pytest.mark.slow  # a process of its own
def test_the_documented_example_runs_after_make_demo_alone(tmp_path: Path) -> None:
    """The example runs with what `make demo` installs (no pandas), and the counts it prints
    are the run's: parsed instances, those prepare kept (the exported records)."""
    code = DEMO_ONLY.format(allowed=demo_modules()) + documented_example()
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    run = tmp_path / "runs" / "api-demo"
    exported = json.loads((tmp_path / "runs" / "api-demo.json").read_text(encoding="utf-8"))
    assert exported == json.loads((run / "exports" / "alpaca.json").read_text(encoding="utf-8"))
    prepared = json.loads((run / "run.json").read_text(encoding="utf-8"))["funnel"]["prepared"]
    parsed = prepared["instances"] + sum(prepared["instances_dropped"].values())
    assert parsed > len(exported) == prepared["instances"]  # the fake backend's repeats drop
    assert f"{parsed} instances parsed, {len(exported)} kept" in result.stdout
    assert f"{len(exported)} records exported" in result.stdout


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


def test_frames_of_the_kept_instances_are_the_dataset(run: selfinstruct.Run) -> None:
    kept = run.dataset()
    assert len(kept) < len(run.instances())  # the fake backend's repeats are dropped
    assert run.to_pandas(kept=True).to_dict("records") == kept
    assert run.to_hf_dataset(kept=True).to_list() == kept


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
