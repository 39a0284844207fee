"""Re-measure every figure the docs state, and compare.

    python -m benchmarks.claims [--quick] [--only NAME ...] [--update] [--docs] [--list]

Runs the benchmarks behind the documented figures (benchmarks/claims/sources.py) and prints,
for each figure, the documented value (its results file, benchmarks/results/NAME.json), the
measured one, their ratio and the tolerance; it exits 1 when a figure is off by more than
its tolerance or breaks its bound (a target such as "at most 1.5x"). `--quick` runs small
sizes (a few minutes on 2 cores) against the results file's quick figures. `--update`
writes the new measurement to the results files and fills the docs in from them; `--docs`
only fills the docs in (no measuring)."""

from __future__ import annotations

import argparse
import sys

from benchmarks.claims import docs
from benchmarks.claims.figures import (
    Spec,
    documented,
    off_by,
    render,
    within_limit,
    write_results,
)
from benchmarks.claims.measure import Measured, measure
from benchmarks.claims.source import Source
from benchmarks.claims.sources import SOURCES, by_name


def compare(measured: Measured) -> tuple[list[list[str]], int]:
    """Rows of the table (figure, documented, measured, ratio, tolerance, verdict) and how
    many figures failed."""
    before = documented(measured.source.name, measured.mode)
    rows, failed = [], 0
    for spec in measured.source.specs_for(measured.mode):
        value = measured.figures.get(spec.key)
        old = before.get(spec.key)
        if value is None:
            rows.append([spec.key, _shown(old, spec), "not measured", "", "", "FAIL"])
            failed += 1
            continue
        ratio = "" if old in (None, 0) else f"{value / old:.2f}"
        verdict = "ok"
        if old is not None and off_by(old, value) > spec.tolerance:
            verdict = "OFF"
        if not within_limit(value, spec):
            op, bound = spec.limit or ("", 0.0)
            verdict = f"BREAKS {op} {render(bound, spec)}"
        if old is None:
            verdict += " (new)"
        failed += not verdict.startswith("ok")
        rows.append(
            [
                spec.key,
                _shown(old, spec),
                render(value, spec),
                ratio,
                f"±{spec.tolerance:.0%}",
                verdict,
            ]
        )
    return rows, failed


def _shown(value: float | None, spec: Spec) -> str:
    return "—" if value is None else render(value, spec)


def table(rows: list[list[str]]) -> str:
    head = ["figure", "documented", "measured", "ratio", "tolerance", "verdict"]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in [head, *rows]
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.claims", description=__doc__)
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("--quick", action="store_true", help="small sizes, minutes")
    parser.add_argument("--only", action="append", metavar="NAME", help="these benchmarks")
    parser.add_argument("--update", action="store_true", help="keep the new figures")
    parser.add_argument("--docs", action="store_true", help="fill the docs in, measure nothing")
    parser.add_argument("--list", action="store_true", help="the benchmarks and their figures")
    args = parser.parse_args(argv)
    sources: list[Source] = [by_name(n) for n in args.only] if args.only else list(SOURCES)
    if args.list:
        for source in sources:
            print(f"{source.name}: {source.title}")
            for spec in source.specs:
                print(f"  {spec.key} ({'/'.join(spec.modes)}): {spec.what}")
        return 0
    if args.docs:
        for path in docs.fill():
            print(f"filled in {path.relative_to(docs.ROOT)}")
        return 0
    mode = "quick" if args.quick else "full"
    failed = 0
    for source in sources:
        if not source.measures(mode):
            print(f"\n{source.name}: nothing to measure in {mode} mode", file=sys.stderr)
            continue
        if (missing := source.needs()) is not None:
            print(f"\n{source.name}: not measured here: {missing}", file=sys.stderr)
            failed += 1
            continue
        measured = measure(source, mode)
        rows, bad = compare(measured)
        failed += bad
        print(f"\n{source.name} ({mode}): {source.title}\n{table(rows)}", flush=True)
        if args.update:  # kept at once, the docs with it: a later benchmark may read them
            path = write_results(source.name, mode, measured.entry)
            print(f"wrote {path.relative_to(docs.ROOT)}")
            for path in docs.fill():
                print(f"filled in {path.relative_to(docs.ROOT)}")
    print(f"\n{failed} figure(s) off or failing" if failed else "\nevery figure holds")
    return 1 if failed and not args.update else 0


if __name__ == "__main__":
    sys.exit(main())
