"""The ROUGE-L similarity filter (benchmarks/bench_rouge.py): pairs scored per second against
rouge_score, block scoring in one process and two, a paper-scale replay of bootstrap's filter,
the exact pruning bounds, and its decisions checked against rouge_score."""

from __future__ import annotations

from collections.abc import Sequence

from benchmarks.claims.figures import Spec
from benchmarks.claims.source import Report, Source

# --candidates and --pool (the pool the replay grows to; block scoring is timed at 10,000
# and at --pool)
ROUGE_SIZES = {"full": (100_000, 50_000), "quick": (15_000, 10_000)}
SEEDS = 120  # the packaged seed instructions every pool starts with


def _pools(mode: str) -> tuple[int, ...]:
    pool = ROUGE_SIZES[mode][1]
    return tuple(sorted({min(10_000, pool), pool}))


def _modes(pool: int) -> tuple[str, ...]:
    return tuple(mode for mode in ROUGE_SIZES if pool in _pools(mode))


def _marks(mode: str) -> tuple[int, ...]:
    return tuple(m for m in (1_000, 5_000, 10_000, 50_000) if m <= ROUGE_SIZES[mode][1])


def _rouge_specs() -> tuple[Spec, ...]:
    specs = [
        Spec(
            "pairs.m_per_s",
            "pairs scored per second, ours, one process (512 candidates against 5,120)",
            "M",
            1,
            tolerance=0.35,
        ),
        Spec(
            "pairs.vs_lcs",
            "ours against rouge_score's LCS on pre-tokenized text",
            "x",
            0,
            tolerance=0.3,
            limit=(">=", 1000.0),
        ),
        Spec(
            "pairs.vs_score",
            "ours against `RougeScorer.score`",
            "x",
            0,
            tolerance=0.3,
        ),
    ]
    for pool in sorted({p for mode in ROUGE_SIZES for p in _pools(mode)}):
        at = f"at a pool of {pool + SEEDS:,}"
        modes = _modes(pool)
        specs += [
            Spec(
                f"scaling_{pool}.m_per_s_1",
                f"block scoring, 1 process, {at}, pairs per second",
                "M",
                1,
                tolerance=0.35,
                modes=modes,
            ),
            Spec(
                f"scaling_{pool}.m_per_s_2",
                f"block scoring, 2 processes, {at}, pairs per second",
                "M",
                1,
                tolerance=0.35,
                modes=modes,
            ),
            Spec(
                f"scaling_{pool}.ratio",
                f"block scoring, 2 processes against 1, {at}",
                "x",
                2,
                tolerance=0.15,
                modes=modes,
            ),
            Spec(
                f"scaling_{pool}.ms_per_candidate_1",
                f"one candidate scored against the whole pool {at}, 1 process",
                "ms",
                1,
                tolerance=0.35,
                modes=modes,
            ),
            Spec(
                f"scaling_{pool}.candidates_per_s_2",
                f"candidates scored against the whole pool per second {at}, 2 processes",
                "",
                0,
                tolerance=0.35,
                modes=modes,
            ),
        ]
    for mode, (candidates, pool) in ROUGE_SIZES.items():
        replay = f"replay of {candidates:,} candidates, pool to {pool + SEEDS:,}"
        key = f"replay_{candidates}"
        specs += [
            Spec(
                f"ceiling_{pool}",
                f"two processes scoring at once, nothing shared, against one alone, at a pool "
                f"of {pool + SEEDS:,} (the machine's ceiling)",
                "x",
                2,
                tolerance=0.15,
                modes=(mode,),
            ),
            Spec(
                f"{key}.seconds",
                f"{replay}, end to end, every core",
                "s",
                1,
                tolerance=0.35,
                limit=("<=", 600.0),
                modes=(mode,),
            ),
            Spec(
                f"{key}.seconds_one",
                f"{replay}, end to end, one process",
                "s",
                1,
                tolerance=0.35,
                modes=(mode,),
            ),
            Spec(
                f"{key}.speedup_cores",
                f"{replay}: every core against one process",
                "x",
                2,
                tolerance=0.15,
                modes=(mode,),
            ),
            Spec(
                f"{key}.kept",
                f"{replay}: candidates kept",
                "",
                0,
                tolerance=0.02,
                modes=(mode,),
            ),
            Spec(
                f"{key}.peak_mb",
                f"{replay}: peak RSS of its process",
                "MB",
                0,
                tolerance=0.25,
                modes=(mode,),
            ),
            Spec(
                f"{key}.paper_hours",
                f"{replay}: the paper's method (rouge_score in a pool of 2 per candidate), "
                "extrapolated",
                "h",
                1,
                tolerance=0.4,
                modes=(mode,),
            ),
            Spec(
                f"{key}.vs_paper",
                f"{replay}: ours against the paper's method",
                "x",
                0,
                tolerance=0.4,
                modes=(mode,),
            ),
            Spec(
                f"{key}.mixed_speedup",
                f"{replay}, mixed stream: exact bounds on (auto) against off",
                "x",
                2,
                tolerance=0.15,
                modes=(mode,),
            ),
            Spec(
                f"{key}.repetitive_speedup",
                f"{replay}, repetitive stream (70% restated): bounds on against off",
                "x",
                2,
                tolerance=0.15,
                modes=(mode,),
            ),
            Spec(
                f"{key}.repetitive_pairs_pct",
                f"{replay}, repetitive stream: share of pairs scored with the full LCS",
                "%",
                1,
                tolerance=0.2,
                modes=(mode,),
            ),
            Spec(
                f"{key}.mismatches",
                f"{replay}: decisions or scores differing from rouge_score's (random sample)",
                "",
                0,
                tolerance=0.0,
                limit=("<=", 0.0),
                modes=(mode,),
            ),
        ]
        for mark in _marks(mode):
            specs.append(
                Spec(
                    f"{key}.ms_per_candidate_to_{mark}",
                    f"{replay}: ms per candidate while the pool grew to {mark:,}, every core",
                    "ms",
                    3,
                    tolerance=0.35,
                    modes=(mode,),
                )
            )
    return tuple(specs)


def _rouge_commands(mode: str) -> list[list[str]]:
    candidates, pool = ROUGE_SIZES[mode]
    command = ["benchmarks.bench_rouge", "--candidates", str(candidates), "--pool", str(pool)]
    if mode == "quick":
        command += ["--check", "40", "--paper-sample", "1", "--scaling-blocks", "100"]
    else:  # the check against rouge_score is pure Python: 60 candidates are 2 minutes
        command += ["--check", "60"]
    return [command]


def _rouge_conditions(mode: str) -> str:
    candidates, pool = ROUGE_SIZES[mode]
    check, sample, blocks = (60, 2, 200) if mode == "full" else (40, 1, 100)
    return (
        f"`bench_rouge`: {candidates:,} generated candidates judged in order at threshold 0.7 "
        f"against a pool of the {SEEDS} packaged seeds growing to {pool + SEEDS:,} (each "
        "replay in a fresh process; every core is 2 scoring processes here); block scoring "
        f"timed on {blocks} blocks of 8 per pool size, 5 rounds, medians; the paper's method "
        f"timed on {sample} candidate(s) per pool size and extrapolated; {check} decisions "
        "checked against rouge_score"
    )


def _rouge_extract(mode: str, reports: Sequence[Report]) -> dict[str, float]:
    report = reports[0]
    candidates, pool = ROUGE_SIZES[mode]
    pairs = report["pairs"]
    found = {
        "pairs.m_per_s": pairs["ours_pairs_per_s"] / 1e6,
        "pairs.vs_lcs": pairs["ratio_vs_lcs"],
        "pairs.vs_score": pairs["ratio_vs_score"],
        f"ceiling_{pool}": report["scaling_ceiling"]["ratio"],
    }
    for row in report["scaling"]:
        at = f"scaling_{row['pool'] - SEEDS}"
        found[f"{at}.m_per_s_1"] = row["pairs_per_s_1"] / 1e6
        found[f"{at}.m_per_s_2"] = row["pairs_per_s_2"] / 1e6
        found[f"{at}.ratio"] = row["ratio"]
        found[f"{at}.ms_per_candidate_1"] = 1000 * row["pool"] / row["pairs_per_s_1"]
        found[f"{at}.candidates_per_s_2"] = row["pairs_per_s_2"] / row["pool"]
    key = f"replay_{candidates}"
    replay, one = report["replay"], report["replay_one_process"]
    found[f"{key}.seconds"] = replay["seconds"]
    found[f"{key}.kept"] = replay["kept"]
    found[f"{key}.peak_mb"] = report["peak_rss_mb"]
    if one:  # one scoring process only where there is more than one core
        found[f"{key}.seconds_one"] = one["seconds_one"]
        found[f"{key}.speedup_cores"] = one["speedup"]
    found[f"{key}.paper_hours"] = report["paper_extrapolated_seconds"] / 3600
    found[f"{key}.vs_paper"] = report["paper_extrapolated_seconds"] / replay["seconds"]
    bounds = report["bounds"]
    found[f"{key}.mixed_speedup"] = bounds["mixed"]["speedup"]
    found[f"{key}.repetitive_speedup"] = bounds["repetitive"]["speedup"]
    found[f"{key}.repetitive_pairs_pct"] = 100 * bounds["repetitive"]["pairs_share"]
    found[f"{key}.mismatches"] = report["check"]["mismatches"]
    for mark, seconds in replay["seconds_per_candidate_up_to_pool"].items():
        found[f"{key}.ms_per_candidate_to_{mark}"] = 1000 * seconds
    return found


ROUGE = Source(
    name="rouge",
    title="ROUGE-L similarity filter",
    specs=_rouge_specs(),
    commands=_rouge_commands,
    conditions=_rouge_conditions,
    extract=_rouge_extract,
)
