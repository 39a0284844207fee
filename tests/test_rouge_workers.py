"""Scoring in several processes: the same scores, tops, means and decisions as in one, and as
rouge_score's (by lookup table or by arithmetic); helpers that fail are replaced by this
process; the `workers` setting checked; no helper process left behind."""

from __future__ import annotations

import gc
import logging
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from rouge_score import rouge_scorer

from selfinstruct.similarity import parallel, rouge
from selfinstruct.similarity.fmeasure import FTable, Scratch, f_measure
from selfinstruct.similarity.parallel import chunks, cores, guided, resolve
from selfinstruct.similarity.processes import Helper, Layout, Segment
from selfinstruct.similarity.rouge import RougePool

WORKERS = [1, 2, 0]
WORDS = ["the", "a", "of", "write", "list", "cat", "sat", "mat", "x", "y", "z", "Ünï", "42"]


def helpers(pool: RougePool) -> list[Helper]:
    return list(pool._spread._helpers)


def running(processes: list[subprocess.Popen]) -> list[subprocess.Popen]:
    """The processes still running, after giving them a moment to leave."""
    deadline = time.monotonic() + 10
    while any(p.poll() is None for p in processes) and time.monotonic() < deadline:
        time.sleep(0.02)
    return [p for p in processes if p.poll() is None]


@pytest.fixture
def asked(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """For each block shared out: the chunks the helpers scored (the others this process).
    Scoring here is slowed down a little, so that the helpers take part however busy the
    machine is (they score at full speed: the patch is in this process only)."""
    score_chunk = RougePool.score_chunk

    def slowly(self: RougePool, *args: Any) -> None:
        time.sleep(0.002)
        score_chunk(self, *args)

    monkeypatch.setattr(RougePool, "score_chunk", slowly)
    helped: list[int] = []
    walk = parallel.walk

    def counted(cut: list[tuple[int, int]], layout: Layout, score: parallel.Local) -> list[int]:
        mine = walk(cut, layout, score)
        helped.append(len(cut) - len(mine))
        return mine

    monkeypatch.setattr(parallel, "walk", counted)
    return helped


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of 2 to 16 items from pools of 16 items on, so that pools of a few dozen items
    are split over processes."""
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
    """A pool of these texts for each WORKERS setting, its helpers started."""
    made = []
    for workers in WORKERS:
        pool = RougePool(workers=workers)
        for text in texts:
            pool.add(text)
        assert pool.wait_ready() == pool.workers - 1
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
@pytest.mark.slow  # a process of its own
def test_block_scores_and_decisions_are_the_same_in_any_number_of_processes(
    small_chunks, path, asked, seed
):
    rng = random.Random(seed)
    texts = random_texts(rng, rng.randint(0, 120))
    candidates = random_texts(rng, 80)
    block_size = rng.randint(1, 9)
    made = pools(texts)
    runs = [judged(pool, candidates, block_size) for pool in made]
    assert runs[1] == runs[0]
    assert runs[2] == runs[0]
    assert sum(asked)  # the helpers scored chunks (the pools grow past PARALLEL_FROM)
    for pool in made:
        pool.close()


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.slow  # a process of its own
def test_single_scores_are_the_same_in_any_number_of_processes(small_chunks, path, asked, seed):
    rng = random.Random(100 + seed)
    texts = random_texts(rng, 90)
    made = pools(texts)
    for candidate in random_texts(rng, 30):
        start = rng.randint(0, len(texts))
        scores = [p.score_encoded(p.encode(candidate), start).scores for p in made]
        assert scores[0].tobytes() == scores[1].tobytes() == scores[2].tobytes()
    assert sum(asked)
    for pool in made:
        pool.close()


@pytest.mark.slow  # a process of its own
def test_a_pool_above_the_real_chunk_size_is_split_and_scores_the_same(asked):
    rng = random.Random(7)
    texts = random_texts(rng, parallel.PARALLEL_FROM + 500)
    one, two, every = pools(texts)
    candidates = random_texts(rng, 9)
    for _ in range(2):  # the first block also gives the helpers the pool's items
        rows = [p.block([p.encode(c) for c in candidates]).rows for p in (one, two, every)]
        assert rows[0].tobytes() == rows[1].tobytes() == rows[2].tobytes()
    assert len(asked) == 4 and asked[2] and asked[3]  # a helper scored part of each pool
    started = [h.process for p in (two, every) for h in helpers(p)]
    assert started and all(p.poll() is None for p in started)
    for pool in (one, two, every):
        pool.close()
    assert not running(started)


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
@pytest.mark.slow  # a process of its own
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


def test_a_small_pool_starts_no_helper():
    with RougePool(workers=4) as pool:
        for text in ["the cat sat", "a dog", "write a list"]:
            pool.add(text)
        pool.block([pool.encode("the cat"), pool.encode("a list")])
        assert not helpers(pool)


def test_one_worker_starts_no_helper(small_chunks):
    with RougePool(workers=1) as pool:
        for text in random_texts(random.Random(4), 50):
            pool.add(text)
        pool.block([pool.encode("the cat sat")])
        assert pool.wait_ready() == 0
        assert not helpers(pool)


@pytest.mark.slow  # a process of its own
def test_helpers_stop_at_close_and_start_again_when_needed(small_chunks, asked):
    pool = RougePool(workers=3)
    for text in random_texts(random.Random(1), 50):
        pool.add(text)
    assert pool.wait_ready() == 2
    before = pool.block([pool.encode("the cat sat")]).rows
    first = [h.process for h in helpers(pool)]
    pool.close()
    assert not running(first)
    assert not helpers(pool)
    assert pool.wait_ready() == 2
    assert pool.block([pool.encode("the cat sat")]).rows.tobytes() == before.tobytes()
    second = [h.process for h in helpers(pool)]
    assert {p.pid for p in second}.isdisjoint(p.pid for p in first)
    segment = Path("/dev/shm", pool._spread._segment.name)
    assert segment.exists()
    pool.close()
    pool.close()  # closing twice is fine
    assert not running(second)
    assert not segment.exists()


@pytest.mark.slow  # a process of its own
def test_a_collected_pool_leaves_no_helper(small_chunks):
    pool = RougePool(workers=2)
    for text in random_texts(random.Random(3), 40):
        pool.add(text)
    pool.wait_ready()
    pool.score("write a list of cats")
    started = [h.process for h in helpers(pool)]
    assert started
    del pool
    gc.collect()
    assert not running(started)


@pytest.mark.slow  # a process of its own
def test_the_context_manager_stops_the_helpers(small_chunks):
    with RougePool(workers=2) as pool:
        for text in random_texts(random.Random(2), 40):
            pool.add(text)
        pool.wait_ready()
        pool.score("write a list of cats")
        started = [h.process for h in helpers(pool)]
        assert started
    assert not running(started)


def alone_and_helped(texts: list[str]) -> tuple[RougePool, RougePool]:
    """Pools of these texts in one process and in two (its helper started)."""
    one, two = RougePool(workers=1), RougePool(workers=2)
    for text in texts:
        one.add(text)
        two.add(text)
    assert two.wait_ready() == 1
    return one, two


@pytest.mark.slow  # a process of its own
def test_a_helper_that_dies_between_blocks_is_replaced_by_this_process(small_chunks, caplog):
    rng = random.Random(11)
    texts, candidates = random_texts(rng, 80), random_texts(rng, 40)
    one, two = alone_and_helped(texts)
    expected = judged(one, candidates, 5)
    (helper,) = helpers(two)
    helper.process.kill()
    helper.process.wait()
    with caplog.at_level(logging.WARNING):
        assert judged(two, candidates, 5) == expected
    assert "ROUGE-L scoring continues in this process alone" in caplog.text
    assert not helpers(two)  # no new helper for this pool: one failed
    two.close()


@pytest.mark.slow  # a process of its own
def test_a_helper_that_dies_in_the_middle_of_a_block_loses_no_chunk(
    small_chunks, monkeypatch, caplog
):
    rng = random.Random(12)
    texts, candidates = random_texts(rng, 200), random_texts(rng, 9)
    one, two = alone_and_helped(texts)
    lay_out = Segment.lay_out

    def claimed_by_the_helper(self: Segment, shape: tuple[int, int], cut: list) -> Layout:
        layout = lay_out(self, shape, cut)
        layout.claimed[1::2] = 1  # as if the helper had claimed every other chunk...
        return layout

    def die(self: Helper, *args: object) -> None:  # ...and died before scoring them
        self.process.kill()
        self.process.wait()
        self.busy = True

    monkeypatch.setattr(Segment, "lay_out", claimed_by_the_helper)
    monkeypatch.setattr(Helper, "begin", die)
    with caplog.at_level(logging.WARNING):
        rows = two.block([two.encode(c) for c in candidates]).rows
    assert rows.tobytes() == one.block([one.encode(c) for c in candidates]).rows.tobytes()
    assert "a helper process ended" in caplog.text
    two.close()


def test_chunks_claimed_at_the_same_moment_are_scored_twice_and_none_is_left_out():
    cut = guided(100, 2)
    segment = Segment()
    layout = segment.lay_out((1, 100), cut)
    layout.claimed[0] = 1  # another process claimed chunk 0 and has not finished it
    scored: list[tuple[int, int]] = []
    mine = parallel.walk(cut, layout, lambda first, last: scored.append((first, last)))
    assert mine == list(range(1, len(cut))) and scored == cut[1:]
    assert layout.done.tolist() == [0] + [1] * (len(cut) - 1)
    del layout
    segment.close()


@pytest.mark.slow  # a process of its own
def test_a_helper_that_cannot_start_leaves_scoring_here(small_chunks, monkeypatch, caplog):
    monkeypatch.setattr(sys, "executable", "/nonexistent/python")
    pool = RougePool(workers=2)
    for text in random_texts(random.Random(5), 50):
        pool.add(text)
    with caplog.at_level(logging.WARNING):
        scores = pool.score("the cat sat on the mat").scores
    with RougePool(workers=1) as alone:
        for text in pool.texts:
            alone.add(text)
        assert scores.tobytes() == alone.score("the cat sat on the mat").scores.tobytes()
    assert "could not start a helper process" in caplog.text
    pool.close()


@pytest.mark.slow  # a process of its own
def test_an_error_here_reaches_the_caller_and_stops_the_helpers(small_chunks, monkeypatch):
    pool = RougePool(workers=2)
    for text in random_texts(random.Random(6), 60):
        pool.add(text)
    assert pool.wait_ready() == 1
    started = [h.process for h in helpers(pool)]
    score_chunk = pool.score_chunk

    def fail_on_second(*args: object) -> None:
        if args[3] > 0:
            raise RuntimeError("chunk failed")
        score_chunk(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(pool, "score_chunk", fail_on_second)
    with pytest.raises(RuntimeError, match="chunk failed"):
        pool.score("write a list of cats")
    assert not running(started)
    monkeypatch.undo()
    assert pool.score("write a list of cats").scores.size == 60  # usable again
    pool.close()


HELPED_POOL = (  # a script's start: a pool of 40 items scored with a helper's help
    "from selfinstruct.similarity import parallel\n"
    "from selfinstruct.similarity.rouge import RougePool\n"
    "parallel.PARALLEL_FROM = 16\n"
    "pool = RougePool(workers=2)\n"
    "for i in range(40):\n"
    "    pool.add(f'write item {i} of the list')\n"
    "assert pool.wait_ready() == 1\n"
    "pool.score('write the list')\n"
)


@pytest.mark.slow  # a process of its own
def test_a_helper_ignores_ctrl_c_and_leaves_when_its_parent_dies(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(
        HELPED_POOL + "import time\n"
        "print(pool._spread._helpers[0].process.pid, pool._spread._segment.name, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, str(script)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # the resource tracker reports the segment it removes
        text=True,
        env=os.environ.copy(),
    )
    try:
        pid, segment = parent.stdout.readline().split()  # type: ignore[union-attr]
        helper = int(pid)
        assert Path("/dev/shm", segment).exists()
        os.kill(helper, signal.SIGINT)
        time.sleep(0.3)
        os.kill(helper, 0)  # still there: Ctrl-C is the parent's to handle
        parent.kill()
        parent.wait()
        deadline = time.monotonic() + 10
        while _alive(helper) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _alive(helper)
        while Path("/dev/shm", segment).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not Path("/dev/shm", segment).exists()  # removed by the resource tracker
    finally:
        parent.kill()
        parent.wait()


def _alive(pid: int) -> bool:
    """Whether pid runs (a zombie, dead but not yet reaped by init, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_chunks_cover_the_range_in_order():
    for size in [0, 1, 7, 8, 15, 16, 17, 100, 1001]:
        cut = chunks(size, 8)
        assert [i for start, stop in cut for i in range(start, stop)] == list(range(size))
        assert len(cut) == max(1, size // 8)
        assert all(8 <= stop - start < 16 for start, stop in cut) or len(cut) == 1


@pytest.mark.parametrize("processes", [1, 2, 3])
@pytest.mark.parametrize("size", [0, 1, 15, 16, 17, 100, 1001])
def test_the_guided_cut_covers_the_range_once_in_order(small_chunks, processes, size):
    taken = guided(size, processes)
    assert [i for start, stop in taken for i in range(start, stop)] == list(range(size))
    lengths = [stop - start for start, stop in taken]
    if size >= 2:
        assert all(2 <= n <= 16 + 2 for n in lengths)  # the last takes a remainder < MIN
        assert lengths[:-1] == sorted(lengths[:-1], reverse=True)  # smaller towards the end


@pytest.mark.slow  # a process of its own
def test_a_pool_left_open_removes_its_segment_at_exit(tmp_path):
    script = tmp_path / "open.py"
    script.write_text(
        HELPED_POOL + "print(pool._spread._segment.name)\n"  # no close(): exit stops helpers
    )
    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True
    )
    assert not Path("/dev/shm", done.stdout.strip()).exists()
    assert "leaked" not in done.stderr  # removed by the pool, not by the resource tracker
