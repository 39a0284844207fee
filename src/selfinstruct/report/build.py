"""Write a run's report: report.html and, beside it, report.json (same name, .json)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from selfinstruct.exporters.jsonl import write_atomic, write_json
from selfinstruct.pipeline import open_view
from selfinstruct.report.collect import browser, read_run, summary
from selfinstruct.report.page import render
from selfinstruct.stages.context import RunContext

REPORT_NAME = "report.html"


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
    compare: Sequence[Path] = (),
    *,
    verbs: bool = True,
) -> Written:
    """Report on the run `ctx` has open (reading only), compared with other run directories;
    both files are written atomically."""
    out = out or ctx.store.run_dir / REPORT_NAME
    data = read_run(ctx, verbs=verbs)
    report = summary(data)
    compared = [_summary_of(path, verbs) for path in compare]
    if compared:
        report["compared"] = compared
    html = render(report, browser(data), compared)
    write_atomic(out, [html])
    write_json(json_path(out), report)
    return Written(out, json_path(out), report)


def _summary_of(run_dir: Path, verbs: bool) -> dict[str, Any]:
    ctx = open_view(run_dir)
    try:
        return summary(read_run(ctx, verbs=verbs))
    finally:
        ctx.store.close()
