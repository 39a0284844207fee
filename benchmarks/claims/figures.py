"""Documented figures: what each one is (`Spec`), how it reads in the docs (`render`), and the
results file that holds its last measurement (benchmarks/results/NAME.json).

A results file holds, per mode ("full", the sizes the docs state; "quick", small sizes for a
check before a release): when and where it was measured (date, commit, machine, conditions,
the load on the machine) and each figure's value. The docs never copy a figure: they hold a
span that `python -m benchmarks.claims --docs` fills in from these files (docs.py)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parents[1] / "results"
MODES = ("full", "quick")


@dataclass(frozen=True)
class Spec:
    """One figure a benchmark measures and the docs may state."""

    key: str  # its name within the benchmark, e.g. "run_10000.peak_mb"
    what: str  # what it is, in a few words
    unit: str = ""  # "MB", "s", "x", "%", ... ("" for a bare number)
    digits: int = 0  # decimals shown in the docs
    # How far a new measurement may be from the documented one, relative (0.25: within 25%)
    tolerance: float = 0.25
    # A bound the figure must keep whatever was documented: ("<=", 1.5), (">=", 0.85)
    limit: tuple[str, float] | None = None
    modes: tuple[str, ...] = MODES  # the modes that measure it


def render(value: float, spec: Spec) -> str:
    """The figure as the docs show it: 1,234 MB, 0.91, 1.28x, 45%."""
    text = f"{value:,.{spec.digits}f}"
    if spec.unit in ("x", "%", ""):
        return text + spec.unit
    return f"{text} {spec.unit}"


def off_by(documented: float, measured: float) -> float:
    """How far a measurement is from the documented figure, relative to it."""
    if documented == 0:
        return 0.0 if measured == 0 else math.inf
    return abs(measured / documented - 1)


def within_limit(value: float, spec: Spec) -> bool:
    if spec.limit is None:
        return True
    op, bound = spec.limit
    return value <= bound if op == "<=" else value >= bound


def results_path(benchmark: str) -> Path:
    return RESULTS / f"{benchmark}.json"


def read_results(benchmark: str) -> dict[str, Any]:
    """A benchmark's results file ({} when it was never measured)."""
    path = results_path(benchmark)
    if not path.exists():
        return {}
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise SystemExit(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(found, dict):
        raise SystemExit(f"{path}: expected a JSON object")
    return found


def documented(benchmark: str, mode: str) -> dict[str, float]:
    """The figures a results file holds for a mode, by key."""
    entry = read_results(benchmark).get(mode) or {}
    return {key: float(item["value"]) for key, item in (entry.get("figures") or {}).items()}


def write_results(benchmark: str, mode: str, entry: dict[str, Any]) -> Path:
    """Replace one mode's measurement in the benchmark's results file (the other mode's
    stays), atomically."""
    path = results_path(benchmark)
    found = read_results(benchmark)
    found["benchmark"] = benchmark
    found[mode] = entry
    ordered = {"benchmark": benchmark, **{m: found[m] for m in MODES if m in found}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(ordered, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
