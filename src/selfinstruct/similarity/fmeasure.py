"""rouge_score's ROUGE-L F-measure in numpy, bit for bit: elementwise (`f_measure`), and by
lookup for a block of candidates scored against many pool items (`FTable`).

A score depends only on three whole numbers: the LCS, the pool item's length and the
candidate's length. A block of candidates meets few distinct pool lengths, so `FTable`
computes the score of every (length, LCS) pair each candidate can meet once, with
`f_measure` itself, and scoring a chunk of the pool is then an index computation and a
gather: the very same floats, in 3 passes over the chunk instead of f_measure's 10.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import numpy as np


def f_measure(
    lcs: np.ndarray, pool_lengths: np.ndarray, target_length: float | np.ndarray
) -> np.ndarray:
    """rouge_score's F: precision = lcs/len(prediction), recall = lcs/len(target)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = lcs / pool_lengths
        recall = lcs / target_length
        total = precision + recall
        f = 2 * precision * recall / total
    return np.where((pool_lengths > 0) & (total > 0), f, 0.0)


class FTable:
    """f_measure of candidate r against any pool item of n tokens with an LCS of l, for
    every n up to the pool's longest item and every l up to the longest candidate, at
    flat[r * span + n * stride + l]."""

    def __init__(self, target_lengths: Sequence[int], max_pool_length: int) -> None:
        self.stride = max(target_lengths) + 1
        self.span = (max_pool_length + 1) * self.stride
        lcs = np.arange(self.stride, dtype=np.float64)[None, None, :]
        pool = np.arange(max_pool_length + 1, dtype=np.float64)[None, :, None]
        targets = np.array(target_lengths, dtype=np.float64)[:, None, None]
        self.flat = f_measure(lcs, pool, targets).ravel()
        self.base = (np.arange(len(target_lengths), dtype=np.intp) * self.span)[:, None]

    @staticmethod
    def size(target_lengths: Sequence[int], max_pool_length: int) -> int:
        """Entries a table for these lengths holds (what building it costs)."""
        return len(target_lengths) * (max_pool_length + 1) * (max(target_lengths) + 1)

    def offsets(self, pool_lengths: np.ndarray) -> np.ndarray:
        """n * stride for pool items of n tokens (for `into`)."""
        return pool_lengths.astype(np.intp) * self.stride

    def into(
        self, lcs: np.ndarray, offsets: np.ndarray, out: np.ndarray, index: np.ndarray
    ) -> None:
        """Scores of an LCS matrix (a row per candidate, a column per pool item, whose
        `offsets` give their lengths) into out, using index (intp, shaped like lcs) as
        scratch."""
        np.add(offsets[None, :], self.base, out=index)
        np.add(index, lcs, out=index)
        np.take(self.flat, index, out=out, mode="clip")  # every index is in range


class Scratch:
    """Each thread's index array for FTable.into, kept from call to call: a fresh large array
    costs page faults every time (and threads contend for them)."""

    def __init__(self) -> None:
        self._local = threading.local()

    def index(self, shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape))
        flat: np.ndarray | None = getattr(self._local, "flat", None)
        if flat is None or flat.size < size:
            flat = np.empty(max(size, 2 * flat.size if flat is not None else 0), dtype=np.intp)
            self._local.flat = flat
        return flat[:size].reshape(shape)
