"""ROUGE-L: bit-for-bit parity with the rouge_score package, pool scoring, tokenizers."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer
from rouge_score import tokenize as rs_tokenize

from selfinstruct.seeds import default_seed_path
from selfinstruct.similarity.bounds import need_table, probe_tokens
from selfinstruct.similarity.rouge import RougePool, Similarity, f_measure, rouge_l
from selfinstruct.similarity.tokenize import (
    TOKENIZERS,
    get_tokenizer,
    rouge_tokens,
    unicode_tokens,
)
from selfinstruct.stages.bootstrap.settings import BootstrapSettings

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)


def reference(target: str, prediction: str) -> float:
    return SCORER.score(target, prediction)["rougeL"].fmeasure


def lcs_length(a: list[str], b: list[str]) -> int:
    """Plain dynamic-programming LCS over token lists."""
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0]
        for j, y in enumerate(b, start=1):
            current.append(previous[j - 1] + 1 if x == y else max(previous[j], current[-1]))
        previous = current
    return previous[-1]


def pure_f(target: str, prediction: str) -> float:
    t, p = rouge_tokens(target), rouge_tokens(prediction)
    if not t or not p:
        return 0.0
    lcs = lcs_length(t, p)
    precision, recall = lcs / len(p), lcs / len(t)
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


# --------------------------------------------------------------------------------------------
# Randomized parity with rouge_score
# --------------------------------------------------------------------------------------------

VOCAB = [
    "the",
    "The",
    "THE",
    "cat",
    "Cat",
    "sat",
    "on",
    "mat",
    "a",
    "an",
    "42",
    "3x",
    "x3",
    "don't",
    "e-mail",
    "U.S.A.",
    "naïve",
    "café",
    "İstanbul",
    "İ",
    "é",
    "ß",
    "Straße",
    "Ω",
    "日本",
    "語",
    "北京",
    "中文字",
    "emoji🙂",
    "K",
    "ﬁle",
    "Ｆｕｌｌ",
    "a_b",
    "foo.bar",
    "!",
    "?",
    "...",
    ",",
    "--",
    "(x)",
    "",
    " ",
    "1",
    "0",
    "99",
    "ab12cd",
]
SEPARATORS = [" ", "  ", "\n", "\t", ", ", "-", "", "/", "\u00a0"]


@st.composite
def texts(draw) -> str:
    tokens = draw(st.lists(st.sampled_from(VOCAB), max_size=25))
    pieces = []
    for token in tokens:
        pieces.append(token)
        pieces.append(draw(st.sampled_from(SEPARATORS)))
    return "".join(pieces)


mixed_text = st.one_of(texts(), st.text(max_size=40), st.just(""))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(target=mixed_text, prediction=mixed_text)
def test_rouge_l_matches_rouge_score_exactly(target, prediction):
    assert rouge_l(target, prediction) == reference(target, prediction)


@settings(max_examples=300, deadline=None)
@given(text=mixed_text)
def test_rouge_tokens_match_rouge_score_tokenizer(text):
    assert rouge_tokens(text) == rs_tokenize.tokenize(text, None)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pool_texts=st.lists(mixed_text, max_size=12), candidate=mixed_text)
def test_pool_scores_match_rouge_score_in_pool_order(pool_texts, candidate):
    pool = RougePool()
    for text in pool_texts:
        pool.add(text)
    scores = pool.score(candidate).scores
    assert scores.shape == (len(pool_texts),)
    assert scores.tolist() == [reference(candidate, text) for text in pool_texts]


@settings(max_examples=200, deadline=None)
@given(a=texts(), b=texts())
def test_rouge_l_is_symmetric_and_bounded(a, b):
    score = rouge_l(a, b)
    assert score == rouge_l(b, a)
    assert 0.0 <= score <= 1.0
    if rouge_tokens(a):
        assert rouge_l(a, a) == 1.0


@pytest.mark.parametrize(
    ("target", "prediction", "expected"),
    [
        ("the cat sat on the mat", "the cat sat on the mat", 1.0),
        ("the cat sat", "the cat", 0.8),
        ("a b c d", "d c b a", 0.25),
        ("İstanbul is big", "i stanbul", 2 * (2 / 2) * (2 / 4) / ((2 / 2) + (2 / 4))),
        ("The CAT!", "the, cat?", 1.0),
        ("", "the cat", 0.0),
        ("日本語のテキスト", "日本語のテキスト", 0.0),
        ("hello", "world", 0.0),
    ],
)
def test_known_values(target, prediction, expected):
    assert rouge_l(target, prediction) == pytest.approx(expected, abs=1e-12)
    assert rouge_l(target, prediction) == reference(target, prediction)


def _instructions(path: Path, n: int) -> list[str]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]
    instructions = [row["instruction"] for row in rows]
    return random.Random(1234).sample(instructions, min(n, len(instructions)))


def _check_all_pairs(instructions: list[str]) -> None:
    pool = RougePool()
    for text in instructions:
        pool.add(text)
    for candidate in instructions:
        got = pool.score(candidate).scores.tolist()
        assert got == [reference(candidate, text) for text in instructions], candidate


def test_parity_on_paper_seed_instructions(paper_seeds: Path):
    instructions = _instructions(paper_seeds, 60)
    assert len(instructions) == 60
    _check_all_pairs(instructions)


def test_parity_on_packaged_seed_instructions():
    instructions = _instructions(default_seed_path(), 60)
    assert len(instructions) == 60
    _check_all_pairs(instructions)


# --------------------------------------------------------------------------------------------
# RougePool and Similarity
# --------------------------------------------------------------------------------------------


def test_pool_scores_in_pool_order_and_does_not_grow_when_scoring():
    pool = RougePool()
    texts_ = ["a c", "x y", "b d", "a b"]
    for text in texts_:
        pool.add(text)
    similarity = pool.score("a b")
    assert similarity.scores.tolist() == [0.5, 0.0, 0.5, 1.0]
    assert len(pool) == 4
    assert pool.texts == texts_
    assert similarity.max == 1.0
    assert similarity.mean == pytest.approx(0.5)


def test_top_returns_k_best_with_ties_in_pool_order():
    pool = RougePool()
    texts_ = ["b d", "x y", "a c", "a b", "a z"]
    for text in texts_:
        pool.add(text)
    similarity = pool.score("a b")
    top = similarity.top(pool.texts, 3)
    assert list(top.items()) == [("a b", 1.0), ("b d", 0.5), ("a c", 0.5)]
    assert list(similarity.top(pool.texts, 10)) == ["a b", "b d", "a c", "a z", "x y"]
    assert similarity.top(pool.texts, 0) == {}


def test_top_values_are_python_floats():
    similarity = Similarity(np.array([0.25, 0.75]))
    top = similarity.top(["p", "q"], 1)
    assert top == {"q": 0.75}
    assert type(top["q"]) is float
    assert type(similarity.max) is float
    assert type(similarity.mean) is float


def test_empty_pool():
    pool = RougePool()
    assert len(pool) == 0
    similarity = pool.score("anything at all")
    assert similarity.scores.size == 0
    assert similarity.max == 0.0
    assert similarity.mean == 0.0
    assert similarity.top(pool.texts, 10) == {}


@pytest.mark.parametrize("candidate", ["", "   ", "!!! ???", "日本語", "éèê"])
def test_candidate_without_tokens_scores_zero(candidate):
    pool = RougePool()
    for text in ["the cat", "a dog", "the mat"]:
        pool.add(text)
    similarity = pool.score(candidate)
    assert similarity.scores.tolist() == [0.0, 0.0, 0.0]
    assert similarity.max == 0.0


def test_pool_entry_without_tokens_scores_zero():
    pool = RougePool()
    pool.add("...")
    pool.add("the cat")
    assert pool.score("the cat").scores.tolist() == [0.0, 1.0]


def test_add_with_precomputed_encoding():
    pool = RougePool()
    pool.add("the cat sat")
    encoded = pool.encode("the cat")
    pool.add("the cat", encoded)
    assert pool.texts == ["the cat sat", "the cat"]
    assert pool.score_encoded(encoded).scores.tolist() == [0.8, 1.0]


def test_encode_is_stable_per_token():
    pool = RougePool()
    first = pool.encode("The cat, the CAT")
    assert len(first) == 4
    assert first[0] == first[2] and first[1] == first[3]
    assert first[0] != first[1]
    assert pool.encode("cat the") == first[1] + first[0]


def test_pool_grows_beyond_initial_capacity():
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta", "iota", "kappa"]
    texts_ = [" ".join(rng.choices(words, k=rng.randint(0, 8))) for _ in range(300)]
    pool = RougePool()
    for text in texts_:
        pool.add(text)
    assert len(pool) == 300
    candidate = "alpha beta gamma delta alpha"
    assert pool.score(candidate).scores.tolist() == [reference(candidate, t) for t in texts_]


def test_mean_is_over_the_whole_pool():
    pool = RougePool()
    for text in ["a b", "c d", "a d", "e f"]:
        pool.add(text)
    similarity = pool.score("a b")
    assert similarity.mean == pytest.approx((1.0 + 0.0 + 0.5 + 0.0) / 4)


def test_f_measure_guards_zero_lengths():
    f = f_measure(np.array([0.0, 0.0, 2.0]), np.array([0.0, 3.0, 4.0]), 2.0)
    assert f.tolist() == [0.0, 0.0, 2 * (2 / 4) * (2 / 2) / ((2 / 4) + (2 / 2))]


def test_vocabulary_beyond_surrogate_range():
    pool = RougePool()
    per_text = 100
    texts_ = [
        " ".join(f"w{i * per_text + j}" for j in range(per_text)) for i in range(600)
    ]  # 60000 distinct tokens, more than 0xD800
    for text in texts_:
        pool.add(text)
    assert len(pool._vocab) == 60000
    for encoded in pool._encoded:
        encoded.encode("utf-8")  # raises on surrogate code points
        assert not any(0xD800 <= ord(c) <= 0xDFFF for c in encoded)
    codes = {ord(c) for encoded in pool._encoded for c in encoded}
    assert len(codes) == 60000  # still one distinct character per distinct token

    # Token k gets code point k + 1, so texts_[552] (w55200..w55299) straddles the gap.
    assert ord(pool.encode("w55294")) == 0xD7FF
    assert ord(pool.encode("w55295")) == 0xE000
    rng = random.Random(3)
    for _ in range(4):
        tokens = (
            rng.sample(texts_[552].split(), 30)
            + rng.sample(texts_[0].split(), 10)
            + rng.sample(texts_[599].split(), 10)
            + [f"fresh{rng.randrange(1000)}" for _ in range(5)]
        )
        rng.shuffle(tokens)
        candidate = " ".join(tokens)
        pool.encode(candidate).encode("utf-8")
        scores = pool.score(candidate).scores
        for index in (0, 552, 553, 599):
            expected = pure_f(candidate, texts_[index])
            assert scores[index] == expected == reference(candidate, texts_[index])
        assert scores[553] == 0.0
        assert min(scores[0], scores[552], scores[599]) > 0.0
    for index in (0, 552, 553, 599):
        assert pool.score(texts_[index]).scores[index] == 1.0


# --------------------------------------------------------------------------------------------
# Exact bounds and the pruned search (RougePool.above)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [0.0, 0.3, 0.5, 0.7, 0.9, 0.99])
def test_need_table_is_the_least_lcs_above_threshold(threshold):
    for m in range(0, 40):
        table = need_table(m, 60, threshold, f_measure)
        for n in range(61):
            exact = [
                k
                for k in range(min(m, n) + 1)
                if f_measure(np.array([float(k)]), np.array([float(n)]), float(m))[0] > threshold
            ]
            assert table[n] == (exact[0] if exact else m + 1), (m, n)


def test_length_bound_at_0_7_is_the_papers_ratio():
    table = need_table(13, 40, 0.7, f_measure)
    possible = [n for n in range(41) if table[n] <= 13]
    assert min(possible) / 13 > 0.538 and 13 / max(possible) > 0.538
    assert (min(possible) - 1) / 13 <= 0.539 and 13 / (max(possible) + 1) <= 0.539


def test_probe_tokens_leaves_out_common_tokens_below_need():
    from collections import Counter

    postings = {"a": [0] * 100, "b": [0] * 50, "c": [0] * 3, "d": [0]}
    counts = Counter({"a": 2, "b": 1, "c": 1, "d": 1})
    assert probe_tokens(counts, 3, postings) == ["b", "c", "d"]  # a (2) < 3; a+b = 3 is not
    assert probe_tokens(counts, 4, postings) == ["c", "d"]  # a + b = 3 < 4
    assert probe_tokens(counts, 1, postings) == ["a", "b", "c", "d"]


small_vocab = st.sampled_from(["a", "b", "c", "d", "e", "f", "the", "of", "x", "y"])
pool_text = st.lists(small_vocab, max_size=14).map(" ".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(pool_text, max_size=60),
    pool_text,
    st.sampled_from([0.3, 0.5, 0.7, 0.8]),
    st.booleans(),
)
def test_above_agrees_with_the_full_scores(pool_texts, candidate, threshold, skewed):
    if skewed:  # a common token in every item, so the search has posting lists to skip
        pool_texts = [f"the {t} of" for t in pool_texts]
    pool = RougePool()
    for text in pool_texts:
        pool.add(text)
    encoded = pool.encode(candidate)
    verdict = pool.above(encoded, threshold)
    truth = pool.score_encoded(encoded).max > threshold
    if verdict is None:
        return
    assert verdict == truth


def test_above_prunes_on_a_large_pool_and_stays_exact():
    rng = random.Random(11)
    words = [f"w{i}" for i in range(3000)] + ["the", "a", "of", "to", "and"] * 200
    pool = RougePool()
    texts_ = [" ".join(rng.choices(words, k=rng.randint(5, 20))) for _ in range(5000)]
    for text in texts_:
        pool.add(text)
    decided = 0
    for i in range(300):
        base = texts_[rng.randrange(len(texts_))].split()
        if i % 2:  # a light edit of a pool item: usually above 0.7
            base[rng.randrange(len(base))] = rng.choice(words)
        else:
            base = rng.choices(words, k=len(base))
        encoded = pool.encode(" ".join(base))
        before = pool.pairs_scored
        verdict = pool.above(encoded, 0.7)
        scored = pool.pairs_scored - before
        truth = pool.score_encoded(encoded).max > 0.7
        if verdict is not None:
            decided += 1
            assert verdict == truth
            assert scored < 0.5 * len(pool)
    assert decided >= 250


def test_above_on_empty_pool_and_empty_candidate():
    pool = RougePool()
    assert pool.above(pool.encode("the cat"), 0.7) is False
    for text in ["the cat", "a dog barks", "fish swim", "birds fly high"]:
        pool.add(text)
    assert pool.above("", 0.7) is False
    assert pool.above(pool.encode("the cat"), 0.7) is True
    assert pool.above(pool.encode("the cow"), 0.7) is False  # "the" is left out: 1 < need


# --------------------------------------------------------------------------------------------
# Tokenizers
# --------------------------------------------------------------------------------------------


def test_rouge_tokenizer_drops_non_ascii_letters():
    assert rouge_tokens("Café au lait, 2 cups!") == ["caf", "au", "lait", "2", "cups"]
    assert rouge_tokens("我爱北京") == []
    assert rouge_tokens("İstanbul") == ["i", "stanbul"]


def test_unicode_tokenizer_splits_cjk_into_single_characters():
    assert unicode_tokens("我爱北京天安门") == ["我", "爱", "北", "京", "天", "安", "门"]
    assert unicode_tokens("日本語のテキスト") == ["日", "本", "語", "の", "テ", "キ", "ス", "ト"]
    assert unicode_tokens("Use 北京 today") == ["use", "北", "京", "today"]


def test_unicode_tokenizer_keeps_accented_words_whole():
    assert unicode_tokens("Café NAÏVE déjà-vu") == ["café", "naïve", "déjà", "vu"]
    # Decomposed input is composed by NFKC; compatibility forms are folded.
    assert unicode_tokens("cafe\u0301") == ["café"]
    assert unicode_tokens("ﬁle Ｆｕｌｌ") == ["file", "full"]
    assert unicode_tokens("Straße STRASSE") == ["strasse", "strasse"]
    assert unicode_tokens("snake_case x1") == ["snake", "case", "x1"]


def test_unicode_tokenizer_scores_non_english_text():
    pool = RougePool(unicode_tokens)
    pool.add("我爱北京")
    pool.add("Café crème")
    assert pool.score("我爱上海").scores.tolist() == [0.5, 0.0]
    assert pool.score("café").scores.tolist() == [0.0, pytest.approx(2 / 3)]
    assert rouge_l("我爱北京", "我爱上海", unicode_tokens) == 0.5


def test_unicode_tokenizer_is_only_used_when_chosen():
    assert BootstrapSettings().tokenizer == "rouge"
    assert RougePool().tokenizer is rouge_tokens
    default_pool = RougePool()
    default_pool.add("我爱北京")
    assert default_pool.score("我爱北京").scores.tolist() == [0.0]
    assert get_tokenizer("rouge") is rouge_tokens
    assert get_tokenizer("unicode") is unicode_tokens
    assert set(TOKENIZERS) == {"rouge", "unicode"}
    chosen = RougePool(get_tokenizer("unicode"))
    chosen.add("我爱北京")
    assert chosen.score("我爱北京").scores.tolist() == [1.0]


def test_unknown_tokenizer_name():
    with pytest.raises(ValueError, match="unknown tokenizer 'bpe'"):
        get_tokenizer("bpe")


def test_unicode_tokenizer_keeps_dotted_capital_i_words_whole():
    tokens = unicode_tokens("İstanbul")
    assert len(tokens) == 1
    assert tokens[0].startswith("i")


def test_unicode_tokenizer_keeps_words_with_combining_marks_whole():
    assert unicode_tokens("हिन्दी भाषा") == ["हिन्दी", "भाषा"]
