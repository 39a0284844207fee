"""Every benchmark behind a documented figure (each defined in its own module)."""

from __future__ import annotations

from benchmarks.claims.embedded import EMBEDDED
from benchmarks.claims.report_page import REPORT_PAGE
from benchmarks.claims.runs import FAST_LANE, FRESH_CLONE, INSTALL, LONG_RUNS
from benchmarks.claims.similarity import ROUGE
from benchmarks.claims.source import Source
from benchmarks.claims.throughput import AUTO_CONCURRENCY, CLIENT_THROUGHPUT, RUN_THROUGHPUT

SOURCES: tuple[Source, ...] = (  # in the order they run: the figures the issue asked for first
    LONG_RUNS,
    REPORT_PAGE,
    RUN_THROUGHPUT,
    CLIENT_THROUGHPUT,
    AUTO_CONCURRENCY,
    ROUGE,
    EMBEDDED,
    FAST_LANE,  # last: they run the tests, which check the docs against the results
    FRESH_CLONE,
    INSTALL,
)


def by_name(name: str) -> Source:
    for source in SOURCES:
        if source.name == name:
            return source
    known = ", ".join(s.name for s in SOURCES)
    raise SystemExit(f"no benchmark named {name!r} (known: {known})")
