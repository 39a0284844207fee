"""The ROUGE-L rule over the union of runs, exactly as bootstrap applies it within one run.

The pool starts with the seeds bootstrap prompts with (all seed tasks; the classification
ones only with `classification_only`), in seed file order. Each candidate in merge order is
dropped as `duplicate` when its text equals a pool item's, else as `rouge` when its ROUGE-L
F-measure against some pool item is above the threshold (exactly the threshold is kept);
a kept candidate joins the pool and records its `most_similar` pool items (the top
`most_similar` by score, ties in pool order) and `avg_similarity_score` (the mean over the
whole pool). Scores are rouge_score's, bit for bit (similarity/rouge.py).

Candidates are scored a batch at a time like bootstrap's responses: the bounded search of
similarity/prefilter.py settles rejections first, the rest get their rows against the pool in
one call, and each is completed with the items kept since. Decisions never depend on that.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from selfinstruct.filters.reasons import DUPLICATE, ROUGE
from selfinstruct.similarity.prefilter import Prefilter
from selfinstruct.similarity.rouge import RougePool
from selfinstruct.similarity.tokenize import Tokenizer


@dataclass(frozen=True)
class Verdict:
    """A candidate's decision: kept (reason None, with its similarity records) or dropped."""

    reason: str | None
    most_similar: dict[str, float]
    avg_similarity_score: float

    @property
    def kept(self) -> bool:
        return self.reason is None


class Selector:
    def __init__(
        self, seeds: Sequence[str], threshold: float, tokenizer: Tokenizer, most_similar: int
    ) -> None:
        self.pool = RougePool(tokenizer)
        for text in seeds:
            self.pool.add(text)
        self.known = set(self.pool.texts)
        self.threshold = threshold
        self.most_similar = most_similar
        self.prefilter = Prefilter(self.pool, threshold)

    def close(self) -> None:
        self.pool.close()

    def decide(self, texts: Sequence[str]) -> list[Verdict]:
        """Decide candidates in order, each against the pool as it stands at its turn."""
        encoded = [self.pool.encode(text) for text in texts]
        settled = self.prefilter.settle(encoded)
        rows = {i: row for row, i in enumerate(i for i in range(len(texts)) if i not in settled)}
        block = self.prefilter.block([encoded[i] for i in rows])
        verdicts = []
        for i, text in enumerate(texts):
            if text in self.known:
                verdicts.append(Verdict(DUPLICATE, {}, 0.0))
                continue
            if i in settled:
                self.prefilter.judged(rejected=True)
                verdicts.append(Verdict(ROUGE, {}, 0.0))
                continue
            similarity = block.similarity(rows[i])
            rejected = similarity.max > self.threshold
            self.prefilter.judged(rejected)
            if rejected:
                verdicts.append(Verdict(ROUGE, {}, 0.0))
                continue
            top = similarity.top(self.pool.texts, self.most_similar)
            verdicts.append(Verdict(None, top, similarity.mean))
            self.pool.add(text, encoded[i])
            self.known.add(text)
        return verdicts
