"""The figures in the docs, filled in from the results files.

A figure in prose is a span, `<!-- fig NAME/KEY -->343 MB<!-- /fig -->` (benchmark NAME's
figure KEY, as `figures.render` writes it); a benchmark's whole results (when, where, under
what conditions, every figure) are a block, `<!-- results NAME -->...<!-- /results -->`.
`fill` rewrites both from the results files; `stale` lists what differs from them (a test
keeps it empty, so a figure in the docs is always the one last measured)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from benchmarks.claims.figures import Spec, read_results, render
from benchmarks.claims.sources import by_name

ROOT = Path(__file__).resolve().parents[2]
SPAN = re.compile(r"<!-- fig (?P<name>[\w-]+)/(?P<key>[\w.-]+) -->(?P<text>.*?)<!-- /fig -->")
BLOCK = re.compile(r"<!-- results (?P<name>[\w-]+) -->\n(?P<text>.*?)<!-- /results -->", re.DOTALL)


def doc_files() -> list[Path]:
    """Every page that may state a figure: the README, BENCHMARKS.md and docs/."""
    return [ROOT / "README.md", ROOT / "BENCHMARKS.md", *sorted((ROOT / "docs").rglob("*.md"))]


def figure_text(name: str, key: str) -> str:
    """A documented figure as the docs show it (its full-mode measurement)."""
    spec = by_name(name).spec(key)
    figures = (read_results(name).get("full") or {}).get("figures") or {}
    if key not in figures:
        raise SystemExit(
            f"{name}/{key}: not measured yet (python -m benchmarks.claims --only {name} --update)"
        )
    return render(float(figures[key]["value"]), spec)


def block_text(name: str) -> str:
    """A benchmark's results as a block: when and where, the conditions, every figure."""
    source = by_name(name)
    entry = read_results(name).get("full")
    if not entry:
        return f"Not measured yet: `python -m benchmarks.claims --only {name} --update`.\n"
    machine = entry["machine"]
    lines = [
        f"Measured {entry['measured_at'][:10]} on commit `{entry['commit'][:10]}`: "
        f"{machine['cpu']}, {machine['cpus']} cores, Python {machine['python']}, load "
        f"{entry['load'][0]:.1f} before and {entry['load'][1]:.1f} after; it took "
        f"{_duration(entry['seconds'])}. Conditions: {entry['conditions']}. Re-measure: "
        f"`python -m benchmarks.claims --only {name}`.",
        "",
        "| figure | measured | tolerance | must hold |",
        "|---|---|---|---|",
    ]
    for spec in source.specs_for("full"):
        figure = entry["figures"].get(spec.key)
        value = render(float(figure["value"]), spec) if figure else "not measured"
        lines.append(f"| {spec.what} | {value} | ±{spec.tolerance:.0%} | {_limit(spec)} |")
    return "\n".join(lines) + "\n"


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} minutes"


def _limit(spec: Spec) -> str:
    if spec.limit is None:
        return ""
    op, bound = spec.limit
    return f"{'≤' if op == '<=' else '≥'} {render(bound, spec)}"


def filled(text: str) -> str:
    """The text with every span and block rewritten from the results files (a span whose
    figure was never measured is left as it is: `stale` reports it)."""
    text = SPAN.sub(lambda m: _span(m["name"], m["key"], _known(m)), text)
    return BLOCK.sub(
        lambda m: f"<!-- results {m['name']} -->\n{block_text(m['name'])}<!-- /results -->", text
    )


def _known(found: re.Match[str]) -> str:
    name, key = found["name"], found["key"]
    if not _exists(name, key):
        return found["text"]  # `stale` reports it
    figures = (read_results(name).get("full") or {}).get("figures") or {}
    return figure_text(name, key) if key in figures else found["text"]


def _exists(name: str, key: str | None) -> bool:
    """Whether the benchmark (and its figure `key`, when given) is one the claims know."""
    try:
        source = by_name(name)
        if key:
            source.spec(key)
    except (KeyError, SystemExit):
        return False
    return True


def _span(name: str, key: str, text: str) -> str:
    return f"<!-- fig {name}/{key} -->{text}<!-- /fig -->"


def fill() -> list[Path]:
    """Rewrite every span and block from the results files; returns the files changed."""
    changed = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        new = filled(text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def stale() -> list[str]:
    """Every span or block that differs from its results file, as `file:line: what`."""
    found = []
    for path in doc_files():
        text = path.read_text(encoding="utf-8")
        for where, name, key, shown in _places(text):
            if not _exists(name, key or None):
                line = text.count("\n", 0, where) + 1
                found.append(f"{path.relative_to(ROOT)}:{line}: no figure {name}/{key}")
                continue
            want = figure_text(name, key) if key else block_text(name)
            if shown != want:
                line = text.count("\n", 0, where) + 1
                label = f"{name}/{key}" if key else f"results {name}"
                found.append(
                    f"{path.relative_to(ROOT)}:{line}: {label} says {shown!r}, "
                    f"its results file {want!r}"
                )
    return found


def references() -> Iterator[tuple[str, str]]:
    """(benchmark, key) of every figure the docs state."""
    for path in doc_files():
        for _, name, key, _ in _places(path.read_text(encoding="utf-8")):
            if key:
                yield name, key


def _places(text: str) -> Iterator[tuple[int, str, str, str]]:
    for m in SPAN.finditer(text):
        yield m.start(), m["name"], m["key"], m["text"]
    for m in BLOCK.finditer(text):
        yield m.start(), m["name"], "", m["text"]
