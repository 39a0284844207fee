"""The run report at growing sizes: generation time, file sizes, and how fast the page
becomes interactive in Chromium.

    python -m benchmarks.bench_report [--sizes 1000 10000 50000] [--workdir DIR] [--json OUT]

Each size is a `selfinstruct run --backend fake` (made once and kept in --workdir, without
its own report; bootstrap.rouge_threshold 0.9, see ROUGE_THRESHOLD). Then `selfinstruct
report` runs in a child process without the verb-noun parse (--no-verbs) and with it (spaCy);
wall time and peak RSS come from wait4. The page is opened in headless Chromium (Playwright,
when installed): time until its browser is interactive, then the time a sort and a search
take.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.child import timed
from benchmarks.machine import cpu_model, package_versions

# The fake backend's vocabulary is small: past some 15,000 instructions nearly every candidate
# is within 0.7 of the pool, and a 50,000-instruction run would take hours. A looser filter
# keeps the run quick; the report's cost depends on the counts it reports (instructions,
# candidates, requests), printed beside each result.
ROUGE_THRESHOLD = 0.9


def child(args: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of `python -m selfinstruct ARGS`."""
    return timed([sys.executable, "-m", "selfinstruct", *args])


def ensure_run(size: int, workdir: Path) -> Path:
    run = workdir / f"run{size}"
    if not (run / "finetuning_data").is_dir():
        shutil.rmtree(run, ignore_errors=True)
        seconds, _ = child(
            ["run", "--out", str(run), "--backend", "fake", "--num-instructions", str(size),
             "--set", f"bootstrap.rouge_threshold={ROUGE_THRESHOLD}",
             "--set", "prepare.report=false", "-q"]
        )  # fmt: skip
        print(f"made a {size}-instruction run in {seconds:.0f} s", file=sys.stderr)
    return run


def wait_until(page: Any, expression: str, timeout: float = 120.0) -> None:
    """Poll a JavaScript expression from here (the page's Content-Security-Policy forbids
    the eval that Playwright's in-page polling uses)."""
    deadline = time.perf_counter() + timeout
    while not page.evaluate(expression):
        if time.perf_counter() > deadline:
            raise TimeoutError(expression)
        time.sleep(0.02)


def browser_timing(page_file: Path) -> dict[str, float] | None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if chromium is None:
        return None
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        started = time.perf_counter()
        page.goto(page_file.resolve().as_uri())
        wait_until(page, "document.body.dataset.ready === '1'")
        ready = time.perf_counter() - started
        started = time.perf_counter()
        page.click("th[data-key=pool]")
        page.wait_for_selector("th[data-key=pool][aria-sort]")
        sort = time.perf_counter() - started
        started = time.perf_counter()
        page.fill("#search", "the")
        wait_until(
            page,
            "document.querySelector('#matches').textContent.split(' of ')[0] !== "
            "document.querySelector('#n-instructions').textContent",
        )
        search = time.perf_counter() - started - 0.12  # less the search's typing pause
        browser.close()
    return {"ready_s": ready, "sort_s": sort, "search_s": max(0.0, search)}


def measure(size: int, workdir: Path) -> dict[str, Any]:
    run = ensure_run(size, workdir)
    out = workdir / f"report{size}.html"
    plain_s, plain_mb = child(["report", "--run", str(run), "--out", str(out), "--no-verbs"])
    full_s, full_mb = child(["report", "--run", str(run), "--out", str(out)])  # the page opened
    counts = json.loads(out.with_suffix(".json").read_text())["funnel"]
    return {
        "instructions": size,
        "candidates": sum(
            s["kept"] + sum(d["count"] for d in s["dropped"])
            for s in counts
            if s["unit"] == "candidates"
        ),
        "requests": next(
            s["kept"] + sum(d["count"] for d in s["dropped"])
            for s in counts
            if s["unit"] == "responses"
        ),
        "report_s": full_s,
        "report_peak_mb": full_mb,
        "no_verbs_s": plain_s,
        "no_verbs_peak_mb": plain_mb,
        "html_mb": out.stat().st_size / 1e6,
        "json_kb": out.with_suffix(".json").stat().st_size / 1e3,
        "browser": browser_timing(out),
    }


def table(results: list[dict[str, Any]]) -> str:
    lines = [
        "| instructions | candidates | bootstrap requests | report (with verbs) | peak RSS | "
        "--no-verbs | report.html | report.json | ready in Chromium | sort | search |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        b = r["browser"] or {}
        lines.append(
            f"| {r['instructions']:,} | {r['candidates']:,} | {r['requests']:,} "
            f"| {r['report_s']:.1f} s | {r['report_peak_mb']:.0f} MB | "
            f"{r['no_verbs_s']:.1f} s | {r['html_mb']:.1f} MB | {r['json_kb']:.0f} kB | "
            + " | ".join(
                f"{b[k]:.2f} s" if k in b else "–" for k in ("ready_s", "sort_s", "search_s")
            )
            + " |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10000, 50000])
    parser.add_argument("--workdir", type=Path, default=Path("benchmarks/.work/report"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    results = [measure(size, args.workdir) for size in args.sizes]
    print(f"Machine: {os.cpu_count()} CPUs ({cpu_model()}); "
          f"{package_versions(('selfinstruct', 'spacy', 'playwright'))}")  # fmt: skip
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
