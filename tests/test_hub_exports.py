"""Hub-ready exports: `export --format sharegpt | parquet | hf`, read back with the tools
that use them (pandas, datasets); parquet and hf say how to install what they need."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import cli

import selfinstruct


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hub") / "run"
    cli("run", "--out", str(path), "--backend", "fake", "--num-instructions", "10", "-q")
    return path


def alpaca(run: Path) -> list[dict]:
    return json.loads((run / "exports" / "alpaca.json").read_text(encoding="utf-8"))


def test_sharegpt_holds_each_example_as_a_conversation(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "sharegpt.json"
    result = cli("export", "--run", str(run), "--format", "sharegpt", "--out", str(out))
    items = json.loads(out.read_text(encoding="utf-8"))
    rows = alpaca(run)
    assert result.stdout.startswith(f"wrote {len(rows)} records")
    assert len(items) == len(rows)
    for item, row in zip(items, rows, strict=True):
        human, gpt = item["conversations"]
        assert (human["from"], gpt["from"]) == ("human", "gpt")
        assert human["value"].startswith(row["instruction"])
        assert (row["input"] in human["value"]) and gpt["value"] == row["output"]


def test_parquet_is_typed_and_reads_back(run: Path, tmp_path: Path) -> None:
    import datasets
    import pandas
    import pyarrow.parquet as pq

    out = tmp_path / "data.parquet"
    cli("export", "--run", str(run), "--format", "parquet", "--out", str(out), "-q")
    schema = pq.read_schema(out)
    assert [(f.name, str(f.type)) for f in schema] == [
        ("instruction", "string"),
        ("input", "string"),
        ("output", "string"),
    ]
    assert pandas.read_parquet(out).to_dict("records") == alpaca(run)
    loaded = datasets.load_dataset("parquet", data_files=str(out), split="train")
    assert loaded.to_list() == alpaca(run)


def test_hf_is_a_saved_dataset_and_replaces_only_its_own_kind(run: Path, tmp_path: Path) -> None:
    import datasets

    out = tmp_path / "dataset"
    for _ in range(2):  # a second export replaces the first
        cli("export", "--run", str(run), "--format", "hf", "--out", str(out), "-q")
        assert datasets.load_from_disk(str(out)).to_list() == alpaca(run)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "mine.txt").write_text("keep me")
    refused = cli("export", "--run", str(run), "--format", "hf", "--out", str(other), check=False)
    assert refused.returncode == 2
    assert "not a saved dataset" in refused.stderr
    assert (other / "mine.txt").read_text() == "keep me"


@pytest.mark.parametrize(("fmt", "module"), [("parquet", "pyarrow"), ("hf", "datasets")])
def test_a_missing_package_gets_an_install_hint(
    run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    out = tmp_path / "out"
    result = cli("export", "--run", str(run), "--format", fmt, "--out", str(out), check=False)
    assert result.returncode == 2
    assert "pip install 'selfinstruct[hub]'" in result.stderr
    assert not out.exists()


def test_the_python_api_writes_them_too(run: Path, tmp_path: Path) -> None:
    count = selfinstruct.Run.open(run, quiet=True).export("sharegpt", tmp_path / "s.json")
    assert count == len(alpaca(run))
