"""Hostile model text in the report and the dataset card: a model whose instructions, inputs,
outputs, class labels, relabel answers and judge reasons carry HTML, scripts, CDATA ends,
backticks, table pipes and line breaks, and reviewers whose names do too, give a report
whose page runs none of it (escaped in the page, base64 in its data blob) and a card whose
markdown holds it in code spans, its tables keeping their columns."""

from __future__ import annotations

import base64
import gzip
import json
import re
from collections.abc import Sequence
from html import escape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from conftest import cli

from selfinstruct.llm.backends import fake
from selfinstruct.llm.backends.fake_text import WordSource
from selfinstruct.reviewing.sample import ensure_sample
from selfinstruct.store.run_store import RunStore
from selfinstruct.views.tasks import parsed_tasks

SCRIPT = "<script>alert(1)</script>"
IMAGE = "<img src=x onerror=alert(1)>"
# One line each (an instruction is one line of the model's list).
FRAGMENTS = (
    SCRIPT,
    IMAGE,
    "]]> <![CDATA[ x",
    "</pre></textarea></code><b>bold</b>",
    "`tick` ``two`` ```fence",
    "| a | b |",
    "<!-- c -->",
    "[link](javascript:alert(1)) *star* _under_ # hash",
    "&amp; &lt;x&gt;",
    "</script><script>alert(2)</script>",
)
# Class labels (no commas: the relabel prompt lists them comma-separated).
LABELS = (
    ("<b>yes</b>", "no | `maybe`"),
    (SCRIPT, "]]>"),
    ("``spam``", IMAGE),
)
# Markup that must never reach a page or card as markup.
ACTIVE = ("<script", "<img", "onerror", "javascript:", "<b>", "<!--", "<![CDATA[")
REVIEWERS = (SCRIPT, "eve | `x` " + IMAGE + " ]]>")


class HostileWords(WordSource):
    """The fake backend's text with hostile fragments worked in: every instruction, input,
    output, label set, relabel answer and judge reason (inputs and outputs now and then
    over two lines)."""

    def _fragment(self) -> str:
        return self.rng.choice(FRAGMENTS)

    def instruction(self) -> str:
        return f"{super().instruction()} {self._fragment()}"

    def sentence(self) -> str:
        text = f"{super().sentence()} {self._fragment()}"
        if self.rng.random() < 0.3:
            text += f"\n{self._fragment()}"
        return text

    def label_set(self) -> Sequence[str]:
        return self.rng.choice(LABELS)


def hostile_run(directory: Path, n: int, *extra: str) -> Path:
    """A fake run (its judge and relabel on) whose model text is hostile, reviewed by two
    people with hostile names; prepare then writes its card and report."""
    run = directory / "run"
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(fake, "WordSource", HostileWords)
        cli(
            "run", "--out", run, "--backend", "fake", "--num-instructions", n, "-q",
            "--judge", "fake:judge-1", "--relabel", "--set", "prepare.report_verbs=false",
            *extra,
        )  # fmt: skip
    with RunStore.open(run) as store:
        sample = ensure_sample(store, parsed_tasks(store, "completion"), 8, "one", "test")
        for number, item in enumerate(sample):
            for reviewer in REVIEWERS:
                for question in ("instruction", "input", "output"):
                    store.reviews.answer(reviewer, item.instance, item.digest, question, True)
                rating = "D" if (number + len(reviewer)) % 3 == 0 else "A"
                store.reviews.answer(reviewer, item.instance, item.digest, "rating", rating)
    cli("prepare", "--out", run, "-q", "--set", "prepare.report_verbs=false", *extra)
    return run


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return hostile_run(tmp_path_factory.mktemp("hostile"), 24)


class Tags(HTMLParser):
    """Every element, attribute and comment of a page, as a browser's parser sees them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.comments: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)

    def handle_comment(self, data: str) -> None:
        self.comments.append(data)


def page_tags(html: str) -> Tags:
    tags = Tags()
    tags.feed(html)
    tags.close()
    return tags


def blob(html: str) -> dict[str, Any]:
    found = re.search(
        r'<script type="application/octet-stream" id="report-data"[^>]*>([^<]*)<', html
    )
    assert found
    assert re.fullmatch(r"[A-Za-z0-9+/=\s]*", found.group(1))  # nothing but base64
    return json.loads(gzip.decompress(base64.b64decode(found.group(1))))


def strings(value: Any) -> list[str]:
    """Every string in a JSON value."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in strings(item)]
    return []


def test_the_model_wrote_hostile_text_into_every_field(run: Path) -> None:
    """The premise: the hostile text is in the run's instructions, inputs, outputs, labels,
    relabel answers and judge reasons, and in the report's numbers and records."""
    import sqlite3

    with sqlite3.connect(run / "selfinstruct.db") as db:
        columns = {
            "instruction": "SELECT instruction FROM instructions",
            "input": "SELECT input FROM parsed_instances",
            "output": "SELECT output FROM parsed_instances",
            "relabel": "SELECT answer FROM relabels",
            "reasons": "SELECT reasons FROM judgments",
        }
        found = {
            name: "\n".join(str(r[0]) for r in db.execute(sql)) for name, sql in columns.items()
        }
    for name, text in found.items():
        assert SCRIPT in text or IMAGE in text, name
    assert any(label in found["output"] for pair in LABELS for label in pair)
    records = "\n".join(strings(blob((run / "report.html").read_text(encoding="utf-8"))))
    for fragment in (SCRIPT, IMAGE, "| a | b |", "]]>", "`tick`"):
        assert fragment in records, fragment


def test_the_report_page_runs_no_model_text(run: Path) -> None:
    html = (run / "report.html").read_text(encoding="utf-8")
    tags = page_tags(html)
    # Only the page's own elements: no image, no handler, no link to a script, no comment.
    assert not [t for t, _ in tags.tags if t in ("img", "iframe", "object", "embed")]
    assert not [(t, a) for t, a in tags.tags if any(k.startswith("on") for k in a)]
    assert not [a for _, a in tags.tags if "javascript:" in str(a.get("href", ""))]
    assert tags.comments == []
    scripts = [a for t, a in tags.tags if t == "script"]
    # The data blob and the page's own script, nothing else.
    assert [a.get("id") for a in scripts] == ["report-data", None], scripts
    assert scripts[0]["type"] == "application/octet-stream" and "src" not in scripts[1]
    assert "alert(" not in "".join(tags.scripts[1:])  # the page's own script
    # What the page shows of model and reviewer text is escaped, and shown.
    for raw in ("<script>alert", "<img src", "<![CDATA[", "<!-- c -->", "<b>bold", "<b>yes"):
        assert raw not in html, raw
    shown = [escape(SCRIPT), escape(IMAGE)]
    assert all(text in html for text in shown), "no hostile text reached the page"
    for reviewer in REVIEWERS:
        assert escape(reviewer) in html


def test_the_report_numbers_keep_the_text_as_it_was(run: Path) -> None:
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    found = "\n".join(strings(report))
    assert SCRIPT in found and all(name in found for name in REVIEWERS)


def code_spans(line: str) -> list[tuple[int, int]]:
    """Where the inline code spans of a markdown line are (a backtick run to the next run of
    the same length)."""
    spans, at = [], 0
    while (start := line.find("`", at)) >= 0:
        ticks = re.match(r"`+", line[start:])
        assert ticks
        fence = ticks.group(0)
        end = re.search(rf"(?<!`){fence}(?!`)", line[start + len(fence) :])
        if end is None:
            at = start + len(fence)
            continue
        close = start + len(fence) + end.end()
        spans.append((start, close))
        at = close
    return spans


def outside_code(line: str) -> str:
    kept, at = [], 0
    for start, end in code_spans(line):
        kept.append(line[at:start])
        at = end
    return "".join(kept) + line[at:]


def test_the_card_quotes_model_and_reviewer_text_and_keeps_its_tables(run: Path) -> None:
    card = (run / "exports" / "README.md").read_text(encoding="utf-8")
    lines = card.split("\n---\n", 1)[1].split("\n")  # the body, after the YAML header
    fenced = False
    for line in lines:
        if line.startswith("```"):
            fenced = not fenced
            continue
        if fenced:
            continue
        bare = outside_code(line)
        for markup in ACTIVE:
            assert markup not in bare, line
    # Every reviewer's name is in the card, whole, in one code span.
    for reviewer in REVIEWERS:
        quoted = [
            line[start:end]
            for line in lines
            for start, end in code_spans(line)
            if reviewer in line[start:end]
        ]
        assert quoted, reviewer
    # A table row has its header's columns: no pipe from a field adds one.
    table: list[str] = []
    for line in [*lines, ""]:
        if line.startswith("|"):
            table.append(line)
            continue
        if table:
            widths = {len(re.findall(r"(?<!\\)\|", row)) for row in table}
            assert len(widths) == 1, table
            table = []


@pytest.mark.slow  # a headless Chromium, and the verb-noun chart's parser
def test_a_browser_shows_the_hostile_text_as_text_and_runs_none_of_it(tmp_path: Path) -> None:
    """The report in Chromium: the record browser shows the model's text (searched for,
    a row's instances opened) as text; no dialog opens, no image loads, nothing is logged."""
    from browsers import chromium, wait_until

    run = hostile_run(tmp_path, 30, "--set", "prepare.report_verbs=true")
    with chromium() as browser:
        page = browser.new_page()
        dialogs: list[str] = []
        errors: list[str] = []
        requests: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.on("console", lambda m: m.type in ("error", "warning") and errors.append(m.text))
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        url = (run / "report.html").resolve().as_uri()
        page.goto(url)
        wait_until(page, "document.body.dataset.ready")
        page.fill("#search", "alert(1)")
        page.wait_for_timeout(400)  # the search waits for typing to pause
        shown = page.eval_on_selector_all(
            "#grid tbody tr.row", "rows => rows.map(r => r.cells[1].textContent)"
        )
        assert shown and any(SCRIPT in text or IMAGE in text for text in shown), shown
        page.click("#grid tbody tr.row >> nth=0")
        detail = page.text_content("tr.detail") or ""
        assert "alert(" in detail
        page.click("button[data-tab=dropped]")
        assert page.evaluate("document.querySelectorAll('img, iframe, object, embed').length") == 0
        assert page.evaluate("document.scripts.length") == 2
        page.wait_for_timeout(200)
        assert dialogs == [] and errors == [] and requests == [url]
        page.close()
