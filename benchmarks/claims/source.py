"""A benchmark behind documented figures: the commands that measure it in each mode, the
figures it yields (`Spec`s) and how they are read from the commands' JSON reports. Each
benchmark's figures go to its own results file (figures.py)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from benchmarks.claims.figures import Spec

Report = dict[str, Any]


@dataclass(frozen=True)
class Source:
    name: str  # its results file: benchmarks/results/NAME.json
    title: str  # what it measures (its section of BENCHMARKS.md)
    specs: tuple[Spec, ...]
    # Per mode, the benchmark commands (module and arguments for `python -m`; each is given
    # `--json FILE` and writes its report there)
    commands: Callable[[str], list[list[str]]]
    conditions: Callable[[str], str]  # per mode, in words: sizes, settings, server
    extract: Callable[[str, Sequence[Report]], dict[str, float]]  # figures from the reports
    needs: Callable[[], str | None] = lambda: None  # what is missing to run it, or None

    def spec(self, key: str) -> Spec:
        for spec in self.specs:
            if spec.key == key:
                return spec
        raise KeyError(f"{self.name} has no figure {key!r}")

    def measures(self, mode: str) -> bool:
        """Whether it has a measurement in `mode` (a slow one may have no quick mode)."""
        return bool(self.specs_for(mode))

    def specs_for(self, mode: str) -> list[Spec]:
        return [spec for spec in self.specs if mode in spec.modes]
