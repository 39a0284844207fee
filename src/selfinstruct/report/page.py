"""The report as one self-contained HTML page: the template, style and script from assets/,
the sections drawn as HTML and SVG, and the browser's records embedded as gzip'ed JSON in
base64 (a 50,000-instruction run stays a file a browser opens in seconds). The page's
Content-Security-Policy forbids every network request."""

from __future__ import annotations

import base64
import gzip
import json
import string
from collections.abc import Sequence
from html import escape
from importlib import resources
from typing import Any

from selfinstruct.report import sections
from selfinstruct.version import __version__


def asset(name: str) -> str:
    return resources.files("selfinstruct.report").joinpath("assets", name).read_text("utf-8")


def pack(records: dict[str, Any]) -> str:
    """JSON, gzip'ed (no timestamp, so the same run gives the same bytes), in base64."""
    raw = json.dumps(records, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return base64.b64encode(gzip.compress(raw, compresslevel=6, mtime=0)).decode("ascii")


def render(
    report: dict[str, Any], records: dict[str, Any], compared: Sequence[dict[str, Any]] = ()
) -> str:
    """The page for one run (and the runs it is compared with, shown side by side)."""
    body = [
        sections.overview(report),
        sections.quality(report),
        *filter(None, [sections.review(report)]),  # only for a run people reviewed
        sections.diversity(report),
        sections.similarity(report),
        sections.lengths(report),
        sections.funnel(report),
        sections.economics(report),
    ]
    if compared:
        body.insert(0, sections.compare([report, *compared]))
    template = string.Template(asset("report.html"))
    return template.substitute(
        title=escape(f"selfinstruct report: {report['run']['name']}"),
        version=escape(__version__),
        css=asset("report.css"),
        header=sections.header(report),
        sections="\n".join(body),
        compare_link='<a href="#compare">Compare</a>' if compared else "",
        quality_link='<a href="#quality">Quality</a>' if 'id="quality"' in "".join(body) else "",
        review_link='<a href="#review">Review</a>' if 'id="review"' in "".join(body) else "",
        data=pack(records),
        script=asset("report.js"),
    )
