"""Review by people (`selfinstruct review`) as the rest of a run sees it. It sends no
request, so it is not one of the run's stages; what it gives the others:

- prepare's check `human_rejected` (an instance people rejected is dropped, unless
  prepare.drop_human_rejected is off), ranked before the judge's;
- prepare's gate `prepare.judge_min_kappa`: the judge filters only when its agreement with
  people on prepare's own decision (kappa) is above the threshold;
- the numbers (`review` in run.json, report.json, the card and `Run.quality()`): the paper's
  Table 2 from people, agreement between reviewers and of every judge the run has with them
  (definitions in quality/people.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from selfinstruct.card.document import code
from selfinstruct.config import Config
from selfinstruct.dataset.settings import PrepareSettings
from selfinstruct.engine.context import RunContext
from selfinstruct.errors import RunError
from selfinstruct.filters.reasons import HUMAN_REJECTED
from selfinstruct.filters.screen import Drop, drop_instance
from selfinstruct.quality.agreement import EMPTY_CELL
from selfinstruct.quality.judgment import Criteria
from selfinstruct.quality.people import (
    JudgeAgreement,
    PersonRating,
    Verdict,
    judge_agreement,
    people_reject,
    people_table,
    reviewer_pairs,
    verdicts,
)
from selfinstruct.quality.table2 import table2_markdown
from selfinstruct.stages import judge
from selfinstruct.store.reviews import StoredRating
from selfinstruct.store.run_store import InstanceRecord, RunStore

KEY = "review"  # its numbers' name in run.json and report.json


def person_ratings(store: RunStore) -> list[PersonRating]:
    """The complete ratings in the store (the others are still being given)."""
    return [as_person(r) for r in store.reviews.ratings() if r.complete]


def as_person(rating: StoredRating) -> PersonRating:
    answers = {q: bool(v) for q, v in rating.answers.items()}
    return PersonRating(rating.instance, rating.reviewer, answers, rating.rating or "D")


def criteria_of(config: Config) -> Criteria:
    settings: PrepareSettings = config.section("prepare")
    return Criteria(settings.min_rating, tuple(settings.require_yes))


# -- prepare -------------------------------------------------------------------------------
@dataclass
class PeopleCheck:
    """Prepare's check on people's verdicts: an instance they rejected is dropped
    (`human_rejected`), whatever a judge said of it; its detail says what each reviewer
    said."""

    found: Mapping[str, Verdict]
    ratings: Mapping[str, list[PersonRating]]  # each item's complete ratings
    min_rating: str
    rank: int = 0  # before the judge's: people are the reference
    kept: Counter[str] = field(default_factory=Counter)

    def drop(self, record: InstanceRecord) -> Drop | None:
        verdict = self.found.get(record.id)
        if verdict is None or not verdict.rejected(self.min_rating):
            return None
        said = "; ".join(
            f"{r.reviewer}: {', '.join(reviewer_reasons(r, self.min_rating)) or 'accepted'}"
            for r in self.ratings.get(record.id, [])
        )
        return drop_instance(record, HUMAN_REJECTED, said)

    def warnings(self, dropped: Mapping[str, int], run_dir: Path) -> list[str]:
        return []


def screen(ctx: RunContext) -> PeopleCheck | None:
    """The check prepare applies when people reviewed and prepare.drop_human_rejected is on."""
    settings: PrepareSettings = ctx.config.section("prepare")
    if not settings.drop_human_rejected or not ctx.store.reviews.present:
        return None
    ratings = person_ratings(ctx.store)
    by_item: dict[str, list[PersonRating]] = {}
    for rating in ratings:
        by_item.setdefault(rating.instance, []).append(rating)
    found = verdicts(ratings)
    return PeopleCheck(found, by_item, settings.min_rating) if found else None


def reviewer_reasons(rating: PersonRating, min_rating: str) -> list[str]:
    """Why one reviewer rejects an item ("output: no", "rating C"); empty: accepted."""
    alone = Verdict(rating.instance, rating.answers, rating.rating, (rating.reviewer,))
    return alone.rejected(min_rating)


def check_judge(ctx: RunContext) -> None:
    """With prepare.judge_min_kappa set and a judge that filters: refuse (RunError) unless
    the judge's kappa against people on prepare's decision is above the threshold."""
    settings: PrepareSettings = ctx.config.section("prepare")
    threshold = settings.judge_min_kappa
    criteria = criteria_of(ctx.config)
    if threshold is None or not judge.enabled(ctx.config) or not criteria.active:
        return
    name = judge.judge_name(ctx.config)
    found = current_agreement(ctx)
    run_dir = ctx.store.run_dir
    remedies = (
        f"Review more items (selfinstruct review --run {run_dir}), use a stronger judge, or "
        "lower prepare.judge_min_kappa (--set prepare.judge_min_kappa=none filters on the "
        "judge regardless)."
    )
    if found is None or found.decision is None or not found.n:
        raise RunError(
            f"prepare.judge_min_kappa is {threshold:g}, but no item has both a readable "
            f"judgment by {name} and a complete rating by people, so the judge's agreement "
            f"with people is unknown; the dataset was not written. {remedies}"
        )
    kappa = found.decision.kappa
    if kappa is None:
        raise RunError(
            f"the judge {name}'s agreement with people cannot be measured yet: over the "
            f"{found.n} items both reviewed, the judge or the people gave one and the same "
            "keep/drop verdict to all, so kappa is undefined and prepare.judge_min_kappa "
            f"({threshold:g}) cannot be met; the dataset was not written. {remedies}"
        )
    if kappa <= threshold:
        raise RunError(
            f"the judge {name} agrees too little with people to filter the data: its kappa on "
            f"prepare's keep/drop decision is {kappa:.2f} over {found.n} items both reviewed "
            f"(accuracy {found.decision.accuracy:.0%}), and prepare.judge_min_kappa asks for "
            f"more than {threshold:g}; the dataset was not written. {remedies}"
        )


def current_agreement(ctx: RunContext) -> JudgeAgreement | None:
    """The current judge against people (None without a judge or people's ratings)."""
    if not judge.enabled(ctx.config) or not ctx.store.reviews.present:
        return None
    found = verdicts(person_ratings(ctx.store))
    current = judge.judgments(ctx.store, judge.current_judge(ctx))
    return judge_agreement(judge.judge_name(ctx.config), found, current, criteria_of(ctx.config))


# -- numbers -------------------------------------------------------------------------------
def numbers(ctx: RunContext) -> dict[str, Any]:
    """What people's reviews measured (empty when nobody has completed a rating)."""
    store = ctx.store
    stored = store.reviews.ratings()
    ratings = [as_person(r) for r in stored if r.complete]
    if not ratings:
        return {}
    found = verdicts(ratings)
    stored_labels = store.labels.all()  # instruction id -> (answer, is_classification)
    labels = {
        instance: stored_labels[int(instance.split(".")[0])][1]
        for instance in found
        if int(instance.split(".")[0]) in stored_labels
    }
    criteria = criteria_of(ctx.config)
    return {
        KEY: {
            "sample": len(store.reviews.sample()),
            "rated_items": len(found),
            "ratings": len(ratings),
            "reviewers": reviewer_counts(stored),
            "rejected": sum(1 for v in found.values() if people_reject(v, criteria)),
            "table2": people_table(found, labels).as_dict(),
            "between_reviewers": [pair.as_dict() for pair in reviewer_pairs(ratings)],
            "judges": judge_rows(ctx, found, criteria),
        }
    }


def reviewer_counts(stored: list[StoredRating]) -> dict[str, dict[str, int]]:
    """Per reviewer: complete ratings and ratings still in progress."""
    found: dict[str, dict[str, int]] = {}
    for rating in stored:
        row = found.setdefault(rating.reviewer, {"complete": 0, "in_progress": 0})
        row["complete" if rating.complete else "in_progress"] += 1
    return dict(sorted(found.items()))


def judge_rows(
    ctx: RunContext, found: Mapping[str, Verdict], criteria: Criteria
) -> list[dict[str, Any]]:
    """Every judge the run has (each version of the judgments) against people; the current
    judge first; each by its name (by its version id when the run did not keep it)."""
    versions = ctx.store.records.versions(judge.JUDGMENTS)
    current = judge.current_judge(ctx) if judge.enabled(ctx.config) else ""
    order = sorted(versions, key=lambda version: (version != current, version))
    names = judge.judge_names(ctx.store)
    rows = []
    for version in order:
        if version == current:
            name = judge.judge_name(ctx.config)
        else:
            name = names.get(version, f"judge {version}")
        agreement = judge_agreement(name, found, judge.judgments(ctx.store, version), criteria)
        rows.append({**agreement.as_dict(), "version": version, "current": version == current})
    return rows


# -- text ----------------------------------------------------------------------------------
def summary_lines(found: Mapping[str, Any]) -> list[str]:
    """People's numbers for a terminal: Table 2, reviewers' agreement, judges' agreement."""
    review = found.get(KEY)
    if not review:
        return []
    groups = review["table2"]["groups"]
    lines = [
        f"Review by people: {review['rated_items']:,} items rated ({review['ratings']:,} "
        f"ratings by {len(review['reviewers'])} reviewer(s)); {review['rejected']:,} rejected",
        "  Table 2 (people; 95% Wilson intervals):  all | classification | non-classification",
    ]
    for key, label in (
        ("instruction", "valid instruction"),
        ("input", "appropriate input"),
        ("output", "correct output"),
        ("all three", "all three"),
    ):
        cells = [_cell(groups[g][key]) for g in ("all", "classification", "non-classification")]
        lines.append(f"    {label:<18} " + " | ".join(cells))
    for pair in review["between_reviewers"]:
        kappas = ", ".join(
            f"{name} {_num(values['kappa'])}" for name, values in pair["questions"].items()
        )
        lines.append(f"  kappa {' vs '.join(pair['reviewers'])} (n={pair['n']}): {kappas}")
    for row in review["judges"]:
        kappas = ", ".join(
            f"{name} {_num(values['kappa'])}" for name, values in row["questions"].items()
        )
        decision = row["decision"]
        tail = f"; prepare's decision {_num(decision['kappa'])}" if decision else ""
        lines.append(f"  {row['judge']} vs people (n={row['n']}): kappa {kappas}{tail}")
    return lines


def card_lines(config: Config, found: Mapping[str, Any]) -> list[str]:
    """What the dataset card says of people's review (nothing when there is none)."""
    review = found.get(KEY)
    if not review:
        return []  # nothing to say: a card of a run nobody reviewed reads as it always did
    settings: PrepareSettings = config.section("prepare")
    dropped = (
        "prepare dropped the instances they rejected"
        if settings.drop_human_rejected
        else "prepare kept the instances they rejected (prepare.drop_human_rejected is off)"
    )
    lines = [
        "",
        f"- {len(review['reviewers'])} reviewer(s) rated {review['rated_items']:,} sampled "
        f"instances with the paper's questions and rating; {review['rejected']:,} were "
        f"rejected, and {dropped}. Table 2 from people (95% intervals):",
        "",
        table2_markdown(review["table2"]),
        "",
    ]
    for pair in review["between_reviewers"]:
        first, second = (code(name) for name in pair["reviewers"])
        lines.append(
            f"- Reviewers {first} and {second} agree on {pair['n']:,} items with kappa "
            + ", ".join(
                f"{name} {_num(values['kappa'])}" for name, values in pair["questions"].items()
            )
            + "."
        )
    for row in review["judges"]:
        decision = row["decision"]
        lines.append(
            f"- Judge {code(row['judge'])} against people on {row['n']:,} items: kappa "
            + ", ".join(
                f"{name} {_num(values['kappa'])}" for name, values in row["questions"].items()
            )
            + (f"; on prepare's decision {_num(decision['kappa'])}." if decision else ".")
        )
    return lines


def _cell(share: Mapping[str, Any]) -> str:
    if not share["n"]:
        return EMPTY_CELL
    return f"{share['percent']:.1f}% [{share['low']:.1f}, {share['high']:.1f}] (n={share['n']})"


def _num(value: float | None) -> str:
    return EMPTY_CELL if value is None else f"{value:.2f}"
