"""Judge calibration numbers (kappa, reject precision/recall, Wilson) and the paper's Table 2."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from selfinstruct.paper import QUESTIONS, RATINGS, TABLE2
from selfinstruct.quality.agreement import (
    Agreement,
    binary_agreement,
    cohen_kappa,
    wilson_interval,
)
from selfinstruct.quality.table2 import Judged, Share, quality_table


def classic_2x2() -> tuple[list[bool], list[bool]]:
    """50 items: agree yes 20, agree no 15, human yes / judge no 5, human no / judge yes 10."""
    truth = [True] * 20 + [False] * 15 + [True] * 5 + [False] * 10
    judged = [True] * 20 + [False] * 15 + [False] * 5 + [True] * 10
    return truth, judged


def reference_kappa(truth: list[str], judged: list[str]) -> float:
    """Kappa from an explicit confusion matrix, written independently of the module."""
    cats = sorted(set(truth) | set(judged))
    n = len(truth)
    matrix = {(a, b): 0 for a in cats for b in cats}
    for a, b in zip(truth, judged, strict=True):
        matrix[a, b] += 1
    po = sum(matrix[c, c] for c in cats) / n
    rows = {c: sum(matrix[c, b] for b in cats) for c in cats}
    cols = {c: sum(matrix[a, c] for a in cats) for c in cats}
    pe = sum(rows[c] * cols[c] for c in cats) / (n * n)
    return (po - pe) / (1 - pe)


# --- Cohen's kappa ---------------------------------------------------------------------------


def test_kappa_classic_2x2() -> None:
    truth, judged = classic_2x2()
    # po = 35/50 = 0.7; pe = (25*30 + 25*20) / 50^2 = 0.5; kappa = 0.2 / 0.5 = 0.4
    assert cohen_kappa(truth, judged) == pytest.approx(0.4, abs=1e-12)


def test_kappa_four_categories() -> None:
    truth = list("AAABBCCDDD")
    judged = list("AABBCCCDDA")
    # po = 7/10; marginals truth A3 B2 C2 D3, judge A3 B2 C3 D2;
    # pe = (9 + 4 + 6 + 6) / 100 = 0.25; kappa = 0.45 / 0.75 = 0.6
    assert cohen_kappa(truth, judged) == pytest.approx(0.6, abs=1e-12)


def test_kappa_perfect_and_single_category() -> None:
    assert cohen_kappa(list("ABCD"), list("ABCD")) == 1.0
    assert cohen_kappa([True, False, True], [True, False, True]) == 1.0
    # p_e == 1: both raters use one and the same category throughout -> undefined
    assert cohen_kappa(["A"] * 5, ["A"] * 5) is None


def test_kappa_chance_and_worse() -> None:
    # judge always says yes, humans split: po = 0.5, pe = 0.5 -> 0
    assert cohen_kappa([True, False, True, False], [True] * 4) == pytest.approx(0.0)
    # complete disagreement on a balanced split: po = 0, pe = 0.5 -> -1
    assert cohen_kappa([True, False], [False, True]) == pytest.approx(-1.0)


def test_kappa_none_and_lengths() -> None:
    assert cohen_kappa([], []) is None
    with pytest.raises(ValueError):
        cohen_kappa([True], [True, False])


@given(
    st.lists(st.tuples(st.sampled_from("ABCD"), st.sampled_from("ABCD")), min_size=1, max_size=60)
)
def test_kappa_matches_confusion_matrix(pairs: list[tuple[str, str]]) -> None:
    truth = [a for a, _ in pairs]
    judged = [b for _, b in pairs]
    kappa = cohen_kappa(truth, judged)
    if len(set(truth)) == 1 and set(truth) == set(judged):
        assert kappa is None  # p_e == 1: undefined
    else:
        assert kappa is not None
        assert kappa == pytest.approx(reference_kappa(truth, judged), abs=1e-9)
        assert -1.0 <= kappa <= 1.0


def test_kappa_matches_sklearn() -> None:
    # scikit-learn is in the test extra: a missing one fails here rather than skipping
    from sklearn.metrics import cohen_kappa_score  # type: ignore[import-not-found]

    truth, judged = list("AAABBCCDDDBA"), list("AABBCCCDDAAB")
    assert cohen_kappa(truth, judged) == pytest.approx(cohen_kappa_score(truth, judged))


# --- binary agreement ------------------------------------------------------------------------


def test_binary_agreement_classic() -> None:
    truth, judged = classic_2x2()
    result = binary_agreement(truth, judged)
    assert result.n == 50
    assert result.accuracy == pytest.approx(0.7)
    # the judge rejected 15 + 5 = 20, of which humans rejected 15
    assert result.reject_precision == pytest.approx(0.75)
    # humans rejected 15 + 10 = 25, of which the judge rejected 15
    assert result.reject_recall == pytest.approx(0.6)
    assert result.kappa == pytest.approx(0.4)


def test_binary_agreement_small_hand_example() -> None:
    truth = [True, False, False, True, False, True]
    judged = [True, False, True, False, False, True]
    result = binary_agreement(truth, judged)
    assert result.n == 6
    assert result.accuracy == pytest.approx(4 / 6)
    assert result.reject_precision == pytest.approx(2 / 3)  # judge rejected items 1, 3, 4
    assert result.reject_recall == pytest.approx(2 / 3)  # humans rejected items 1, 2, 4
    # po = 4/6; both raters 3 yes / 3 no -> pe = 0.5; kappa = (2/3 - 1/2) / (1/2) = 1/3
    assert result.kappa == pytest.approx(1 / 3)
    assert result.as_dict() == {
        "n": 6,
        "accuracy": 0.6667,
        "reject_precision": 0.6667,
        "reject_recall": 0.6667,
        "kappa": 0.3333,
    }


def test_binary_agreement_none_cases() -> None:
    # judge rejected none -> precision None; humans rejected one -> recall 0
    result = binary_agreement([True, False, True], [True, True, True])
    assert result.reject_precision is None
    assert result.reject_recall == 0.0
    # humans rejected none -> recall None; judge rejected one -> precision 0
    result = binary_agreement([True, True, True], [True, False, True])
    assert result.reject_recall is None
    assert result.reject_precision == 0.0
    assert result.accuracy == pytest.approx(2 / 3)
    assert binary_agreement([], []) == Agreement(
        n=0, accuracy=0.0, reject_precision=None, reject_recall=None, kappa=None
    )
    assert binary_agreement([], []).as_dict()["kappa"] is None


def test_binary_agreement_lengths() -> None:
    with pytest.raises(ValueError):
        binary_agreement([True, False], [True])


# --- Wilson interval -------------------------------------------------------------------------


def test_wilson_known_values() -> None:
    low, high = wilson_interval(0, 10)
    assert low == pytest.approx(0.0, abs=1e-12)
    assert high == pytest.approx(0.2775, abs=1e-3)
    assert high == pytest.approx(0.27753, abs=1e-4)
    low, high = wilson_interval(5, 10)
    assert low == pytest.approx(0.2366, abs=1e-3)
    assert high == pytest.approx(0.7634, abs=1e-3)
    low, high = wilson_interval(10, 10)
    assert low == pytest.approx(1 - 0.27753, abs=1e-4)
    assert high == pytest.approx(1.0, abs=1e-12)


def test_wilson_empty_and_invalid() -> None:
    assert wilson_interval(0, 0) == (0.0, 1.0)
    for k, n in [(-1, 5), (6, 5), (0, -1)]:
        with pytest.raises(ValueError):
            wilson_interval(k, n)


@given(
    st.integers(min_value=1, max_value=2000).flatmap(
        lambda n: st.tuples(st.just(n), st.integers(0, n))
    )
)
def test_wilson_contains_estimate_and_is_symmetric(case: tuple[int, int]) -> None:
    n, k = case
    low, high = wilson_interval(k, n)
    assert 0.0 <= low <= k / n <= high <= 1.0
    mirror_low, mirror_high = wilson_interval(n - k, n)
    assert low == pytest.approx(1 - mirror_high, abs=1e-9)
    assert high == pytest.approx(1 - mirror_low, abs=1e-9)


# --- Table 2 ---------------------------------------------------------------------------------


def judged(clf: bool, answers: str, rating: str) -> Judged:
    """`answers`: one 'y'/'n' per question, in QUESTIONS order."""
    return Judged(clf, {q: a == "y" for q, a in zip(QUESTIONS, answers, strict=True)}, rating)


SAMPLE = [
    judged(True, "yyy", "A"),
    judged(True, "yyn", "C"),
    judged(True, "nyy", "B"),
    judged(False, "yyy", "A"),
    judged(False, "yyy", "B"),
    judged(False, "yny", "B"),
    judged(False, "ynn", "D"),
    judged(False, "nnn", "D"),
]


def counts(table_group: dict[str, Share]) -> dict[str, tuple[int, int]]:
    return {row: (share.yes, share.n) for row, share in table_group.items()}


def test_quality_table_counts_by_group() -> None:
    table = quality_table(SAMPLE, unparseable=3)
    assert table.unparseable == 3
    assert counts(table.groups["classification"]) == {
        "instruction": (2, 3),
        "input": (3, 3),
        "output": (2, 3),
        "all three": (1, 3),
        "rating A": (1, 3),
        "rating B": (1, 3),
        "rating C": (1, 3),
        "rating D": (0, 3),
    }
    assert counts(table.groups["non-classification"]) == {
        "instruction": (4, 5),
        "input": (2, 5),
        "output": (3, 5),
        "all three": (2, 5),
        "rating A": (1, 5),
        "rating B": (2, 5),
        "rating C": (0, 5),
        "rating D": (2, 5),
    }
    assert counts(table.groups["all"]) == {
        "instruction": (6, 8),
        "input": (5, 8),
        "output": (5, 8),
        "all three": (3, 8),
        "rating A": (2, 8),
        "rating B": (3, 8),
        "rating C": (1, 8),
        "rating D": (2, 8),
    }
    assert table.groups["all"]["instruction"].percent == pytest.approx(75.0)


def test_all_three_needs_every_answer_yes() -> None:
    # each item fails exactly one question: every single row is 2/3 yes, all three is 0
    items = [judged(False, answers, "C") for answers in ("nyy", "yny", "yyn")]
    rows = quality_table(items).groups["all"]
    assert [(rows[q].yes, rows[q].n) for q in QUESTIONS] == [(2, 3)] * 3
    assert (rows["all three"].yes, rows["all three"].n) == (0, 3)


def test_rating_shares_sum_to_100() -> None:
    table = quality_table(SAMPLE)
    for group in table.groups.values():
        total = sum(group[f"rating {r}"].percent or 0.0 for r in RATINGS)
        assert total == pytest.approx(100.0)


def test_share_numbers() -> None:
    share = Share(yes=5, n=10)
    assert share.percent == 50.0
    interval = share.interval
    assert interval is not None
    assert interval[0] == pytest.approx(23.66, abs=0.1)
    assert interval[1] == pytest.approx(76.34, abs=0.1)
    assert share.as_dict() == {"yes": 5, "n": 10, "percent": 50.0, "low": 23.7, "high": 76.3}
    empty = Share(yes=0, n=0)
    assert empty.percent is None
    assert empty.interval is None
    assert empty.as_dict() == {"yes": 0, "n": 0, "percent": None, "low": None, "high": None}


def test_empty_groups_present_and_formatted() -> None:
    table = quality_table([judged(False, "yyy", "A")] * 4)
    assert set(table.groups) == {"all", "classification", "non-classification"}
    assert all(share.n == 0 for share in table.groups["classification"].values())
    text = table.format()
    lines = text.splitlines()
    assert "92%" in lines[0] and "54%" in lines[0]  # the paper's numbers in the header
    header = lines[1].split()
    assert header[-1] == "paper"
    instruction = next(line for line in lines if line.startswith("valid instruction"))
    assert "–" in instruction
    assert "100.0% [51.0, 100.0] (n=4)" in instruction
    assert instruction.rstrip().endswith("92%")
    rating_d = next(line for line in lines if line.startswith("rating D"))
    assert "0.0% [0.0, 49.0] (n=4)" in rating_d
    assert not rating_d.rstrip().endswith("%")  # no paper number for rating rows


def test_empty_table() -> None:
    table = quality_table([], unparseable=2)
    for group in table.groups.values():
        assert all(share.n == 0 and share.percent is None for share in group.values())
    text = table.format()
    assert "unparseable" in text and "2" in text.splitlines()[-1]
    data = table.as_dict()
    assert data["unparseable"] == 2
    assert data["paper"] == dict(TABLE2)
    assert data["groups"]["all"]["all three"]["percent"] is None


def test_format_cell_like_example() -> None:
    items = [judged(True, "yyy", "A")] * 230 + [judged(True, "nyy", "B")] * 20
    text = quality_table(items).format()
    assert "92.0% [88.0, 94.8] (n=250)" in text


def test_quality_table_rejects_bad_items() -> None:
    with pytest.raises(ValueError):
        quality_table([Judged(True, {"instruction": True, "input": True}, "A")])
    with pytest.raises(ValueError):
        quality_table([judged(True, "yyy", "E")])
