"""How varied a set of instructions is: distinct-n (distinct n-grams over all n-grams) and
the mean ROUGE-L of sampled pairs within the set, for generated instructions beside the
seeds'. Lower pairwise ROUGE-L and higher distinct-n mean more varied text."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from rapidfuzz.distance import LCSseq

from selfinstruct.similarity.rouge import RougePool, f_measure
from selfinstruct.similarity.tokenize import Tokenizer, rouge_tokens

PAIR_SAMPLE = 2000  # pairs scored per set (fixed seed, so the report is reproducible)


@dataclass(frozen=True)
class Variety:
    texts: int
    distinct_1: float
    distinct_2: float
    distinct_3: float
    pairwise_rouge_l: float  # mean over `pairs` sampled pairs of different texts
    pairs: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def distinct_n(token_lists: Sequence[list[str]], n: int) -> float:
    grams = [tuple(tokens[i : i + n]) for tokens in token_lists for i in range(len(tokens) - n + 1)]
    return round(len(set(grams)) / len(grams), 4) if grams else 0.0


def pairwise_rouge_l(
    texts: Sequence[str],
    tokenizer: Tokenizer = rouge_tokens,
    sample: int = PAIR_SAMPLE,
    seed: int = 0,
) -> tuple[float, int]:
    """(mean ROUGE-L over sampled pairs of different items, pairs scored); every pair when
    there are no more than `sample`."""
    n = len(texts)
    if n < 2:
        return 0.0, 0
    total_pairs = n * (n - 1) // 2
    if total_pairs <= sample:
        pairs = [(i, j) for i in range(n) for j in range(i + 1, n)]
    else:
        rng = random.Random(seed)
        pairs = []
        while len(pairs) < sample:
            i, j = rng.randrange(n), rng.randrange(n)
            if i != j:
                pairs.append((i, j))
    pool = RougePool(tokenizer)
    used = sorted({i for pair in pairs for i in pair})  # of 10,000 texts, about 3,300
    encoded = dict(zip(used, (pool.encode(texts[i]) for i in used), strict=True))
    lcs = np.array([LCSseq.similarity(encoded[i], encoded[j]) for i, j in pairs], dtype=float)
    first = np.array([len(encoded[i]) for i, _ in pairs], dtype=float)
    second = np.array([len(encoded[j]) for _, j in pairs], dtype=float)
    scores = f_measure(lcs, second, first)  # rouge_l(texts[i], texts[j]), exactly
    return round(float(scores.mean()), 4), len(pairs)


def variety(texts: Sequence[str], tokenizer: Tokenizer = rouge_tokens) -> Variety:
    """distinct-n over the tokens the similarity filter sees, and the sampled pairwise mean."""
    tokens = [tokenizer(text) for text in texts]
    mean, pairs = pairwise_rouge_l(texts, tokenizer)
    return Variety(
        texts=len(texts),
        distinct_1=distinct_n(tokens, 1),
        distinct_2=distinct_n(tokens, 2),
        distinct_3=distinct_n(tokens, 3),
        pairwise_rouge_l=mean,
        pairs=pairs,
    )
