"""The report as one self-contained HTML page: the template, style and script from assets/,
the sections drawn as HTML and SVG, and the browser's records embedded as gzip'ed JSON in
base64 (a 50,000-instruction run stays a file a browser opens in seconds). The page's
Content-Security-Policy forbids every network request."""

from __future__ import annotations

import base64
import json
import queue
import string
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from html import escape
from importlib import resources
from typing import Any

from selfinstruct.report import sections
from selfinstruct.version import __version__


def asset(name: str) -> str:
    return resources.files("selfinstruct.report").joinpath("assets", name).read_text("utf-8")


LEVEL = 4  # gzip's level: at 10,000 instructions 0.25 s and 6.6 MB, where 6 takes 0.54 s for 6.0
BLOCK = 1 << 20  # JSON text handed to the compressor at a time (characters, about)


def pack(records: dict[str, Any]) -> str:
    """JSON, gzip'ed (no timestamp, so the same run gives the same bytes), in base64. zlib
    compresses in a thread while the JSON is being encoded (it releases the GIL), so the two
    overlap on a second core; the bytes are those of `gzip.compress(json, LEVEL, mtime=0)`."""
    return base64.b64encode(gzip_blocks(_blocks(_json_pieces(records)))).decode("ascii")


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_pieces(value: Any, rows: int = 2000) -> Iterator[str]:
    """The text of `_dumps(value)`, in pieces: a dict key by key, a long list `rows` items at
    a time (each piece encoded by json's C encoder, which only encodes whole values)."""
    if isinstance(value, dict):
        yield "{"
        for n, (key, item) in enumerate(value.items()):
            yield ("," if n else "") + _dumps(key) + ":"
            yield from _json_pieces(item, rows)
        yield "}"
    elif isinstance(value, list) and len(value) > rows:
        yield "["
        for start in range(0, len(value), rows):
            yield ("," if start else "") + _dumps(value[start : start + rows])[1:-1]
        yield "]"
    else:
        yield _dumps(value)


def _blocks(pieces: Iterable[str]) -> Iterator[bytes]:
    """The pieces of text joined into blocks of about BLOCK characters, as UTF-8."""
    pending: list[str] = []
    size = 0
    for piece in pieces:
        pending.append(piece)
        size += len(piece)
        if size >= BLOCK:
            yield "".join(pending).encode("utf-8")
            pending, size = [], 0
    if pending:
        yield "".join(pending).encode("utf-8")


def gzip_blocks(blocks: Iterable[bytes]) -> bytes:
    """A gzip member (mtime 0) of the concatenated blocks, compressed in a second thread as
    the blocks come."""
    compressor = zlib.compressobj(LEVEL, zlib.DEFLATED, 31)  # 31: a gzip header, mtime 0
    todo: queue.Queue[bytes | None] = queue.Queue(maxsize=4)
    out: list[bytes] = []

    def work() -> None:
        while (block := todo.get()) is not None:
            out.append(compressor.compress(block))

    worker = threading.Thread(target=work, name="report-gzip", daemon=True)
    worker.start()
    try:
        for block in blocks:
            todo.put(block)
    finally:
        todo.put(None)
        worker.join()
    out.append(compressor.flush())
    return b"".join(out)


def render(
    report: dict[str, Any], records: dict[str, Any] | str, compared: Sequence[dict[str, Any]] = ()
) -> str:
    """The page for one run (and the runs it is compared with, shown side by side); `records`:
    the browser's records, or already `pack`ed."""
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
        data=records if isinstance(records, str) else pack(records),
        script=asset("report.js"),
    )
