"""Which of report.json's numbers are the report's own, and which a stage measured."""

from __future__ import annotations

from typing import Any

# The keys report.json's own numbers go under; every other key holds what a stage measured
# (`Stage.numbers`: the judge's Table 2, the label agreement, a plug-in stage's numbers).
OWN_KEYS = frozenset(
    {
        "format",
        "format_version",
        "generated_at",
        "selfinstruct",
        "run",
        "table1",
        "diversity",
        "similarity",
        "lengths",
        "variety",
        "funnel",
        "economics",
        "screened",
        "compared",
    }
)


def stage_numbers(report: dict[str, Any]) -> dict[str, Any]:
    """What the run's stages measured, out of a report's numbers."""
    return {key: value for key, value in report.items() if key not in OWN_KEYS}
