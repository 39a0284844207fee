"""ROUGE-L filter benchmarks: ours against the `rouge_score` reference, side by side.

    python -m benchmarks.bench_rouge [--candidates 100000] [--pool 50000] [--check 200]
        [--workers 0] [--scaling-blocks 200] [--cores-only] [--json OUT]

1. Pairs scored per second: ours in one process (pool kept encoded, a block of candidates per
   C call) vs rouge_score's LCS on pre-tokenized text (its fastest use) and vs
   `RougeScorer.score`.
1b. Scaling: block scoring with workers=1 against workers=2, side by side on the same blocks
   (alternating which goes first), at pool sizes 10,000 and --pool; the ratio of the median
   times per block (target: 1.7x at --pool), and how busy the cores were with other
   processes meanwhile. For scale, the machine's own ceiling: two processes scoring at once
   against one alone.
2. Replay of a paper-scale bootstrap filter: --candidates instructions judged in order
   against a pool (175 seeds plus everything accepted) that grows to at most --pool; ours end
   to end as bootstrap does it (the bounded search settles rejections, a kept candidate gets
   every score: decision, top-10 most_similar, mean score) with --workers processes (0:
   every core), then again in one process when that is more; and the paper's method (re-tokenize
   the pool, score every pair with rouge_score in a process pool, per candidate) timed on a
   sample at several pool sizes and extrapolated over the replay's actual pool sizes.
3. Time per candidate as the pool grows (1k, 5k, 10k, 50k) and peak memory.
4. Decisions checked against the reference: for --check candidates drawn at random from the
   replay, the maximum score against the pool at their turn is recomputed with rouge_score;
   every decision must match (and every score must be equal).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from importlib import metadata, resources
from multiprocessing import Pool
from pathlib import Path
from typing import Any

import numpy as np
from rouge_score import rouge_scorer, tokenize

from selfinstruct.similarity.parallel import resolve
from selfinstruct.similarity.prefilter import Mode, Prefilter
from selfinstruct.similarity.rouge import RougePool

THRESHOLD = 0.7
BLOCK = 8  # candidates per response, as in bootstrap
SCALING_TARGET = 1.7  # block scoring in 2 processes against 1, at the largest pool
SCALING_ROUNDS = 5  # the scaling section's rounds, the helper started afresh for each


def seed_instructions() -> list[str]:
    path = Path(str(resources.files("selfinstruct") / "data" / "seed_tasks.jsonl"))
    return [json.loads(line)["instruction"] for line in path.read_text().splitlines()]


def make_candidates(count: int, seed: int = 0, repeats: float = 0.0) -> list[str]:
    """Real-looking instructions: seed instructions with a share of their words replaced by
    words from other seeds (heavy edits are usually kept, light ones are near-duplicates).
    With `repeats` > 0, that share of the candidates instead restates an earlier candidate
    with one word changed, as a model does late in a long run (most are then rejected)."""
    rng = random.Random(seed)
    seeds = seed_instructions()
    vocabulary = sorted({w for s in seeds for w in s.split()})
    out: list[str] = []
    for _ in range(count):
        if repeats and out and rng.random() < repeats:
            words = rng.choice(out).split()
            words[rng.randrange(len(words))] = rng.choice(vocabulary)
            out.append(" ".join(words))
            continue
        words = rng.choice(seeds).split()
        share = rng.choice((0.15, 0.5, 0.6, 0.7))
        for i in range(len(words)):
            if rng.random() < share:
                words[i] = rng.choice(vocabulary)
        if rng.random() < 0.3:
            words += rng.sample(vocabulary, rng.randint(1, 6))
        out.append(" ".join(words))
    return out


def _reference_tokens(text: str) -> list[str]:
    return tokenize.tokenize(text, None)


def bench_pairs(candidates: list[str], pool_texts: list[str]) -> dict:
    """Pairs per second: ours in blocks (one process) vs the reference LCS on pre-tokenized
    text."""
    pool = RougePool(workers=1)
    for text in pool_texts:
        pool.add(text)
    encoded = [pool.encode(c) for c in candidates]
    started = time.perf_counter()
    for i in range(0, len(encoded), BLOCK):
        block = pool.block(encoded[i : i + BLOCK])
        for j in range(len(block.encoded)):
            block.similarity(j)
    ours = len(candidates) * len(pool_texts) / (time.perf_counter() - started)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    pool_tokens = [_reference_tokens(t) for t in pool_texts[:400]]
    sample = candidates[:5]
    started = time.perf_counter()
    for candidate in sample:
        tokens = _reference_tokens(candidate)
        for other in pool_tokens:
            rouge_scorer._score_lcs(tokens, other)
    reference_lcs = len(sample) * len(pool_tokens) / (time.perf_counter() - started)
    started = time.perf_counter()
    for candidate in sample:
        for text in pool_texts[:400]:
            scorer.score(text, candidate)
    reference_score = len(sample) * 400 / (time.perf_counter() - started)
    return {
        "ours_pairs_per_s": ours,
        "reference_lcs_pairs_per_s": reference_lcs,
        "reference_score_pairs_per_s": reference_score,
        "ratio_vs_lcs": ours / reference_lcs,
        "ratio_vs_score": ours / reference_score,
    }


def bench_scaling(
    candidates: list[str], pool_texts: list[str], blocks: int, rounds: int = SCALING_ROUNDS
) -> dict:
    """Block scoring in one process against two, on the same blocks, one after the other,
    alternating which goes first; per round the ratio of the median times per block (robust
    to the odd interruption), then the median over rounds. The helper process starts afresh
    each round, as the threads did that this compared before (the kernel places a process by
    the load of the moment). Also the share of the machine
    other processes used meanwhile."""
    pools = {workers: RougePool(workers=workers) for workers in (1, 2)}
    for pool in pools.values():
        for text in pool_texts:
            pool.add(text)
    encoded = [pools[1].encode(c) for c in candidates]  # both pools encode alike
    pools[1].block(encoded[:BLOCK])  # warm up: scratch arrays grown
    load = OtherLoad()
    per_round = [_scaling_round(pools, encoded, max(1, blocks // rounds)) for _ in range(rounds)]
    busy = load.share()
    pools[1].close()
    pairs = BLOCK * len(pool_texts)
    one, two = (float(np.median([r[w] for r in per_round])) for w in (1, 2))
    ratios = sorted(r[1] / r[2] for r in per_round)
    return {
        "pool": len(pool_texts),
        "blocks": blocks,
        "pairs_per_s_1": pairs / one,
        "pairs_per_s_2": pairs / two,
        "ratio": float(np.median(ratios)),
        "round_ratios": ratios,
        "other_load": busy,
    }


def _scaling_round(pools: dict[int, RougePool], encoded: list[str], blocks: int) -> dict:
    """Median seconds per block in 1 and 2 processes; the helper starts afresh."""
    pools[2].close()
    pools[2].wait_ready()
    pools[2].block(encoded[:BLOCK])  # warm up: the helper holds the pool
    times: dict[int, list[float]] = {1: [], 2: []}
    for b in range(blocks):
        block = encoded[(b * BLOCK) % len(encoded) :][:BLOCK]
        rows = {}
        for workers in (1, 2) if b % 2 else (2, 1):
            started = time.perf_counter()
            rows[workers] = pools[workers].block(block).rows
            times[workers].append(time.perf_counter() - started)
        if not np.array_equal(rows[1], rows[2]):  # no NaN: equal values are equal bits
            raise AssertionError("two processes changed a score")
    pools[2].close()
    return {workers: float(np.median(t)) for workers, t in times.items()}


def bench_ceiling(pool_texts: list[str], blocks: int) -> dict:
    """The most two cores give this work here: block scoring in one process
    alone, then in two processes at once (nothing shared, not even the GIL); the ratio of
    their throughputs. It is below 2 where a lone busy core runs at a higher clock or the
    cores share caches and memory bandwidth."""
    alone = _ceiling_run(1, pool_texts, blocks)
    both = _ceiling_run(2, pool_texts, blocks)
    return {
        "pool": len(pool_texts),
        "seconds_per_block_alone": alone[0],
        "seconds_per_block_both": both,
        "ratio": 2 * alone[0] / max(both),
    }


def _ceiling_run(processes: int, pool_texts: list[str], blocks: int) -> list[float]:
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(processes), spawn.Queue()
    jobs = [
        spawn.Process(target=_ceiling_job, args=(pool_texts, blocks, barrier, results))
        for _ in range(processes)
    ]
    for job in jobs:
        job.start()
    seconds = [results.get() for _ in jobs]
    for job in jobs:
        job.join()
    return seconds


def _ceiling_job(pool_texts: list[str], blocks: int, barrier: Any, results: Any) -> None:
    pool = RougePool(workers=1)
    for text in pool_texts:
        pool.add(text)
    encoded = [pool.encode(c) for c in make_candidates(512, seed=2)]
    pool.block(encoded[:BLOCK])
    barrier.wait()
    times = []
    for b in range(blocks):
        started = time.perf_counter()
        pool.block(encoded[(b * BLOCK) % len(encoded) :][:BLOCK])
        times.append(time.perf_counter() - started)
    results.put(float(np.median(times)))


class OtherLoad:
    """The share of all cores' time that other processes used since it was made (Linux: from
    /proc/stat, less this process's own CPU time and that of its finished children, the
    scoring helpers once their pool is closed); None where that cannot be read."""

    def __init__(self) -> None:
        self.start = self._sample()

    def share(self) -> float | None:
        end = self._sample()
        if self.start is None or end is None:
            return None
        busy, total, own = (e - s for e, s in zip(end, self.start, strict=True))
        return max(0.0, busy - own) / total if total > 0 else None

    @staticmethod
    def _sample() -> tuple[float, float, float] | None:
        try:
            fields = [int(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        except (OSError, ValueError):
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        idle = fields[3] + fields[4]  # idle + iowait
        times = os.times()
        own = times.user + times.system + times.children_user + times.children_system
        return (sum(fields) - idle) / ticks, sum(fields) / ticks, own


def replay(candidates: list[str], max_pool: int, mode: Mode = "auto", workers: int = 0) -> dict:
    """Ours end to end, as bootstrap does it; returns timings, pool sizes and decisions.
    mode: when the bounded search runs before block scoring (see similarity/prefilter.py);
    workers: the pool's scoring processes (0: every core)."""
    seeds = seed_instructions()
    pool = RougePool(workers=workers)
    for text in seeds:
        pool.add(text)
    prefilter = Prefilter(pool, THRESHOLD, mode)
    decisions: list[bool] = []
    pool_sizes: list[int] = []
    checkpoints = {1000: None, 5000: None, 10000: None, 50000: None}
    marks: dict[int, float] = {}
    started = time.perf_counter()
    last = (started, 0)
    for i in range(0, len(candidates), BLOCK):
        texts = candidates[i : i + BLOCK]
        encoded = [pool.encode(t) for t in texts]
        settled = prefilter.settle(encoded)
        rows = {j: row for row, j in enumerate(j for j in range(len(texts)) if j not in settled)}
        block = prefilter.block([encoded[j] for j in rows])
        for j, text in enumerate(texts):
            pool_sizes.append(len(pool))
            keep = j not in settled
            if keep:  # a kept candidate needs every score (most_similar, the mean)
                similarity = block.similarity(rows[j])
                keep = similarity.max <= THRESHOLD
            prefilter.judged(not keep)
            if keep:
                similarity.top(pool.texts, 10)
                _ = similarity.mean
                if len(pool) - len(seeds) < max_pool:  # past the cap: judged, not added
                    pool.add(text, encoded[j])
            decisions.append(keep)
        for mark in checkpoints:
            if mark not in marks and len(pool) >= mark:
                now = time.perf_counter()
                marks[mark] = (now - last[0]) / max(1, len(decisions) - last[1])
                last = (now, len(decisions))
    seconds = time.perf_counter() - started
    pool.close()
    return {
        "seconds": seconds,
        "workers": pool.workers,
        "kept": sum(decisions),
        "pool_final": len(pool),
        "pairs_scored": pool.pairs_scored,
        "searched": prefilter.searched,
        "settled_by_search": prefilter.settled,
        "pairs_in_pool": sum(pool_sizes),
        "seconds_per_candidate_up_to_pool": marks,
        "decisions": decisions,
        "pool_sizes": pool_sizes,
        "pool_texts": pool.texts,
    }


def replay_fresh(
    count: int, seed: int, repeats: float, max_pool: int, mode: Mode, workers: int
) -> dict:
    """A replay in a fresh process, so every configuration starts from the same state (in one
    process the first replay runs slower, growing the heap the later ones reuse)."""
    spawn = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=spawn) as executor:
        job = executor.submit(_replay_job, count, seed, repeats, max_pool, mode, workers)
        return job.result()


def _replay_job(
    count: int, seed: int, repeats: float, max_pool: int, mode: Mode, workers: int
) -> dict:
    load = OtherLoad()
    result = replay(make_candidates(count, seed, repeats), max_pool, mode, workers)
    result["other_load"] = load.share()
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def compare_modes(with_bounds: dict, without: dict) -> dict:
    """The bounded search against none on the same stream: decisions must be identical."""
    if with_bounds["decisions"] != without["decisions"]:
        raise AssertionError("the bounded search changed a decision")
    return {
        "rejected": 1 - with_bounds["kept"] / len(with_bounds["decisions"]),
        "pairs_share": with_bounds["pairs_scored"] / with_bounds["pairs_in_pool"],
        "searched": with_bounds["searched"],
        "settled": with_bounds["settled_by_search"],
        "seconds": with_bounds["seconds"],
        "seconds_without": without["seconds"],
        "speedup": without["seconds"] / with_bounds["seconds"],
    }


def compare_processes(several: dict, one: dict) -> dict:
    """The replay in several processes against one: decisions must be identical."""
    if several["decisions"] != one["decisions"]:
        raise AssertionError("scoring in several processes changed a decision")
    return {
        "seconds": several["seconds"],
        "seconds_one": one["seconds"],
        "speedup": one["seconds"] / several["seconds"],
        "other_load_one": one["other_load"],
    }


def _load(share: float | None) -> str:
    return (
        "other load unknown" if share is None else f"other processes used {share:.0%} of the cores"
    )


def _paper_score(new_tokens: list[str], other: list[str]) -> float:
    return rouge_scorer._score_lcs(new_tokens, other).fmeasure


def paper_time_per_candidate(pool_texts: list[str], candidates: list[str], workers: int) -> float:
    """The paper's per-candidate work: tokenize the whole pool again, then score every pair
    in a process pool (started per candidate, as its code did)."""
    started = time.perf_counter()
    for candidate in candidates:
        scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
        pool_tokens = [scorer._tokenizer.tokenize(t) for t in pool_texts]
        new_tokens = scorer._tokenizer.tokenize(candidate)
        with Pool(workers) as processes:
            scores = processes.map(partial(_paper_score, new_tokens), pool_tokens)
        max(scores)
    return (time.perf_counter() - started) / len(candidates)


def check_decisions(
    result: dict, candidates: list[str], sample: int, seed: int, workers: int
) -> dict:
    """Recompute the reference's decision for random candidates of the replay."""
    rng = random.Random(seed)
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    indices = sorted(rng.sample(range(len(candidates)), min(sample, len(candidates))))
    pool_texts = result["pool_texts"]
    mismatches = 0
    for index in indices:
        size = result["pool_sizes"][index]
        reference = max(
            scorer.score(p, candidates[index])["rougeL"].fmeasure for p in pool_texts[:size]
        )
        with RougePool(workers=workers) as ours_pool:
            for text in pool_texts[:size]:
                ours_pool.add(text)
            ours = ours_pool.score(candidates[index]).max
        if (reference <= THRESHOLD) != result["decisions"][index] or reference != ours:
            mismatches += 1
    return {"checked": len(indices), "mismatches": mismatches}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--candidates", type=int, default=100_000)
    parser.add_argument("--pool", type=int, default=50_000)
    parser.add_argument("--check", type=int, default=200)
    parser.add_argument("--paper-sample", type=int, default=2)
    parser.add_argument(
        "--repeats",
        type=float,
        default=0.7,
        help="share of restated candidates in the repetitive stream",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=0,
        help="scoring processes for the replays and the check (0: every core)",
    )
    parser.add_argument(
        "--scaling-blocks",
        type=int,
        default=200,
        help="blocks of 8 candidates timed per pool size in the scaling section",
    )
    parser.add_argument(
        "--cores-only",
        action="store_true",
        help="only sections 1b and 2's replay in several processes and in one (about 8 min)",
    )
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    workers = resolve(args.workers)

    candidates = make_candidates(args.candidates)
    pool_texts = seed_instructions() + make_candidates(5000, seed=1)
    pairs = bench_pairs(make_candidates(512, seed=2), pool_texts)
    print(
        f"pairs/s: ours {pairs['ours_pairs_per_s']:,.0f}; rouge_score LCS "
        f"{pairs['reference_lcs_pairs_per_s']:,.0f} ({pairs['ratio_vs_lcs']:,.0f}x); "
        f"RougeScorer.score {pairs['reference_score_pairs_per_s']:,.0f} "
        f"({pairs['ratio_vs_score']:,.0f}x)"
    )
    scaling = [
        bench_scaling(
            make_candidates(512, seed=2),
            seed_instructions() + make_candidates(size, seed=1),
            args.scaling_blocks,
        )
        for size in sorted({min(10_000, args.pool), args.pool})
    ]
    for row in scaling:
        print(
            f"scaling, block scoring at pool {row['pool']:,}: 1 process "
            f"{row['pairs_per_s_1']:,.0f} pairs/s, 2 processes {row['pairs_per_s_2']:,.0f} "
            f"pairs/s: {row['ratio']:.2f}x (median of {len(row['round_ratios'])} rounds: "
            + ", ".join(f"{r:.2f}" for r in row["round_ratios"])
            + f"; same scores; {_load(row['other_load'])})"
        )
    ceiling = bench_ceiling(
        seed_instructions() + make_candidates(args.pool, seed=1), args.scaling_blocks
    )
    print(
        f"two processes scoring at once (nothing shared): {ceiling['ratio']:.2f}x one alone, "
        f"the most two cores could give this work on this machine (target {SCALING_TARGET}x)"
    )

    result = replay_fresh(args.candidates, 0, 0.0, args.pool, "auto", workers)
    result["max_pool"] = args.pool
    print(
        f"replay: {args.candidates:,} candidates, pool grew to {result['pool_final']:,}, "
        f"kept {result['kept']:,}, {result['seconds']:.1f}s end to end with "
        f"{result['workers']} scoring process(es) ({_load(result['other_load'])})"
    )
    one_process = None
    if workers > 1:
        one_process = compare_processes(
            result, replay_fresh(args.candidates, 0, 0.0, args.pool, "auto", 1)
        )
        print(
            f"replay in one process: {one_process['seconds_one']:.1f}s "
            f"({_load(one_process['other_load_one'])}); {one_process['speedup']:.2f}x with "
            f"{workers} processes, same decisions"
        )
    if args.cores_only:
        return _cores_report(args.json, scaling, ceiling, result, one_process)
    per = result["seconds_per_candidate_up_to_pool"]
    print(
        "ours, seconds per candidate while the pool grew to: "
        + ", ".join(f"{k:,}: {v * 1000:.3f} ms" for k, v in per.items())
    )
    bounds = {
        "mixed": compare_modes(
            result, replay_fresh(args.candidates, 0, 0.0, args.pool, "never", workers)
        )
    }
    bounds["repetitive"] = compare_modes(
        replay_fresh(args.candidates, 4, args.repeats, args.pool, "auto", workers),
        replay_fresh(args.candidates, 4, args.repeats, args.pool, "never", workers),
    )
    for stream, row in bounds.items():
        print(
            f"bounds, {stream} stream ({row['rejected']:.0%} rejected): "
            f"{row['pairs_share']:.1%} of pairs scored, searched {row['searched']:,}, "
            f"settled {row['settled']:,}; {row['seconds']:.1f}s vs "
            f"{row['seconds_without']:.1f}s without bounds ({row['speedup']:.2f}x), "
            "same decisions"
        )

    sizes = [s for s in (1000, 5000, 10000, 50000) if s <= len(result["pool_texts"])]
    paper = {
        s: paper_time_per_candidate(result["pool_texts"][:s], candidates[: args.paper_sample], 2)
        for s in sizes
    }
    slope, intercept = np.polyfit(
        np.array(list(paper), dtype=float) / 1000, list(paper.values()), 1
    )
    slope /= 1000
    paper_total = float(sum(intercept + slope * n for n in result["pool_sizes"]))
    print(
        "paper's method, seconds per candidate at pool size: "
        + ", ".join(f"{k:,}: {v:.2f}s" for k, v in paper.items())
    )
    print(
        f"paper's method extrapolated over the replay: {paper_total / 3600:.1f} h "
        f"({paper_total / result['seconds']:,.0f}x ours)"
    )

    check = check_decisions(result, candidates, args.check, seed=3, workers=workers)
    print(
        f"decisions checked against rouge_score: {check['checked']} candidates, "
        f"{check['mismatches']} mismatches"
    )
    peak_mb = result["peak_rss_mb"]
    print(f"peak RSS of the replay's process {peak_mb:.0f} MB")
    report = {
        "machine": {
            "platform": platform.platform(),
            "python": sys.version.split()[0],
            "cpus": len(os.sched_getaffinity(0)),
        },
        "versions": {
            p: metadata.version(p) for p in ("selfinstruct", "rapidfuzz", "rouge-score", "numpy")
        },
        "pairs": pairs,
        "scaling": scaling,
        "scaling_ceiling": ceiling,
        "workers": workers,
        "replay_one_process": one_process,
        "bounds": bounds,
        "replay": {
            k: v for k, v in result.items() if k not in ("decisions", "pool_sizes", "pool_texts")
        },
        "paper_seconds_per_candidate": paper,
        "paper_extrapolated_seconds": paper_total,
        "check": check,
        "peak_rss_mb": peak_mb,
    }
    if args.json:
        args.json.write_text(json.dumps(report, indent=2, default=str))
    ok = check["mismatches"] == 0 and result["seconds"] < 600 and pairs["ratio_vs_lcs"] >= 1000
    ok = ok and (len(os.sched_getaffinity(0)) < 2 or scaling[-1]["ratio"] >= SCALING_TARGET)
    print("OK" if ok else "FAIL: a target was missed")
    return 0 if ok else 1


def _cores_report(
    out: Path | None, scaling: list[dict], ceiling: dict, replay: dict, one: dict | None
) -> int:
    """--cores-only: the scaling rows, the ceiling and the two replays; exit 1 below target."""
    if out:
        report = {
            "machine": {"python": sys.version.split()[0], "cpus": len(os.sched_getaffinity(0))},
            "scaling": scaling,
            "scaling_ceiling": ceiling,
            "replay": {k: v for k, v in replay.items() if not isinstance(v, list)},
            "replay_one_process": one,
        }
        out.write_text(json.dumps(report, indent=2, default=str))
    ok = len(os.sched_getaffinity(0)) < 2 or scaling[-1]["ratio"] >= SCALING_TARGET
    print("OK" if ok else "FAIL: a target was missed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
