"""The run report: one self-contained HTML file (report.html) and the numbers behind its
charts (report.json), computed from a run its caller has opened (read-only is enough: it
writes nothing but the verb-noun pairs it parses, and those only to a store open to write);
it never opens a run itself.

This module stays light (the standard library only): commands name the report without
loading it."""

from pathlib import Path

REPORT_NAME = "report.html"


def report_line(path: Path) -> str:
    """How a written report is announced to the user."""
    return f"Report (open in a browser): {path}"
