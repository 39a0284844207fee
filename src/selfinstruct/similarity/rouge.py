"""ROUGE-L F-measure of one instruction against a whole pool, in C via rapidfuzz.

Each instruction is tokenized once and encoded as a string with one character per distinct
token, so the longest common subsequence of tokens is rapidfuzz's LCSseq of the two strings.
The F-measure is computed with the same floating-point operations, in the same order, as the
`rouge_score` package, so scores are bit-identical to it (see `fmeasure.py`).

The pool also keeps, for every token, the list of items that contain it, so `above` can answer
"does any item score above the threshold?" by scoring only the items the exact bounds of
`bounds.py` leave possible.

Scoring against the whole pool (a block, or one candidate) runs in chunks of the pool in up
to `workers` processes (see `parallel.py`); the scores do not depend on their number. `above`
stays in the caller's process: the bounds leave it a few dozen items to score.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from rapidfuzz import process
from rapidfuzz.distance import LCSseq

from selfinstruct.similarity.bounds import need_table, probe_tokens
from selfinstruct.similarity.fmeasure import FTable, Scratch, f_measure
from selfinstruct.similarity.parallel import Spread
from selfinstruct.similarity.tokenize import Tokenizer, rouge_tokens

_SURROGATES = 0xE000 - 0xD800
ChunkScores = Callable[[np.ndarray, int, np.ndarray], None]  # (LCS, first pool item, out)
PROBE_SHARE = 1.0  # above() gives up when its posting lists hold more entries than this x pool
PACK_FROM = 4096  # items: smaller pools stay in cache wherever their strings are
PACK_GROWTH = 1.25  # re-pack the encoded items whenever the pool has grown by this factor


@dataclass(frozen=True)
class Similarity:
    """How close a candidate is to the pool."""

    scores: np.ndarray

    @property
    def max(self) -> float:
        return float(self.scores.max()) if self.scores.size else 0.0

    @property
    def mean(self) -> float:
        return float(self.scores.mean()) if self.scores.size else 0.0

    def top(self, texts: list[str], k: int) -> dict[str, float]:
        """The k most similar pool texts with their scores, best first (ties: pool order).
        Same result as a stable sort of all scores, without sorting the whole pool."""
        n = self.scores.size
        k = min(k, n)
        if k <= 0:
            return {}
        kth = np.partition(self.scores, n - k)[n - k]
        near = np.flatnonzero(self.scores >= kth)
        order = near[np.argsort(-self.scores[near], kind="stable")][:k]
        return {texts[i]: float(self.scores[i]) for i in order}


class RougePool:
    """A growing pool of instructions, kept encoded for fast ROUGE-L scoring.

    workers: processes that score a block or a candidate against the pool (0: every core, 1:
    the caller's process only). The helper processes start the first time the pool is large
    enough to share out (`parallel.PARALLEL_FROM` items) and stop at `close()`, when the pool
    is garbage-collected, or at exit; the pool is also a context manager that closes them."""

    def __init__(self, tokenizer: Tokenizer = rouge_tokens, workers: int = 0) -> None:
        self.tokenizer = tokenizer
        self._spread = Spread(workers)
        self._scratch = Scratch()
        self.texts: list[str] = []
        self._encoded: list[str] = []
        self._lengths = np.zeros(0, dtype=np.float64)
        self._size = 0
        self._max_length = 0
        self._vocab: dict[str, str] = {}
        self._postings: dict[str, array] = {}
        self._packed = 0  # pool size at the last _pack
        self.pairs_scored = 0

    def __len__(self) -> int:
        return self._size

    @property
    def workers(self) -> int:
        """Processes scoring uses (0 resolved to the number of cores)."""
        return self._spread.workers

    def close(self) -> None:
        """Stop the helper processes; the pool stays usable (they start again when needed)."""
        self._spread.close()

    def wait_ready(self, timeout: float = 30.0) -> int:
        """Start the helper processes now and wait until they can take chunks (they would
        otherwise join the scoring once started); the number ready."""
        return self._spread.wait_ready(timeout)

    def __enter__(self) -> RougePool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def encode(self, text: str) -> str:
        """One character per token; new tokens get fresh characters."""
        chars = []
        for token in self.tokenizer(text):
            char = self._vocab.get(token)
            if char is None:
                code = len(self._vocab) + 1
                if code >= 0xD800:
                    code += _SURROGATES
                char = chr(code)
                self._vocab[token] = char
            chars.append(char)
        return "".join(chars)

    def add(self, text: str, encoded: str | None = None) -> None:
        encoded = self.encode(text) if encoded is None else encoded
        self.texts.append(text)
        self._encoded.append(encoded)
        if self._size == len(self._lengths):
            grown = np.zeros(max(64, 2 * self._size), dtype=np.float64)
            grown[: self._size] = self._lengths
            self._lengths = grown
        self._lengths[self._size] = len(encoded)
        for char in set(encoded):
            self._postings.setdefault(char, array("q")).append(self._size)
        self._max_length = max(self._max_length, len(encoded))
        self._size += 1
        if self._size >= PACK_FROM and self._size >= PACK_GROWTH * self._packed:
            self._pack()

    def _pack(self) -> None:
        """Copy the encoded items into fresh strings made one after another. Scoring reads
        every item for each block, and items encoded one by one among other objects lie
        scattered in memory (measured: blocks against 50,000 items made among as many other
        objects scored 1.4x faster packed; a 30,000-candidate replay ran 5-10% faster)."""
        joined = "".join(self._encoded)
        ends = np.cumsum(self._lengths[: self._size]).astype(np.int64).tolist()
        self._encoded = [joined[a:b] for a, b in zip([0, *ends[:-1]], ends, strict=True)]
        self._packed = self._size

    def score(self, text: str) -> Similarity:
        return self.score_encoded(self.encode(text))

    def score_encoded(self, encoded: str, start: int = 0) -> Similarity:
        """Scores against pool items start, start + 1, ... (all of them by default)."""
        size = self._size - start
        if size <= 0:
            return Similarity(np.zeros(0))
        if not encoded:
            return Similarity(np.zeros(size))
        return Similarity(self.rows([encoded], start)[0])

    def rows(self, encoded: list[str], start: int = 0) -> np.ndarray:
        """Scores of each candidate (a row) against pool items start, start + 1, ...; the
        pool is cut into chunks scored in the pool's processes."""
        width = self._size - start
        if not encoded or width <= 0:
            return np.zeros((len(encoded), max(0, width)))
        out = np.empty((len(encoded), width))
        scorer: list[ChunkScores] = []  # made at the first chunk: the helpers start first

        def local(first: int, last: int) -> None:
            if not scorer:
                scorer.append(self.scorer(encoded, start))
            self.score_chunk(encoded, start, scorer[0], first, last, out[:, first:last])

        self._spread.run(local, out, self._encoded, encoded, start)
        self.pairs_scored += out.size
        return out

    def score_chunk(
        self,
        encoded: list[str],
        start: int,
        scorer: ChunkScores,
        first: int,
        last: int,
        out: np.ndarray,
    ) -> None:
        """The candidates' scores against pool items start + first .. start + last into out
        (a row per candidate, a column per item), by a scorer from `scorer`."""
        lcs = process.cdist(
            encoded,
            self._encoded[start + first : start + last],
            scorer=LCSseq.similarity,
            dtype=np.int32,
            workers=1,
        )
        scorer(lcs, start + first, out)

    def scorer(self, encoded: list[str], start: int) -> ChunkScores:
        """How the LCS of the candidates against pool items first, first + 1, ... become
        their scores: looked up in an FTable when it is small next to the pairs to score
        (the rule), else computed by f_measure."""
        targets = [len(e) for e in encoded]
        if FTable.size(targets, self._max_length) > len(encoded) * (self._size - start) // 2:
            lengths = np.array(targets, dtype=np.float64)[:, None]

            def compute(lcs: np.ndarray, first: int, out: np.ndarray) -> None:
                pool_lengths = self._lengths[first : first + lcs.shape[1]]
                out[...] = f_measure(lcs.astype(np.float64), pool_lengths, lengths)

            return compute
        table = FTable(targets, self._max_length)

        def look_up(lcs: np.ndarray, first: int, out: np.ndarray) -> None:
            index = self._scratch.index(lcs.shape)
            offsets = table.offsets(self._lengths[first : first + lcs.shape[1]])  # per chunk:
            table.into(lcs, offsets, out, index)  # every process would redo the whole pool's

        return look_up

    def block(self, encoded: list[str]) -> Block:
        """Score several candidates against the pool in one call (see Block)."""
        return Block(self, encoded)

    def above(self, encoded: str, threshold: float) -> bool | None:
        """Whether some pool item scores above threshold: True (one was found and scored),
        False (the bounds rule every item out, or the few they leave score lower), or None
        (the candidate's tokens are too common for the search to pay: score the whole pool).

        Only items holding one of the candidate's probe tokens can pass the shared-token
        bound; of those, an item of n tokens is scored only if the tokens it can share
        (the candidate's counts of the probe tokens it holds, plus every left-out token)
        reach need[n]. See bounds.py."""
        m = len(encoded)
        if not m or not self._size:
            return False
        need = need_table(m, self._max_length, threshold, f_measure)
        least = int(need.min())
        if least > m:
            return False
        counts = Counter(encoded)
        probe = [t for t in probe_tokens(counts, least, self._postings) if t in self._postings]
        lists = [np.frombuffer(self._postings[t], dtype=np.int64) for t in probe]
        if sum(len(items) for items in lists) > PROBE_SHARE * self._size:
            return None
        if not lists:
            return False
        left_out = m - sum(counts[t] for t in probe)
        items = np.concatenate(lists)
        weights = np.repeat([float(counts[t]) for t in probe], [len(x) for x in lists])
        shared = np.bincount(items, weights=weights, minlength=self._size)
        bound = shared[items] + left_out
        items = np.unique(items[bound >= need[self._lengths[items].astype(np.int64)]])
        if not items.size:
            return False
        lcs = process.cdist(
            [encoded],
            [self._encoded[i] for i in items.tolist()],
            scorer=LCSseq.similarity,
            dtype=np.int32,
            workers=1,
        )[0]
        self.pairs_scored += items.size
        scores = f_measure(lcs.astype(np.float64), self._lengths[items], float(m))
        return bool((scores > threshold).any())


class Block:
    """Candidates scored together against the pool as it stood when the block began (one pass
    over the pool for the whole block, shared out over the pool's threads), then judged one by
    one in order: a candidate's scores are its row plus its scores against whatever joined the
    pool since, so every score is exactly what scoring it alone at its turn would give."""

    def __init__(self, pool: RougePool, encoded: list[str]) -> None:
        self.pool = pool
        self.start = len(pool)
        self.encoded = encoded
        self.rows = pool.rows(encoded, 0)

    def similarity(self, index: int) -> Similarity:
        encoded = self.encoded[index]
        if len(self.pool) == self.start:
            return Similarity(self.rows[index])
        newer = self.pool.score_encoded(encoded, start=self.start).scores
        return Similarity(np.concatenate([self.rows[index], newer]))


def rouge_l(a: str, b: str, tokenizer: Tokenizer = rouge_tokens) -> float:
    """ROUGE-L F-measure of two texts (a is the target, b the prediction)."""
    pool = RougePool(tokenizer, workers=1)
    pool.add(b)
    return float(pool.score(a).scores[0])
