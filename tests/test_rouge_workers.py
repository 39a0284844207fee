"""Scoring on several threads: the same scores, tops, means and decisions as on one, and as
rouge_score's (by lookup table or by arithmetic); the `workers` setting checked; no threads
left behind."""

from __future__ import annotations

import gc
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from rouge_score import rouge_scorer

from selfinstruct.similarity import parallel, rouge
from selfinstruct.similarity.fmeasure import FTable, Scratch, f_measure
from selfinstruct.similarity.parallel import Chunks, Once, chunks, cores, resolve
from selfinstruct.similarity.rouge import RougePool

WORKERS = [1, 2, 0]
WORDS = ["the", "a", "of", "write", "list", "cat", "sat", "mat", "x", "y", "z", "Ünï", "42"]


def rouge_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("rouge")]


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 2 to 16 items from pools of 16 items on, so that pools of a few dozen items
    are split over threads."""
    monkeypatch.setattr(parallel, "CHUNK", 8)
    monkeypatch.setattr(parallel, "PARALLEL_FROM", 16)
    monkeypatch.setattr(parallel, "MIN_CHUNK", 2)
    monkeypatch.setattr(parallel, "MAX_CHUNK", 16)


@pytest.fixture(params=["table", "arithmetic"])
def path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Scores looked up in an FTable for every block, or computed by f_measure for every one
    (RougePool.rows picks one by the table's size)."""
    size = 0 if request.param == "table" else 10**12
    monkeypatch.setattr(FTable, "size", staticmethod(lambda *_: size))
    return request.param


def random_texts(rng: random.Random, count: int) -> list[str]:
    """Instructions of 0 to 14 words from a small vocabulary (many near-duplicates), with
    empty and token-less ones among them."""
    out = []
    for _ in range(count):
        roll = rng.random()
        if roll < 0.05:
            out.append("")
        elif roll < 0.08:
            out.append("?! ...")
        else:
            out.append(" ".join(rng.choices(WORDS, k=rng.randint(1, 14))))
    return out


def pools(texts: list[str]) -> list[RougePool]:
    made = []
    for workers in WORKERS:
        pool = RougePool(workers=workers)
        for text in texts:
            pool.add(text)
        made.append(pool)
    return made


def judged(pool: RougePool, candidates: list[str], block_size: int) -> list[tuple]:
    """Everything the filter reads, block by block as bootstrap does it (a kept candidate
    joins the pool before the next one is judged)."""
    seen: list[tuple] = []
    for i in range(0, len(candidates), block_size):
        texts = candidates[i : i + block_size]
        encoded = [pool.encode(t) for t in texts]
        above = [pool.above(e, 0.7) for e in encoded]
        block = pool.block(encoded)
        for j, text in enumerate(texts):
            similarity = block.similarity(j)
            top = similarity.top(pool.texts, 10)
            seen.append((above[j], similarity.scores.tobytes(), top, similarity.mean))
            if similarity.max <= 0.7:
                pool.add(text, encoded[j])
    return seen


@pytest.mark.parametrize("seed", range(6))
def test_block_scores_and_decisions_are_the_same_on_any_number_of_threads(small_chunks, path, seed):
    rng = random.Random(seed)
    texts = random_texts(rng, rng.randint(0, 120))
    candidates = random_texts(rng, 80)
    block_size = rng.randint(1, 9)
    runs = [judged(pool, candidates, block_size) for pool in pools(texts)]
    assert runs[1] == runs[0]
    assert runs[2] == runs[0]


@pytest.mark.parametrize("seed", range(4))
def test_single_scores_are_the_same_on_any_number_of_threads(small_chunks, path, seed):
    rng = random.Random(100 + seed)
    texts = random_texts(rng, 90)
    made = pools(texts)
    for candidate in random_texts(rng, 30):
        start = rng.randint(0, len(texts))
        scores = [p.score_encoded(p.encode(candidate), start).scores for p in made]
        assert scores[0].tobytes() == scores[1].tobytes() == scores[2].tobytes()


def test_a_pool_above_the_real_chunk_size_is_split_and_scores_the_same():
    rng = random.Random(7)
    texts = random_texts(rng, parallel.PARALLEL_FROM + 500)
    one, two, every = pools(texts)
    candidates = random_texts(rng, 9)
    rows = [p.block([p.encode(c) for c in candidates]).rows for p in (one, two, every)]
    assert rows[0].tobytes() == rows[1].tobytes() == rows[2].tobytes()
    assert len(rouge_threads()) >= 1  # two chunks: the caller's thread and a pool thread
    for pool in (one, two, every):
        pool.close()
    assert not rouge_threads()


def test_the_table_gives_f_measures_bits():
    rng = np.random.default_rng(3)
    targets = [int(m) for m in rng.integers(0, 15, size=9)] + [0]
    pool_lengths = rng.integers(0, 21, size=500).astype(np.float64)
    pool_lengths[:3] = [0.0, 20.0, 1.0]
    lcs = rng.integers(0, 15, size=(len(targets), 500))
    lcs = np.minimum(lcs, np.minimum(pool_lengths[None, :], np.array(targets)[:, None]))
    lcs = lcs.astype(np.int32)
    out = np.empty((len(targets), 600))[:, 50:550]  # a chunk of a wider block
    table = FTable(targets, 20)
    table.into(lcs, table.offsets(pool_lengths), out, Scratch().index(lcs.shape))
    expected = f_measure(lcs.astype(np.float64), pool_lengths, np.array(targets)[:, None] * 1.0)
    assert out.tobytes() == np.ascontiguousarray(expected).tobytes()
    assert table.flat.size == FTable.size(targets, 20)


@pytest.mark.parametrize("seed", range(3))
def test_scores_equal_rouge_scores_on_either_path(small_chunks, path, seed):
    rng = random.Random(200 + seed)
    vocabulary = [*WORDS, "naïve", "café", "日本", "e-mail", "U.S.A.", "don't", "3x", "", "!"]
    texts = [" ".join(rng.choices(vocabulary, k=rng.randint(0, 12))) for _ in range(60)]
    candidates = [" ".join(rng.choices(vocabulary, k=rng.randint(0, 12))) for _ in range(7)]
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
    with RougePool(workers=2) as pool:
        for text in texts:
            pool.add(text)
        rows = pool.block([pool.encode(c) for c in candidates]).rows
    for r, candidate in enumerate(candidates):
        expected = [scorer.score(text, candidate)["rougeL"].fmeasure for text in texts]
        assert rows[r].tolist() == expected


def test_packing_keeps_the_pool_and_its_scores(monkeypatch):
    rng = random.Random(9)
    texts = random_texts(rng, 60)
    unpacked = RougePool(workers=1)  # below PACK_FROM: never packed
    for text in texts:
        unpacked.add(text)
    monkeypatch.setattr(rouge, "PACK_FROM", 10)
    packed = RougePool(workers=1)
    for text in texts:
        packed.add(text)
    assert unpacked._packed == 0
    assert packed._packed == 55  # packed at 10, 13, 17, 22, 28, 35, 44 and 55 items
    assert packed._encoded == [packed.encode(t) for t in texts] == unpacked._encoded
    for candidate in random_texts(rng, 10):
        ours = packed.score(candidate).scores.tobytes()
        assert ours == unpacked.score_encoded(packed.encode(candidate)).scores.tobytes()


@pytest.mark.parametrize("workers", [-1, -8])
def test_negative_workers_are_rejected(workers):
    with pytest.raises(ValueError, match=r"workers must be 0 \(every core\) or a positive"):
        RougePool(workers=workers)


@pytest.mark.parametrize("workers", [1.5, "2", True, None])
def test_workers_must_be_a_whole_number(workers):
    with pytest.raises(ValueError, match="workers must be"):
        resolve(workers)  # type: ignore[arg-type]


def test_zero_workers_means_every_core():
    assert RougePool(workers=0).workers == cores() == len(os.sched_getaffinity(0))
    assert RougePool().workers == cores()
    assert RougePool(workers=3).workers == 3


def test_a_small_pool_starts_no_threads():
    with RougePool(workers=4) as pool:
        for text in ["the cat sat", "a dog", "write a list"]:
            pool.add(text)
        pool.block([pool.encode("the cat"), pool.encode("a list")])
        assert not rouge_threads()


def test_threads_stop_at_close_and_start_again_when_needed(small_chunks):
    pool = RougePool(workers=3)
    for text in random_texts(random.Random(1), 50):
        pool.add(text)
    before = pool.block([pool.encode("the cat sat")]).rows
    assert 1 <= len(rouge_threads()) <= 2
    pool.close()
    assert not rouge_threads()
    assert pool.block([pool.encode("the cat sat")]).rows.tobytes() == before.tobytes()
    pool.close()
    pool.close()  # closing twice is fine
    assert not rouge_threads()


def test_a_collected_pool_leaves_no_threads(small_chunks):
    pool = RougePool(workers=2)
    for text in random_texts(random.Random(3), 40):
        pool.add(text)
    pool.score("write a list of cats")
    threads = rouge_threads()
    assert threads
    del pool
    gc.collect()
    for thread in threads:  # told to stop when the executor went; give them a moment
        thread.join(timeout=5)
    assert not rouge_threads()


def test_the_context_manager_closes_the_threads(small_chunks):
    with RougePool(workers=2) as pool:
        for text in random_texts(random.Random(2), 40):
            pool.add(text)
        pool.score("write a list of cats")
        assert rouge_threads()
    assert not rouge_threads()


def test_chunks_cover_the_range_in_order():
    for size in [0, 1, 7, 8, 15, 16, 17, 100, 1001]:
        cut = chunks(size, 8)
        assert [i for start, stop in cut for i in range(start, stop)] == list(range(size))
        assert len(cut) == max(1, size // 8)
        assert all(8 <= stop - start < 16 for start, stop in cut) or len(cut) == 1


@pytest.mark.parametrize("workers", [1, 2, 3])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 100, 1001])
def test_chunks_on_threads_cover_the_range_once(small_chunks, workers, size):
    runner = Chunks(workers)
    done: list[tuple[int, int]] = []
    runner.run(lambda start, stop: done.append((start, stop)), size)
    runner.close()
    covered = [i for start, stop in sorted(done) for i in range(start, stop)]
    assert covered == list(range(size))
    if workers > 1 and size >= 16:
        lengths = [stop - start for start, stop in sorted(done)]
        assert max(lengths) <= 16
        assert all(n >= 2 for n in lengths)


def test_an_error_in_a_chunk_reaches_the_caller(small_chunks):
    runner = Chunks(3)

    def fail_on_second(start: int, stop: int) -> None:
        if start > 0:
            raise RuntimeError(f"chunk {start}")

    with pytest.raises(RuntimeError, match="chunk"):
        runner.run(fail_on_second, 100)
    runner.close()
    assert not rouge_threads()


def test_once_makes_its_value_once_whichever_thread_asks_first():
    calls: list[int] = []

    def make() -> int:
        calls.append(1)
        return len(calls)

    once = Once(make)
    with ThreadPoolExecutor(4) as executor:
        results = list(executor.map(lambda _: once.get(), range(50)))
    assert results == [1] * 50
    assert calls == [1]
