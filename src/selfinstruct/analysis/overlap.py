"""ROUGE-L of each generated instruction to its most similar seed instruction (the paper's
Figure 3), scored in blocks against the seeds with the filter's own exact scorer."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from selfinstruct.similarity.rouge import RougePool
from selfinstruct.similarity.tokenize import Tokenizer, rouge_tokens

CHUNK = 2000  # instructions per block (bounds memory at chunk x seeds floats)


def nearest_seeds(
    instructions: Sequence[str], seeds: Sequence[str], tokenizer: Tokenizer = rouge_tokens
) -> list[tuple[int, float]]:
    """For each instruction, (index of its most similar seed, score); (-1, 0.0) without
    seeds. Ties go to the first seed."""
    if not seeds:
        return [(-1, 0.0)] * len(instructions)
    pool = RougePool(tokenizer)
    for seed in seeds:
        pool.add(seed)
    found: list[tuple[int, float]] = []
    for start in range(0, len(instructions), CHUNK):
        chunk = [pool.encode(text) for text in instructions[start : start + CHUNK]]
        rows = pool.block(chunk).rows
        best = rows.argmax(axis=1) if rows.size else np.zeros(len(chunk), dtype=int)
        found += [(int(i), float(rows[r, i])) for r, i in enumerate(best)]
    return found
