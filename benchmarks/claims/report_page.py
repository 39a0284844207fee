"""The run report at growing sizes (benchmarks/bench_report.py): `selfinstruct report` with and
without the verb-noun parse, the size of report.html, and how fast the page becomes
interactive, sorts and searches in headless Chromium."""

from __future__ import annotations

import importlib.util
import shutil
from collections.abc import Sequence
from typing import Any, cast

import numpy as np

from benchmarks.claims.figures import Spec
from benchmarks.claims.source import Report, Source

REPORT_SIZES = {"full": (1_000, 10_000, 50_000), "quick": (1_000, 3_000)}
BROWSER = ("ready_s", "sort_s", "search_s")


def _modes(size: int) -> tuple[str, ...]:
    return tuple(mode for mode, sizes in REPORT_SIZES.items() if size in sizes)


def _report_specs() -> tuple[Spec, ...]:
    specs: list[Spec] = []
    for size in sorted({s for sizes in REPORT_SIZES.values() for s in sizes}):
        at, modes, key = f"at {size:,} instructions", _modes(size), f"report_{size}"
        specs += [
            Spec(f"{key}.html_mb", f"report.html {at}", "MB", 1, tolerance=0.15, modes=modes),
            Spec(
                f"{key}.ready_s",
                f"the page interactive in Chromium {at}",
                "s",
                2,
                tolerance=0.4,
                modes=modes,
            ),
            Spec(f"{key}.sort_s", f"a sort in Chromium {at}", "s", 2, tolerance=0.4, modes=modes),
            Spec(
                f"{key}.search_s", f"a search in Chromium {at}", "s", 2, tolerance=0.4, modes=modes
            ),
            Spec(
                f"{key}.report_s",
                f"`selfinstruct report` with the verb-noun parse {at} (parsing every instruction)",
                "s",
                1,
                tolerance=0.4,
                modes=modes,
            ),
            Spec(
                f"{key}.no_verbs_s",
                f"`selfinstruct report --no-verbs` {at}",
                "s",
                1,
                tolerance=0.4,
                modes=modes,
            ),
            Spec(
                f"{key}.peak_mb",
                f"peak RSS of `selfinstruct report` with the parse {at}",
                "MB",
                0,
                tolerance=0.25,
                modes=modes,
            ),
        ]
    for mode, sizes in REPORT_SIZES.items():
        span = f"{sizes[0]:,}-{sizes[-1]:,} instructions"
        specs += [
            Spec(
                f"parse_{sizes[-1]}.ms_per_instruction",
                f"the verb-noun parse per instruction (fit over {span})",
                "ms",
                1,
                tolerance=0.4,
                modes=(mode,),
            ),
            Spec(
                f"parse_{sizes[-1]}.fixed_s",
                f"the verb-noun parse's fixed cost, mostly loading spaCy (fit over {span})",
                "s",
                0,
                tolerance=0.6,
                modes=(mode,),
            ),
        ]
    return tuple(specs)


def _report_commands(mode: str) -> list[list[str]]:
    return [["benchmarks.bench_report", "--sizes", *map(str, REPORT_SIZES[mode])]]


def _report_conditions(mode: str) -> str:
    sizes = ", ".join(f"{s:,}" for s in REPORT_SIZES[mode])
    return (
        f"`bench_report` at {sizes} instructions: each a `selfinstruct run --backend fake` with "
        "bootstrap.rouge_threshold 0.9 and prepare.report false (made once, kept in "
        "benchmarks/.work/report), then `selfinstruct report` in a child process with "
        "--no-verbs and with the verb-noun parse (spaCy's small English pipeline; the run "
        "keeps no parse, so every instruction is parsed), wall time and peak RSS from wait4; "
        "the page opened in headless Chromium (Playwright), 1366x900: time to interactive, "
        "a sort by pool, a search for 'the'"
    )


def _report_extract(mode: str, reports: Sequence[Report]) -> dict[str, float]:
    found: dict[str, float] = {}
    # bench_report's report is a list of rows, one per size
    rows: list[dict[str, Any]] = [row for report in reports for row in cast(list, report)]
    for row in rows:
        key = f"report_{row['instructions']}"
        found[f"{key}.html_mb"] = row["html_mb"]
        found[f"{key}.report_s"] = row["report_s"]
        found[f"{key}.no_verbs_s"] = row["no_verbs_s"]
        found[f"{key}.peak_mb"] = row["report_peak_mb"]
        for name in BROWSER:
            if row["browser"]:
                found[f"{key}.{name}"] = row["browser"][name]
    # the parse's cost: report with it less report without, a line through the sizes
    sizes = [row["instructions"] for row in rows]
    parse = [row["report_s"] - row["no_verbs_s"] for row in rows]
    if len(set(sizes)) >= 2:
        slope, intercept = np.polyfit(sizes, parse, 1)
        top = REPORT_SIZES[mode][-1]
        found[f"parse_{top}.ms_per_instruction"] = 1000 * slope
        found[f"parse_{top}.fixed_s"] = intercept
    return found


def _report_needs() -> str | None:
    if shutil.which("chromium") is None and shutil.which("chromium-browser") is None:
        return "no Chromium on PATH (chromium or chromium-browser)"
    if importlib.util.find_spec("playwright") is None:
        return "Playwright is not installed (pip install playwright)"
    if importlib.util.find_spec("spacy") is None:
        return "spaCy is not installed (`pip install 'selfinstruct[report]'`)"
    return None


REPORT_PAGE = Source(
    name="report_page",
    title="The run report at 1,000 / 10,000 / 50,000 instructions",
    specs=_report_specs(),
    commands=_report_commands,
    conditions=_report_conditions,
    extract=_report_extract,
    needs=_report_needs,
)
