"""The documented figures (benchmarks/claims): every figure a page states is the one its
results file holds, every results file is complete, and the claims command compares and
fails as it says. Nothing here measures: the benchmarks are `python -m benchmarks.claims`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from benchmarks.claims import __main__ as claims
from benchmarks.claims import docs, figures
from benchmarks.claims.figures import Spec, render
from benchmarks.claims.measure import Measured
from benchmarks.claims.source import Source
from benchmarks.claims.sources import SOURCES

ENTRY_FIELDS = ("measured_at", "commit", "machine", "conditions", "load", "figures")


def test_every_figure_in_the_docs_is_its_results_file_s() -> None:
    assert docs.stale() == []


def test_every_figure_the_docs_state_is_one_a_benchmark_measures() -> None:
    known = {(source.name, spec.key) for source in SOURCES for spec in source.specs_for("full")}
    stated = set(docs.references())
    assert stated, "the docs state no figure through a span"
    assert stated <= known, sorted(stated - known)


@pytest.mark.parametrize("source", SOURCES, ids=lambda s: s.name)
def test_each_results_file_says_when_where_and_holds_every_figure(source: Source) -> None:
    found = figures.read_results(source.name)
    if not found:  # never measured: then no page may state its figures
        assert source.name not in {name for name, _ in docs.references()}
        return
    assert found.get("benchmark") == source.name
    for mode in (mode for mode in figures.MODES if source.measures(mode)):
        entry = found.get(mode)
        if mode == "quick" and entry is None:
            continue  # a quick measurement is kept once someone runs --quick --update
        assert entry, f"{source.name}: no {mode} measurement"
        for field in ENTRY_FIELDS:
            assert entry.get(field), f"{source.name} {mode}: no {field}"
        assert entry["machine"]["cpus"] >= 1 and entry["machine"]["cpu"]
        wanted = {spec.key for spec in source.specs_for(mode)}
        assert set(entry["figures"]) == wanted, f"{source.name} {mode}"
        for key, item in entry["figures"].items():
            assert isinstance(item["value"], int | float), (source.name, key)


def test_no_results_file_belongs_to_no_benchmark() -> None:
    names = {source.name for source in SOURCES}
    files = {path.stem for path in figures.RESULTS.glob("*.json")}
    assert files <= names, sorted(files - names)


@pytest.mark.parametrize(
    ("value", "spec", "text"),
    [
        (343.2, Spec("a", "", "MB"), "343 MB"),
        (1234.5, Spec("a", "", "s", 1), "1,234.5 s"),
        (1.2849, Spec("a", "", "x", 2), "1.28x"),
        (0.914, Spec("a", "", "", 2), "0.91"),
        (45.0, Spec("a", "", "%"), "45%"),
    ],
)
def test_a_figure_reads_as_the_docs_write_it(value: float, spec: Spec, text: str) -> None:
    assert render(value, spec) == text


SPECS = (
    Spec("time", "a time", "s", 1, tolerance=0.3),
    Spec("ratio", "a ratio", "x", 2, tolerance=0.2, limit=("<=", 1.5)),
)


def _source() -> Source:
    return Source("toy", "a toy", SPECS, lambda mode: [], lambda mode: "", lambda m, r: {})


def _measured(**values: float) -> Measured:
    entry = {"figures": {key: {"value": value} for key, value in values.items()}}
    return Measured(_source(), "full", entry)


def _documented(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, **values: float) -> None:
    monkeypatch.setattr(figures, "RESULTS", tmp_path)
    entry = {"figures": {key: {"value": value} for key, value in values.items()}}
    (tmp_path / "toy.json").write_text(json.dumps({"benchmark": "toy", "full": entry}))


def test_a_figure_within_its_tolerance_holds(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    _documented(monkeypatch, tmp_path, time=10.0, ratio=1.2)
    rows, failed = claims.compare(_measured(time=12.9, ratio=1.1))
    assert failed == 0
    assert rows[0] == ["time", "10.0 s", "12.9 s", "1.29", "±30%", "ok"]


def test_a_figure_off_by_more_than_its_tolerance_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _documented(monkeypatch, tmp_path, time=10.0, ratio=1.2)
    rows, failed = claims.compare(_measured(time=6.5, ratio=1.2))
    assert failed == 1
    assert rows[0][3:] == ["0.65", "±30%", "OFF"]


def test_a_figure_that_breaks_its_bound_fails_even_within_tolerance(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _documented(monkeypatch, tmp_path, time=10.0, ratio=1.45)
    rows, failed = claims.compare(_measured(time=10.0, ratio=1.55))
    assert failed == 1
    assert rows[1][-1] == "BREAKS <= 1.50x"


def test_a_figure_not_measured_fails(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    _documented(monkeypatch, tmp_path, time=10.0, ratio=1.2)
    rows, failed = claims.compare(_measured(time=10.0))
    assert failed == 1 and rows[1][2] == "not measured"


def test_the_command_exits_1_when_a_figure_is_off(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _documented(monkeypatch, tmp_path, time=10.0, ratio=1.2)
    monkeypatch.setattr(claims, "by_name", lambda name: _source())
    outcomes: list[dict[str, Any]] = [{"time": 10.5, "ratio": 1.2}, {"time": 30.0, "ratio": 1.2}]

    def fake_measure(source: Source, mode: str) -> Measured:
        return _measured(**outcomes.pop(0))

    monkeypatch.setattr(claims, "measure", fake_measure)
    assert claims.main(["--only", "toy"]) == 0
    assert "every figure holds" in capsys.readouterr().out
    assert claims.main(["--only", "toy"]) == 1
    out = capsys.readouterr().out
    assert "OFF" in out and "1 figure(s) off" in out


def test_filling_the_docs_in_writes_the_results_file_s_figure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _documented(monkeypatch, tmp_path, time=12.34, ratio=1.2)
    monkeypatch.setattr(docs, "by_name", lambda name: _source())
    text = "took <!-- fig toy/time -->9.9 s<!-- /fig --> at most"
    assert docs.filled(text) == "took <!-- fig toy/time -->12.3 s<!-- /fig --> at most"
