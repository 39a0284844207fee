"""The report in a real browser (headless Chromium, driven by Playwright): no console error,
no network request, every chart drawn, search, sort, filters, pages and details work, for a
fake run, an embedded run, and a 50,000-instruction report."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browsers import chromium, wait_until
from conftest import cli

from selfinstruct.report.page import render

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with chromium() as found:
        yield found


class Opened:
    """A report open in a page, with what the page logged and requested."""

    def __init__(self, browser: Any, path: Path) -> None:
        self.url = path.resolve().as_uri()
        self.page = browser.new_page(viewport={"width": 1366, "height": 900})
        self.errors: list[str] = []
        self.requests: list[str] = []
        self.page.on(
            "console", lambda m: m.type in ("error", "warning") and self.errors.append(m.text)
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.goto(self.url)
        wait_until(self.page, "document.body.dataset.ready")
        assert self.page.evaluate("document.body.dataset.ready") == "1"

    def column(self, index: int) -> list[str]:
        return self.page.eval_on_selector_all(
            "#grid tbody tr.row", f"rows => rows.map(r => r.cells[{index}].textContent)"
        )

    def search(self, text: str) -> None:
        self.page.fill("#search", text)
        self.page.wait_for_timeout(400)  # the search waits 120 ms for typing to pause

    def close(self) -> None:
        self.page.close()


def check_page(opened: Opened) -> None:
    page = opened.page
    assert opened.errors == []
    assert opened.requests == [opened.url]
    charts = page.eval_on_selector_all(
        "svg.chart",
        "svgs => svgs.map(s => [s.dataset.chart, s.getBoundingClientRect().width, "
        "[...s.querySelectorAll('rect,path,polyline')].filter(m => { const b = m.getBBox(); "
        "return b.width > 0 && b.height > 0; }).length, !!s.querySelector('text.empty')])",
    )
    assert {kind for kind, _, _, _ in charts} >= {"histogram", "funnel"}
    # Every chart is drawn: marks, or it says it has none yet.
    assert all(width > 100 and (marks > 0 or empty) for _, width, marks, empty in charts), charts


def check_browser(opened: Opened) -> None:
    page = opened.page
    total = int(page.text_content("#n-instructions").replace(",", ""))
    assert len(opened.column(0)) == min(50, total)
    # Sort by ROUGE-L to seed, both ways.
    page.click("th[data-key=seed]")
    values = [float(v) for v in opened.column(5)]
    assert values == sorted(values)
    page.click("th[data-key=seed]")
    values = [float(v) for v in opened.column(5)]
    assert values == sorted(values, reverse=True)
    # Search for a word of the first instruction shown.
    word = max(opened.column(1)[0].split(), key=len).strip(".,?!").lower()
    opened.search(word)
    shown = opened.column(1)
    assert shown and len(shown) <= 50
    assert page.text_content("#matches").startswith(f"{_count(page)} of")
    # Open a row's details.
    page.click("#grid tbody tr.row >> nth=0")
    assert page.is_visible("tr.detail") and "Instances" in page.text_content("tr.detail")
    opened.search("")
    # The dropped candidates, filtered by one reason.
    page.click("button[data-tab=dropped]")
    options = page.eval_on_selector_all("#filter option", "os => os.map(o => o.value)")
    if len(options) > 1:
        page.select_option("#filter", options[1])
        assert set(opened.column(2)) == {options[1]}


def _count(page: Any) -> str:
    return page.text_content("#matches").split(" of ")[0]


def test_a_fake_run_report(browser: Any, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("run", "--out", run, "--backend", "fake", "--num-instructions", 120, "-q")
    opened = Opened(browser, run / "report.html")
    check_page(opened)
    check_browser(opened)
    # Pages: the next page shows the next rows.
    opened.page.click("button[data-tab=instructions]")
    opened.page.click("#next")
    assert opened.page.input_value("#page-number") == "2"
    assert opened.page.text_content("#pages") == " of 3"
    assert opened.column(0)[0] == "51"
    assert opened.errors == []
    opened.close()


@pytest.mark.embedded
def test_an_embedded_run_report(browser: Any, tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("run", "--out", run, "--num-instructions", 3, "-q", timeout=1800)
    opened = Opened(browser, run / "report.html")
    check_page(opened)
    assert opened.page.text_content("#n-instructions") == "3"
    opened.page.click("#grid tbody tr.row >> nth=0")
    assert "Request" in opened.page.text_content("tr.detail")
    opened.close()


def rows_shown(opened: Opened) -> int:
    return int(opened.page.eval_on_selector_all("#grid tbody tr.row", "rows => rows.length"))


def synthetic_records(n: int, seed: int = 0) -> dict[str, Any]:
    """A browser payload of n instructions with realistic sizes (for the page's scale only)."""
    rng = random.Random(seed)
    words = ["write", "explain", "list", "describe", "give", "the", "a", "of", "to"]
    words += ["story", "poem", "number", "city", "river", "data"]

    def text(k: int) -> str:
        return " ".join(rng.choice(words) for _ in range(k))

    rows = []
    for i in range(1, n + 1):
        instances = [[text(rng.randint(0, 12)), text(rng.randint(3, 30)), ""] for _ in range(3)]
        near = [[rng.randint(1, i) if i > 1 else -1, round(rng.random(), 4)] for _ in range(10)]
        scores = [round(rng.random() * 0.7, 4), round(rng.random(), 4)]
        sources = [["seed_task_1", "seed_task_2"], [max(1, i - 1)]]
        label = rng.randint(0, 1)
        head = [i, text(rng.randint(6, 25)), label, *scores, rng.randrange(175)]
        rows.append([*head, instances, near, i // 3, "Yes", "write poem", sources])
    return {
        "seeds": [[f"seed_task_{k}", text(12)] for k in range(175)],
        "instructions": rows,
        "lines": [text(12) for _ in range(400)],
        "requests": {
            str(k): [[rng.randrange(400) for _ in range(10)], text(150), "stop", "ok"]
            for k in range(0, n // 3 + 1)
        },
        "dropped": [[rng.randrange(n // 3), text(15), "rouge"] for _ in range(n)],
    }


def test_a_50000_instruction_report_shows_one_page_at_a_time(browser: Any, tmp_path: Path) -> None:
    """What keeps a 50,000-instruction page interactive: the table holds one page of rows
    (50), before and after sorting and searching, never the whole run (how fast it opens is
    the benchmarks' business: benchmarks/bench_report.py)."""
    run = tmp_path / "run"
    cli("run", "--out", run, "--backend", "fake", "--num-instructions", 10, "-q")
    report = json.loads((run / "report.json").read_text())
    page_file = tmp_path / "big.html"
    page_file.write_text(render(report, synthetic_records(50_000)), encoding="utf-8")
    opened = Opened(browser, page_file)
    assert opened.page.text_content("#n-instructions") == "50,000"
    assert rows_shown(opened) == 50
    opened.page.click("th[data-key=pool]")
    assert rows_shown(opened) == 50
    opened.search("river poem")
    matches = int(_count(opened.page).replace(",", ""))
    assert 0 < matches < 50_000 and rows_shown(opened) == min(50, matches)
    opened.page.click("#grid tbody tr.row >> nth=0")
    assert "Prompt" in opened.page.text_content("tr.detail")
    opened.page.fill("#page-number", "700")
    opened.page.dispatch_event("#page-number", "change")
    assert opened.errors == [] and opened.requests == [opened.url]
    opened.close()
