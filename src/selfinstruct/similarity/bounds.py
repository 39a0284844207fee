"""Exact bounds that tell which pool items could score above a ROUGE-L threshold.

ROUGE-L's F-measure of a candidate with m tokens and a pool item with n tokens is
2·L/(m + n) in exact arithmetic, where L, the longest common subsequence, is at most
min(m, n) and at most the number of tokens the two share (counted with multiplicity). So:

- length: F > 0.7 needs min(m, n) > 0.35·(m + n), i.e. the shorter text more than 0.538 of
  the longer one;
- shared tokens: F > t needs L >= need(n), the smallest L whose F exceeds t.

`need_table` computes need(n) with the very floating-point function the filter uses
(`f_measure`), so the bounds hold for the scores as computed, not only in exact arithmetic.
`probe_tokens` then picks the candidate's rarest distinct tokens such that any pool item
sharing none of them shares too few tokens to reach need: only items in the posting lists of
those tokens can score above the threshold (prefix filtering).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sized
from functools import lru_cache

import numpy as np

FMeasure = Callable[[np.ndarray, np.ndarray, float], np.ndarray]


@lru_cache(maxsize=4096)
def need_table(m: int, max_n: int, threshold: float, f_measure: FMeasure) -> np.ndarray:
    """need[n] for n = 0..max_n: the smallest LCS length with F > threshold against an item
    of n tokens, or m + 1 when no LCS length possible (<= min(m, n)) gets there.

    In exact arithmetic that length is floor(threshold * (m + n) / 2) + 1; the computed F can
    differ from the exact one by rounding, so a window of lengths around it is evaluated with
    `f_measure` itself and the smallest one that passes is taken."""
    lengths = np.arange(max_n + 1, dtype=np.float64)
    exact = np.floor(threshold * (m + lengths) / 2) + 1
    table = np.full(max_n + 1, m + 1, dtype=np.int64)
    for shift in (2, 1, 0, -1, -2):  # smallest passing length wins: try larger ones first
        lcs = exact + shift
        possible = (lcs >= 0) & (lcs <= np.minimum(m, lengths))
        above = possible & (f_measure(np.where(possible, lcs, 0.0), lengths, float(m)) > threshold)
        table = np.where(above, lcs.astype(np.int64), table)
    table.setflags(write=False)
    return table


def probe_tokens(counts: Counter[str], need: int, postings: Mapping[str, Sized]) -> list[str]:
    """The distinct tokens to look up: the most common ones (longest posting lists) are left
    out while their counts in the candidate add up to less than `need`, so an item sharing
    none of the rest shares fewer than `need` tokens."""
    by_commonness = sorted(counts, key=lambda t: len(postings.get(t, ())), reverse=True)
    left_out = 0
    probe = []
    for token in by_commonness:
        if left_out + counts[token] < need:
            left_out += counts[token]
        else:
            probe.append(token)
    return probe
