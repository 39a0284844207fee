"""Long runs (memory and time of a whole run, prepare with and without its report) and the
fast lane (`make check`)."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.claims.figures import Spec
from benchmarks.claims.source import Report, Source

# -- long runs: memory and time of a whole run, prepare with and without its report --------
LONG_SIZES = {"full": (10_000, 50_000), "quick": (1_000, 3_000)}
LARGE = 20_000  # from this size on, runs use bootstrap.rouge_threshold 0.9 (see conditions)


def _long_specs() -> tuple[Spec, ...]:
    specs: list[Spec] = []
    for mode, sizes in LONG_SIZES.items():
        for size in sizes:
            at = f"at {size:,} instructions"
            specs += [
                Spec(
                    f"run_{size}.peak_mb",
                    f"peak memory of the whole run {at}",
                    "MB",
                    tolerance=0.25,
                    limit=("<=", 1024.0),
                    modes=(mode,),
                ),
                Spec(
                    f"run_{size}.seconds",
                    f"wall time of the whole run {at}",
                    "s",
                    tolerance=0.4,
                    modes=(mode,),
                ),
                Spec(
                    f"run_{size}.prepare_s",
                    f"`prepare` with its report {at}",
                    "s",
                    1,
                    tolerance=0.4,
                    modes=(mode,),
                ),
                Spec(
                    f"run_{size}.prepare_no_report_s",
                    f"`prepare` without the report {at}",
                    "s",
                    1,
                    tolerance=0.4,
                    modes=(mode,),
                ),
                Spec(
                    f"run_{size}.prepare_ratio",
                    f"prepare with / without its report {at}",
                    "x",
                    2,
                    tolerance=0.2,
                    limit=("<=", 1.5),
                    modes=(mode,),
                ),
                Spec(
                    f"run_{size}.prepare_peak_mb",
                    f"peak memory of `prepare` {at}",
                    "MB",
                    tolerance=0.25,
                    modes=(mode,),
                ),
                Spec(
                    f"run_{size}.report_s",
                    f"`selfinstruct report` alone {at}",
                    "s",
                    1,
                    tolerance=0.4,
                    modes=(mode,),
                ),
                Spec(
                    f"run_{size}.parsed_share",
                    f"instructions whose parse the run kept {at}",
                    "",
                    2,
                    tolerance=0.0,
                    limit=(">=", 1.0),
                    modes=(mode,),
                ),
            ]
        small, large = sizes
        specs.append(
            Spec(
                f"growth_{small}_{large}",
                f"peak at {large:,} / peak at {small:,}",
                "x",
                2,
                tolerance=0.25,
                limit=("<=", large / small),
                modes=(mode,),
            )
        )
    return tuple(specs)


def _long_commands(mode: str) -> list[list[str]]:
    found = []
    for size in LONG_SIZES[mode]:
        command = ["benchmarks.bench_memory", "--sizes", str(size)]
        if size >= LARGE:
            command += ["--set", "bootstrap.rouge_threshold=0.9"]
        found.append(command)
    return found


def _long_conditions(mode: str) -> str:
    small, large = LONG_SIZES[mode]
    tail = (
        f"; the {large:,}-instruction run with bootstrap.rouge_threshold 0.9 (the fake "
        "backend's small vocabulary makes nearly every candidate a near-duplicate past some "
        "15,000 instructions at 0.7)"
        if large >= LARGE
        else ""
    )
    return (
        f"`selfinstruct run --backend fake --num-instructions N` at N = {small:,} and "
        f"{large:,}, default settings{tail}; each in a child process, peak RSS from wait4 "
        "(the command or the parse helper, whichever is larger); prepare and report timed "
        "twice on the finished run, medians"
    )


def _long_extract(mode: str, reports: Sequence[Report]) -> dict[str, float]:
    found: dict[str, float] = {}
    rows = [row for report in reports for row in report["rows"]]
    for row in rows:
        at = f"run_{row['asked']}"
        for name in (
            "peak_mb",
            "seconds",
            "prepare_s",
            "prepare_no_report_s",
            "prepare_ratio",
            "prepare_peak_mb",
            "report_s",
        ):
            found[f"{at}.{name}"] = row["peak_rss_mb" if name == "peak_mb" else name]
        found[f"{at}.parsed_share"] = row["parsed"] / max(1, row["instructions"])
    small, large = LONG_SIZES[mode]
    found[f"growth_{small}_{large}"] = found[f"run_{large}.peak_mb"] / found[f"run_{small}.peak_mb"]
    return found


LONG_RUNS = Source(
    name="long_runs",
    title="Long runs: memory, time, and prepare with its report",
    specs=_long_specs(),
    commands=_long_commands,
    conditions=_long_conditions,
    extract=_long_extract,
)

# -- the fast lane: `make check` ------------------------------------------------------------
FAST_LANE = Source(
    name="fast_lane",
    title="The fast lane: `make check`",
    specs=(
        Spec(
            "make_check_s",
            "`make check` wall time (median)",
            "s",
            tolerance=0.3,
            limit=("<=", 60.0),
        ),
        Spec("tests", "tests `make check` runs", tolerance=0.25),
    ),
    commands=lambda mode: [["benchmarks.bench_check", "--repeat", "3" if mode == "full" else "1"]],
    conditions=lambda mode: (
        "`make check` in this checkout, its installs already done; "
        + ("3 runs, the median" if mode == "full" else "1 run")
    ),
    extract=lambda mode, reports: {
        "make_check_s": reports[0]["median_s"],
        "tests": reports[0]["tests"],
    },
)


# -- a newcomer's `make test`: a fresh clone, a fresh virtual environment -----------------
FRESH_CLONE = Source(
    name="fresh_clone",
    title="`make test` in a fresh clone",
    specs=(
        Spec(
            "make_test_minutes",
            "`make test` in a fresh clone, installs included",
            "min",
            0,
            tolerance=0.35,
            limit=("<=", 20.0),
            modes=("full",),
        ),
        Spec("passed", "tests passed", tolerance=0.1, modes=("full",)),
        Spec("skipped", "tests skipped", tolerance=0.0, limit=("<=", 0.0), modes=("full",)),
        Spec("failed", "tests failed", tolerance=0.0, limit=("<=", 0.0), modes=("full",)),
    ),
    commands=lambda mode: [["benchmarks.bench_fresh_clone"]],
    conditions=lambda mode: (
        "`git clone` of the commit, `make test` with a fresh virtual "
        "environment, pip's cache as the machine has it (a built llama-cpp-python wheel in it: the "
        "engine's build from source is not timed), `../shared` linked beside the clone"
    ),
    extract=lambda mode, reports: {
        key: float(reports[0][key]) for key in ("make_test_minutes", "passed", "skipped", "failed")
    },
)


# -- installing: the engine's build from source, the train extra's disk -------------------
INSTALL = Source(
    name="install",
    title="Installing: the engine's build and the train extra",
    specs=(
        Spec(
            "engine_build_minutes",
            "llama-cpp-python built from source, no pip cache",
            "min",
            0,
            tolerance=0.4,
            modes=("full",),
        ),
        Spec(
            "train_extra_gb",
            "disk the `train` extra adds to the demo's install",
            "GB",
            1,
            tolerance=0.15,
            modes=("full",),
        ),
    ),
    commands=lambda mode: [["benchmarks.bench_install"]],
    conditions=lambda mode: (
        "`pip wheel --no-cache-dir` of the pinned llama-cpp-python from "
        "its source with CMAKE_ARGS=-DGGML_NATIVE=OFF (pip's cache untouched); the installed size "
        "of every distribution selfinstruct[train] brings beyond selfinstruct[embedded,report]"
    ),
    extract=lambda mode, reports: {
        "engine_build_minutes": reports[0]["engine_build_minutes"],
        "train_extra_gb": reports[0]["train_extra_gb"],
    },
)
