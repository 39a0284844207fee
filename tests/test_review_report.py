"""The report's review by people: report.json's "review" numbers recomputed by hand from the
ratings put in the store (Table 2 per group with Wilson intervals, Cohen's kappa between
reviewers and of each judge against people, from their 2x2 tables), the page's Review section
showing them with every reviewer's and judge's name escaped, the hint on a run nobody
reviewed, and --compare across a reviewed and an unreviewed run."""

from __future__ import annotations

import json
import random
import re
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Any

import pytest
from conftest import cli

from selfinstruct.quality.agreement import wilson_interval
from selfinstruct.reviewing.sample import ensure_sample
from selfinstruct.store.run_store import RunStore
from selfinstruct.views.tasks import parsed_tasks

QUESTIONS = ("instruction", "input", "output")
HOSTILE = "<script>alert(1)</script>"
ALICE = "alice"
SAMPLE = 14


def fake_run(directory: Path, n: int, *extra: str) -> Path:
    cli(
        "run", "--out", directory, "--backend", "fake", "--num-instructions", n, "-q",
        "--set", "prepare.report=false", *extra,
    )  # fmt: skip
    return directory


@dataclass(frozen=True)
class Given:
    """One complete rating as the test gave it."""

    instance: str
    reviewer: str
    answers: dict[str, bool]
    rating: str


@dataclass(frozen=True)
class Reviewed:
    run: Path
    given: list[Given]
    labels: dict[str, bool]  # each sampled instance's classification label
    report: dict[str, Any]
    html: str


def rate(run: Path) -> tuple[list[Given], dict[str, bool]]:
    """Draw a review sample and rate it: alice the first 10 items, the hostile name items 4
    to 13; on the 6 both rate, the hostile name differs from alice now and then. Alice also
    leaves one rating unfinished (it must not count)."""
    rng = random.Random(25)
    given = []
    with RunStore.open(run) as store:
        tasks = parsed_tasks(store, "completion")
        sample = ensure_sample(store, tasks, SAMPLE, "one", "test")
        assert len(sample) == SAMPLE
        labels = {item.instance: item.is_classification for item in sample}
        base = {
            item.instance: ({q: rng.random() < 0.65 for q in QUESTIONS}, rng.choice("AABCD"))
            for item in sample
        }
        for reviewer, items in ((ALICE, sample[:10]), (HOSTILE, sample[4:])):
            for k, item in enumerate(items):
                answers, rating = dict(base[item.instance][0]), base[item.instance][1]
                if reviewer == HOSTILE and k in DIFFERENT:
                    question = DIFFERENT[k]
                    if question == "rating":
                        rating = "ABCD"[("ABCD".index(rating) + 2) % 4]
                    else:
                        answers[question] = not answers[question]
                for question in QUESTIONS:
                    value = answers[question]
                    store.reviews.answer(reviewer, item.instance, item.digest, question, value)
                store.reviews.answer(reviewer, item.instance, item.digest, "rating", rating)
                given.append(Given(item.instance, reviewer, answers, rating))
        unfinished = sample[10]
        store.reviews.answer(ALICE, unfinished.instance, unfinished.digest, "instruction", True)
    return given, labels


# Where the hostile name answers otherwise than alice on the items both rate (by position).
DIFFERENT = {0: "instruction", 1: "output", 2: "rating", 4: "input", 5: "rating"}


def plant_an_earlier_judge(run: Path, earlier: str) -> None:
    """The fake judge answers alike whatever its name: make the earlier one's stored
    judgments differ (every other instance rated D with a "no" to output), so the two rows
    of the report can only match their own judgments."""
    with sqlite3.connect(run / "selfinstruct.db") as db:
        db.execute(
            "UPDATE judgments SET rating = 'D', output_ok = 0 "
            "WHERE judge = ? AND (instruction_id + position) % 2 = 0",
            (earlier,),
        )


def report_of(run: Path, out: Path, *extra: str) -> tuple[dict[str, Any], str]:
    cli("report", "--run", run, "--out", out, "--no-verbs", *extra)
    return json.loads(out.with_suffix(".json").read_text()), out.read_text()


@pytest.fixture(scope="module")
def reviewed(tmp_path_factory: pytest.TempPathFactory) -> Reviewed:
    """A run judged by one judge, then by another (so it has an earlier and a current one),
    rated by two reviewers."""
    run = tmp_path_factory.mktemp("review") / "run"
    fake_run(run, 30, "--judge", "fake:judge-1")
    (earlier,) = judgments(run)
    fake_run(run, 30, "--judge", "fake:judge-2")
    plant_an_earlier_judge(run, earlier)
    given, labels = rate(run)
    report, html = report_of(run, run.parent / "r.html")
    return Reviewed(run, given, labels, report, html)


# -- by hand -------------------------------------------------------------------------------
def worst(ratings: Sequence[str]) -> str:
    return max(ratings, key="ABCD".index)


def verdicts(given: Sequence[Given]) -> dict[str, tuple[dict[str, bool], str]]:
    """Per instance: yes where every reviewer said yes, and the worst rating."""
    by_item: dict[str, list[Given]] = {}
    for rating in given:
        by_item.setdefault(rating.instance, []).append(rating)
    return {
        instance: (
            {q: all(r.answers[q] for r in found) for q in QUESTIONS},
            worst([r.rating for r in found]),
        )
        for instance, found in by_item.items()
    }


def share(yes: int, n: int) -> dict[str, Any]:
    low, high = wilson_interval(yes, n)
    return {
        "yes": yes,
        "n": n,
        "percent": round(100 * yes / n, 1),
        "low": round(100 * low, 1),
        "high": round(100 * high, 1),
    }


def kappa_2x2(first: Sequence[bool], second: Sequence[bool]) -> float | None:
    """Cohen's kappa from the 2x2 table of two raters' yes/no answers."""
    n = len(first)
    both_yes = sum(a and b for a, b in zip(first, second, strict=True))
    yes_no = sum(a and not b for a, b in zip(first, second, strict=True))
    no_yes = sum(b and not a for a, b in zip(first, second, strict=True))
    both_no = n - both_yes - yes_no - no_yes
    observed = (both_yes + both_no) / n
    chance = (
        (both_yes + yes_no) * (both_yes + no_yes) + (no_yes + both_no) * (yes_no + both_no)
    ) / (n * n)
    return None if chance == 1 else round((observed - chance) / (1 - chance), 4)


def kappa_ratings(first: Sequence[str], second: Sequence[str]) -> float | None:
    """Cohen's kappa from the 4x4 table of two raters' A-D ratings."""
    n = len(first)
    observed = sum(a == b for a, b in zip(first, second, strict=True)) / n
    left, right = Counter(first), Counter(second)
    chance = sum(left[c] * right[c] for c in "ABCD") / (n * n)
    return None if chance == 1 else round((observed - chance) / (1 - chance), 4)


def agreement(truth: Sequence[bool], judged: Sequence[bool]) -> dict[str, Any]:
    """A judge's answers against people's (True: accepted)."""
    pairs = list(zip(truth, judged, strict=True))
    both_reject = sum(not t and not j for t, j in pairs)
    judge_rejects = sum(not j for _, j in pairs)
    people_reject = sum(not t for t, _ in pairs)
    return {
        "n": len(pairs),
        "accuracy": round(sum(t == j for t, j in pairs) / len(pairs), 4),
        "reject_precision": round(both_reject / judge_rejects, 4) if judge_rejects else None,
        "reject_recall": round(both_reject / people_reject, 4) if people_reject else None,
        "kappa": kappa_2x2(truth, judged),
    }


def judgments(run: Path) -> dict[str, dict[str, tuple[dict[str, bool], str]]]:
    """Every judge version's readable judgments, by instance id."""
    with sqlite3.connect(run / "selfinstruct.db") as db:
        rows = db.execute(
            "SELECT instruction_id, position, judge, instruction_ok, input_ok, output_ok, rating "
            "FROM judgments"
        ).fetchall()
    found: dict[str, dict[str, tuple[dict[str, bool], str]]] = {}
    for instruction_id, position, judge, *flags, rating in rows:
        if None in (*flags, rating):
            continue
        answers = {q: bool(v) for q, v in zip(QUESTIONS, flags, strict=True)}
        found.setdefault(judge, {})[f"{instruction_id}.{position}"] = (answers, rating)
    return found


# -- report.json ---------------------------------------------------------------------------
def test_who_rated_what(reviewed: Reviewed) -> None:
    review = reviewed.report["review"]
    found = verdicts(reviewed.given)
    rejected = [
        i for i, (answers, rating) in found.items() if not all(answers.values()) or rating in "CD"
    ]
    assert review["sample"] == SAMPLE
    assert review["rated_items"] == len(found) == 14
    assert review["ratings"] == len(reviewed.given) == 20
    assert review["reviewers"] == {
        HOSTILE: {"complete": 10, "in_progress": 0},
        ALICE: {"complete": 10, "in_progress": 1},
    }
    assert review["rejected"] == len(rejected)


def test_table2_from_people_matches_a_count_by_hand(reviewed: Reviewed) -> None:
    found = verdicts(reviewed.given)
    members = {
        "all": list(found),
        "classification": [i for i in found if reviewed.labels[i]],
        "non-classification": [i for i in found if not reviewed.labels[i]],
    }
    assert members["classification"] and members["non-classification"]
    table = reviewed.report["review"]["table2"]
    for group, items in members.items():
        rows = table["groups"][group]
        for question in QUESTIONS:
            assert rows[question] == share(sum(found[i][0][question] for i in items), len(items))
        assert rows["all three"] == share(sum(all(found[i][0].values()) for i in items), len(items))
        for letter in "ABCD":
            assert rows[f"rating {letter}"] == share(
                sum(found[i][1] == letter for i in items), len(items)
            )
    assert table["paper"]["instruction"] == 92.0


def test_agreement_between_reviewers_matches_kappa_by_hand(reviewed: Reviewed) -> None:
    by = {(g.reviewer, g.instance): g for g in reviewed.given}
    shared = sorted(i for (r, i) in by if r == ALICE and (HOSTILE, i) in by)
    assert len(shared) == 6
    first = [by[(HOSTILE, i)] for i in shared]  # names sorted: "<" before "a"
    second = [by[(ALICE, i)] for i in shared]
    columns: dict[str, tuple[list[Any], list[Any]]] = {
        q: ([g.answers[q] for g in first], [g.answers[q] for g in second]) for q in QUESTIONS
    }
    columns["all three"] = (
        [all(g.answers.values()) for g in first],
        [all(g.answers.values()) for g in second],
    )
    expected = {
        name: {
            "agreement": round(sum(a == b for a, b in zip(*pair, strict=True)) / len(shared), 4),
            "kappa": kappa_2x2(*pair),
        }
        for name, pair in columns.items()
    }
    ratings = ([g.rating for g in first], [g.rating for g in second])
    expected["rating"] = {
        "agreement": round(sum(a == b for a, b in zip(*ratings, strict=True)) / len(shared), 4),
        "kappa": kappa_ratings(*ratings),
    }
    assert reviewed.report["review"]["between_reviewers"] == [
        {"reviewers": [HOSTILE, ALICE], "n": len(shared), "questions": expected}
    ]
    # not a vacuous check: kappa defined and below 1 where they differ
    assert all(expected[q]["agreement"] < 1 for q in set(DIFFERENT.values()))
    assert all(v["kappa"] is not None for v in expected.values())


def test_every_judge_against_people_matches_a_count_by_hand(reviewed: Reviewed) -> None:
    found = verdicts(reviewed.given)
    stored = judgments(reviewed.run)
    rows = reviewed.report["review"]["judges"]
    assert len(stored) == 2 and sorted(r["version"] for r in rows) == sorted(stored)
    assert [r["current"] for r in rows] == [True, False]
    assert rows[0]["judge"] == reviewed.report["quality"]["judge"] == "fake:judge-2"
    assert rows[1]["judge"] == "fake:judge-1"  # the run kept the earlier judge's name
    assert rows[0]["questions"] != rows[1]["questions"]
    for row in rows:
        judged = stored[row["version"]]
        shared = sorted(i for i in found if i in judged)
        people = [found[i] for i in shared]
        judge = [judged[i] for i in shared]
        assert row["n"] == len(shared) > 0
        for question in QUESTIONS:
            assert row["questions"][question] == agreement(
                [p[0][question] for p in people], [j[0][question] for j in judge]
            )
        assert row["questions"]["all three"] == agreement(
            [all(p[0].values()) for p in people], [all(j[0].values()) for j in judge]
        )
        assert row["rating_accept_A_B"] == agreement(
            [p[1] in "AB" for p in people], [j[1] in "AB" for j in judge]
        )
        # prepare's decision (min_rating B by default): people keep an instance with every
        # answer yes and a rating of at least B; the judge's keep is its rating alone.
        assert row["decision"] == agreement(
            [all(p[0].values()) and p[1] in "AB" for p in people], [j[1] in "AB" for j in judge]
        )


# -- the page ------------------------------------------------------------------------------
def review_section(html: str) -> str:
    found = re.search(r'<section id="review">.*?</section>', html, re.S)
    assert found, "no Review section"
    return found.group(0)


def test_the_page_shows_the_review_section_after_quality(reviewed: Reviewed) -> None:
    html = reviewed.html
    assert html.index('<section id="quality">') < html.index('<section id="review">')
    assert html.index('<section id="review">') < html.index('<section id="diversity">')
    assert '<a href="#review">Review</a>' in html
    section = review_section(html)
    review = reviewed.report["review"]
    assert (
        f"{review['rated_items']} instances rated ({review['ratings']} complete ratings, "
        f"from a sample of {SAMPLE}) by 2 reviewers" in section
    )
    assert f"{escape(HOSTILE)} 10, {ALICE} 10 (+1 in progress)" in section
    assert f"People rejected {review['rejected']} of them" in section
    every = review["table2"]["groups"]["all"]["all three"]
    assert (
        f"{every['percent']:.1f}% <small>[{every['low']:.1f}, {every['high']:.1f}], "
        f"n={every['n']}</small>" in section
    )
    pair = review["between_reviewers"][0]
    assert f"<td>{escape(HOSTILE)} and {ALICE}</td><td>{pair['n']}</td>" in section
    for row in review["judges"]:
        assert escape(row["judge"]) in section
        decision = row["decision"]["kappa"]
        assert f"<td>{decision:.2f}</td>" in section
    assert "current judge" in section and "an earlier judge" in section
    # the quality section does not list the review's numbers as an unknown stage's
    quality = re.search(r'<section id="quality">.*?</section>', html, re.S)
    assert quality and "review:" not in quality.group(0)


def test_a_hostile_reviewer_name_is_escaped(reviewed: Reviewed) -> None:
    html = reviewed.html
    assert HOSTILE not in html
    assert escape(HOSTILE) in review_section(html)


def test_a_run_nobody_reviewed_has_no_review_section(tmp_path: Path) -> None:
    """A report of a run nobody reviewed reads as it did before reviews existed (the
    compatibility tests hold its bytes); the guide tells of the command."""
    run = fake_run(tmp_path / "run", 8)
    report, html = report_of(run, tmp_path / "r.html")
    assert "review" not in report
    assert 'id="review"' not in html and 'href="#review"' not in html
    assert "Rated by people" not in html


def test_compare_across_a_reviewed_and_an_unreviewed_run(
    reviewed: Reviewed, tmp_path: Path
) -> None:
    other = fake_run(tmp_path / "plain", 8)
    every = reviewed.report["review"]["table2"]["groups"]["all"]["all three"]
    rated = f"14 instances, all three valid {every['percent']:.1f}%"
    for first, second in ((reviewed.run, other), (other, reviewed.run)):
        out = tmp_path / f"{first.name}.html"
        report, html = report_of(first, out, "--compare", second)
        compare = re.search(r'<section id="compare">.*?</section>', html, re.S)
        assert compare
        cells = re.search(r"<tr><td>Rated by people</td>(.*?)</tr>", compare.group(0))
        assert cells
        expected = [rated, "–"] if first == reviewed.run else ["–", rated]
        assert re.findall(r"<td>(.*?)</td>", cells.group(1)) == expected
        assert ("review" in report) == (first == reviewed.run)
        assert [("review" in r) for r in report["compared"]] == [second == reviewed.run]
        assert ('id="review"' in html) == (first == reviewed.run)
