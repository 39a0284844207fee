"""Write a run's report: report.html and, beside it, report.json (same name, .json)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.analysis.verbs import VerbNouns
from selfinstruct.dataset.build import PreparedData
from selfinstruct.engine.context import RunContext
from selfinstruct.errors import InputError
from selfinstruct.io.atomic import write_atomic, write_json
from selfinstruct.report import REPORT_NAME
from selfinstruct.report.collect import RunData, browser, read_run, summary
from selfinstruct.report.page import pack, render

REPORT_FILES = (REPORT_NAME, "report.json")


@dataclass(frozen=True)
class Written:
    html: Path
    json: Path
    report: dict[str, Any]


def json_path(html: Path) -> Path:
    return html.with_suffix(".json")


def write_report(
    ctx: RunContext,
    out: Path | None = None,
    compare: Sequence[RunContext] = (),
    *,
    verbs: bool | None = None,
    prepared: PreparedData | None = None,
) -> Written:
    """Report on the run `ctx` has open (reading only, but for the verb-noun pairs it parses,
    kept in a store open to write: see parses.py), compared with other open runs (the caller
    opens and closes them); both files are written atomically. `verbs`: the verb-noun chart
    (default: the run's prepare.report_verbs). `prepared`: the dataset prepare has just built
    from this run's store, which the report then reuses instead of building it again."""
    out = out or ctx.store.run_dir / REPORT_NAME
    check_out(out, ctx.store.run_dir)
    if verbs is None:
        verbs = ctx.config.section("prepare").report_verbs
    with collector_paused():
        pages = Pages.made(ctx, verbs=verbs, prepared=prepared)
        compared = [summary(read_run(other, verbs=verbs)) for other in compare]
    return write_pages(ctx, pages, out, compared)


@dataclass
class Pages:
    """The report, all but written: what a report built beside prepare (beside.py) makes
    while prepare works, its numbers as the store held them then (the run's last records,
    `collect.recorded`, are read again before it is written)."""

    data: RunData
    packed: str  # the browser's records, packed
    report: dict[str, Any]

    @classmethod
    def made(
        cls,
        ctx: RunContext,
        nouns: VerbNouns | None = None,
        *,
        verbs: bool = True,
        prepared: PreparedData | None = None,
    ) -> Pages:
        """`nouns`: the verb-noun numbers, when already read (else parsed as `verbs` says)."""
        with collector_paused():
            data = read_run(ctx, verbs=verbs, prepared=prepared, nouns=nouns)
            return cls(data, pack(browser(data)), summary(data))


def write_pages(
    ctx: RunContext,
    pages: Pages,
    out: Path,
    compared: Sequence[dict[str, Any]] = (),
    latest: dict[str, Any] | None = None,
) -> Written:
    """Both files; `latest`: the numbers the run recorded since the pages were made
    (`collect.recorded`, read again by a report built beside prepare)."""
    report = {**pages.report, **(latest or {})}
    if compared:
        report["compared"] = list(compared)
    with collector_paused():
        html = render(report, pages.packed, compared)
    write_atomic(out, [html])
    write_json(json_path(out), report)
    return Written(out, json_path(out), report)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """Python's cycle collector off while the report is built: it makes millions of small
    objects that all live until the page is written, and the collector would walk them over
    and over (a third of the report's time at 10,000 instructions) to find no cycle."""
    was_on = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_on:
            gc.enable()


def check_out(out: Path, run_dir: Path) -> None:
    """The report goes to an .html file and its numbers beside it (.json): neither may be one
    of the run's own files."""
    if out.suffix.lower() not in (".html", ".htm"):
        raise InputError("--out", f"{out}: the report is an HTML file (name it .html)")
    run = run_dir.resolve()
    for path in (out, json_path(out)):
        if path.resolve().parent == run and path.exists() and path.name not in REPORT_FILES:
            raise InputError("--out", f"{path} is one of the run's own files; choose another name")
