"""Numbers from people's reviews: the paper's Table 2 from their ratings, how far reviewers
agree with each other, and how far a judge agrees with them on the same items.

Definitions (so every number can be recomputed by hand from the exported ratings):
- only complete ratings count (the three questions and the A-D rating answered);
- an item rated by several reviewers counts once in Table 2: a question is "yes" only when
  every reviewer of the item said yes, and its rating is the worst any of them gave
  (the people's verdict, `Verdict`);
- people reject an item when its verdict says "no" to any question, or (with a minimum
  rating) rates it below that minimum: what prepare drops as `human_rejected`;
- between reviewers: for each pair of reviewers with items in common, Cohen's kappa and the
  share of agreement per question and over the A-D rating, on those items;
- judge against people: on the items both judged (a readable judgment) and rated, per
  question and on "all three", accuracy, Cohen's kappa and the precision and recall of the
  judge's rejects (people's "no" as the truth); on the A/B-vs-C/D accept decision; and on
  prepare's decision (the judge's criteria against the people's verdict).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from typing import Any

from selfinstruct.paper import ALL_THREE, QUESTIONS, RATINGS
from selfinstruct.quality.agreement import Agreement, binary_agreement, cohen_kappa
from selfinstruct.quality.judgment import Criteria, Judgment
from selfinstruct.quality.table2 import Judged, QualityTable, quality_table

ACCEPTED_RATINGS = ("A", "B")  # the accept side of the rating, as calibration has it


@dataclass(frozen=True)
class PersonRating:
    """One reviewer's complete rating of one item."""

    instance: str
    reviewer: str
    answers: Mapping[str, bool]  # by QUESTIONS
    rating: str  # one of RATINGS


@dataclass(frozen=True)
class Verdict:
    """What the reviewers of one item said together: yes only where all said yes, and the
    worst rating any gave."""

    instance: str
    answers: Mapping[str, bool]
    rating: str
    reviewers: tuple[str, ...]

    @property
    def all_yes(self) -> bool:
        return all(self.answers[q] for q in QUESTIONS)

    def rejected(self, min_rating: str = "") -> list[str]:
        """Why people reject the item ("output: no", "rating C"); empty when they accept it."""
        found = [f"{q}: no" for q in QUESTIONS if not self.answers[q]]
        if min_rating and RATINGS.index(self.rating) > RATINGS.index(min_rating):
            found.append(f"rating {self.rating}")
        return found


def verdicts(ratings: Iterable[PersonRating]) -> dict[str, Verdict]:
    """The people's verdict on each rated item, by instance id."""
    by_item: dict[str, list[PersonRating]] = defaultdict(list)
    for rating in ratings:
        by_item[rating.instance].append(rating)
    return {
        instance: Verdict(
            instance,
            {q: all(r.answers[q] for r in found) for q in QUESTIONS},
            max((r.rating for r in found), key=RATINGS.index),
            tuple(sorted(r.reviewer for r in found)),
        )
        for instance, found in by_item.items()
    }


def people_table(found: Mapping[str, Verdict], labels: Mapping[str, bool]) -> QualityTable:
    """Table 2 from the people's verdicts; `labels`: each item's classification label."""
    return quality_table(
        Judged(labels.get(instance, False), dict(v.answers), v.rating)
        for instance, v in sorted(found.items())
    )


@dataclass(frozen=True)
class ReviewerPair:
    """Agreement of two reviewers on the items both rated."""

    reviewers: tuple[str, str]
    n: int
    questions: dict[str, tuple[float | None, float | None]]  # (share agreeing, kappa)

    def as_dict(self) -> dict[str, Any]:
        return {
            "reviewers": list(self.reviewers),
            "n": self.n,
            "questions": {
                name: {"agreement": _round(share), "kappa": _round(kappa)}
                for name, (share, kappa) in self.questions.items()
            },
        }


def reviewer_pairs(ratings: Iterable[PersonRating]) -> list[ReviewerPair]:
    """Cohen's kappa between every two reviewers with items in common, per question, on
    "all three" and on the A-D rating."""
    by_reviewer: dict[str, dict[str, PersonRating]] = defaultdict(dict)
    for rating in ratings:
        by_reviewer[rating.reviewer][rating.instance] = rating
    pairs = []
    for first, second in combinations(sorted(by_reviewer), 2):
        shared = sorted(set(by_reviewer[first]) & set(by_reviewer[second]))
        if not shared:
            continue
        a = [by_reviewer[first][i] for i in shared]
        b = [by_reviewer[second][i] for i in shared]
        columns: dict[str, tuple[list[Any], list[Any]]] = {
            q: ([r.answers[q] for r in a], [r.answers[q] for r in b]) for q in QUESTIONS
        }
        columns[ALL_THREE] = ([_all_yes(r) for r in a], [_all_yes(r) for r in b])
        columns["rating"] = ([r.rating for r in a], [r.rating for r in b])
        questions = {
            name: (_share_equal(left, right), cohen_kappa(left, right))
            for name, (left, right) in columns.items()
        }
        pairs.append(ReviewerPair((first, second), len(shared), questions))
    return pairs


@dataclass(frozen=True)
class JudgeAgreement:
    """One judge against the people's verdicts on the items both reviewed."""

    judge: str
    questions: dict[str, Agreement]  # the three questions and "all three"
    rating_accept: Agreement  # A/B as accept, C/D as reject
    decision: Agreement | None  # prepare's verdict (None: prepare asks nothing of a judge)

    @property
    def n(self) -> int:
        return self.questions[ALL_THREE].n

    def as_dict(self) -> dict[str, Any]:
        return {
            "judge": self.judge,
            "n": self.n,
            "questions": {name: found.as_dict() for name, found in self.questions.items()},
            "rating_accept_A_B": self.rating_accept.as_dict(),
            "decision": None if self.decision is None else self.decision.as_dict(),
        }


def judge_agreement(
    judge: str,
    found: Mapping[str, Verdict],
    judgments: Mapping[str, Judgment],
    criteria: Criteria,
) -> JudgeAgreement:
    """How far a judge's readable judgments agree with the people's verdicts (people are
    the truth; True = accepted)."""
    shared = sorted(i for i in found if i in judgments and judgments[i].readable)
    people = [found[i] for i in shared]
    judged = [judgments[i] for i in shared]
    questions = {
        q: binary_agreement([v.answers[q] for v in people], [bool(j.answers[q]) for j in judged])
        for q in QUESTIONS
    }
    questions[ALL_THREE] = binary_agreement(
        [v.all_yes for v in people], [j.all_yes for j in judged]
    )
    accept = binary_agreement(
        [v.rating in ACCEPTED_RATINGS for v in people],
        [(j.rating or "") in ACCEPTED_RATINGS for j in judged],
    )
    decision = None
    if criteria.active:
        decision = binary_agreement(
            [not people_reject(v, criteria) for v in people],
            [not criteria.failures(j) for j in judged],
        )
    return JudgeAgreement(judge, questions, accept, decision)


def people_reject(verdict: Verdict, criteria: Criteria) -> list[str]:
    """Why prepare drops an item people rated (`human_rejected`): any "no", or a rating
    below prepare's minimum."""
    return verdict.rejected(criteria.min_rating)


def _all_yes(rating: PersonRating) -> bool:
    return all(rating.answers[q] for q in QUESTIONS)


def _share_equal(left: Sequence[Any], right: Sequence[Any]) -> float | None:
    if not left:
        return None
    return sum(a == b for a, b in zip(left, right, strict=True)) / len(left)


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
