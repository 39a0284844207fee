"""Review by people: the sample, the stored ratings (answers, undo), the numbers recomputed by
hand from the stored ratings (Table 2, Wilson intervals, kappa between reviewers and against
the judge), prepare's use of them (human_rejected, judge_min_kappa), export and import, and
the Python API."""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from conftest import cli, read_jsonl

from selfinstruct.api import Run
from selfinstruct.errors import InputError
from selfinstruct.reviewing.sample import ALL, ensure_sample
from selfinstruct.run.open import viewed
from selfinstruct.store.reviews import SampleItem
from selfinstruct.store.run_store import RunStore
from selfinstruct.views.tasks import ParsedTask, parsed_tasks

QUESTIONS = ("instruction", "input", "output")
NO_REPORT = ("--quiet", "--set", "prepare.report=false")


@pytest.fixture(scope="module")
def judged_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fake run of 40 instructions with a fake judge (made once per module)."""
    out = tmp_path_factory.mktemp("review") / "run"
    cli(
        "run",
        "--backend",
        "fake",
        "--num-instructions",
        "40",
        "--judge",
        "fake",
        "--out",
        out,
        *NO_REPORT,
    )
    return out


@pytest.fixture
def run(judged_run: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(judged_run, copy)
    return copy


def tasks_of(run: Path) -> list[ParsedTask]:
    with viewed(run, quiet=True) as ctx:
        return parsed_tasks(ctx.store, ctx.config.prompt_style)


def draw(run: Path, size: int, per_task: str = "one") -> list[SampleItem]:
    tasks = tasks_of(run)
    with RunStore.open(run) as store:
        return ensure_sample(store, tasks, size, per_task, "42")


def rate(run: Path, reviewer: str, items: list[SampleItem], plan: list[tuple[Any, ...]]) -> None:
    """Give `reviewer`'s answers: plan[i] = (instruction, input, output, rating) for items[i]."""
    with RunStore.open(run) as store:
        for item, answers in zip(items, plan, strict=False):
            for field, value in zip((*QUESTIONS, "rating"), answers, strict=True):
                store.reviews.answer(reviewer, item.instance, item.digest, field, value)


def plan_for(count: int, salt: int) -> list[tuple[Any, ...]]:
    """A fixed mix of answers, different per salt."""
    found = []
    for i in range(count):
        k = (i * 7 + salt * 3) % 11
        found.append((k != 0, k % 3 != 1, k % 4 != 2, "ABCD"[(i + salt) % 4]))
    return found


# -- the sample -----------------------------------------------------------------------------
def test_sample_is_reproducible_stratified_and_one_per_instruction(run: Path) -> None:
    first = draw(run, 20)
    assert len(first) == 20
    other = run.parent / "again"
    shutil.copytree(run, other)
    with RunStore.open(other) as store:
        store.db.execute("DELETE FROM review_items")
    assert [i.instance for i in draw(other, 20)] == [i.instance for i in first]
    instructions = [item.instance.split(".")[0] for item in first]
    assert len(set(instructions)) == 20  # one instance per instruction
    tasks = tasks_of(run)
    share = sum(t.is_classification for t in tasks if t.instances) / sum(
        1 for t in tasks if t.instances
    )
    classification = sum(item.is_classification for item in first)
    assert classification in (math.floor(20 * share), math.ceil(20 * share))
    for prefix in (5, 10, 15):  # every prefix is stratified too
        found = sum(item.is_classification for item in first[:prefix])
        assert abs(found - prefix * share) <= 1


def test_a_larger_sample_extends_the_stored_one_and_other_draws_are_refused(run: Path) -> None:
    first = draw(run, 10)
    grown = draw(run, 25)
    assert [i.instance for i in grown[:10]] == [i.instance for i in first]
    assert len(grown) == 25
    assert len(draw(run, 5)) == 25  # never shrinks
    every = draw(run, ALL)
    assert len(every) == sum(1 for t in tasks_of(run) if t.instances)
    with pytest.raises(InputError, match="--per-task one"):
        draw(run, 10, per_task="all")


def test_per_task_all_samples_every_instance(run: Path) -> None:
    every = draw(run, ALL, per_task="all")
    assert len(every) == sum(len(t.instances) for t in tasks_of(run))


# -- answers, undo ----------------------------------------------------------------------------
def test_answers_are_stored_one_by_one_and_undo_walks_them_back(run: Path) -> None:
    items = draw(run, 3)
    first = items[0]
    with RunStore.open(run) as store:
        store.reviews.answer("ann", first.instance, first.digest, "instruction", True)
        store.reviews.answer("ann", first.instance, first.digest, "input", False)
    with RunStore.open_readonly(run) as store:  # committed: another connection sees them
        (stored,) = store.reviews.ratings("ann")
        assert stored.answers == {"instruction": True, "input": False, "output": None}
        assert not stored.complete
    with RunStore.open(run) as store:
        store.reviews.answer("ann", first.instance, first.digest, "input", True)
        undone = store.reviews.undo("ann")
        assert undone is not None and undone.answers["input"] is False
        undone = store.reviews.undo("ann")
        assert undone is not None and undone.answers["input"] is None
        store.reviews.undo("ann")
        assert store.reviews.undo("ann") is None  # nothing left
        assert store.reviews.ratings("ann") == []  # a rating with nothing in it is not listed
        with pytest.raises(ValueError, match="rating"):
            store.reviews.answer("ann", first.instance, first.digest, "rating", "E")


# -- the numbers, by hand ---------------------------------------------------------------------
def wilson(k: int, n: int) -> tuple[float, float]:
    z = 1.959964
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (0.0 if k == 0 else centre - half, 1.0 if k == n else centre + half)


def kappa(a: list[Any], b: list[Any]) -> float:
    n = len(a)
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in ca) / (n * n)
    return (observed - expected) / (1 - expected)


def test_numbers_are_what_the_stored_ratings_give_by_hand(run: Path) -> None:
    items = draw(run, 20)
    rate(run, "alice", items[:14], plan_for(14, 1))
    rate(run, "bob", items[6:20], plan_for(14, 2))
    with RunStore.open(run) as store:  # one rating left in progress: it counts nowhere
        store.reviews.answer("carol", items[0].instance, items[0].digest, "instruction", False)
    numbers = Run.open(run).quality()["review"]
    ratings = [r for r in Run.open(run).reviews() if r.complete]
    assert len(ratings) == 28 and numbers["ratings"] == 28
    assert numbers["reviewers"]["carol"] == {"complete": 0, "in_progress": 1}
    by_item: dict[str, list[Any]] = {}
    for r in ratings:
        by_item.setdefault(r.instance, []).append(r)
    assert numbers["rated_items"] == len(by_item) == 20
    labels = {item.instance: item.is_classification for item in items}
    for group, member in (
        ("all", lambda i: True),
        ("classification", lambda i: labels[i]),
        ("non-classification", lambda i: not labels[i]),
    ):
        chosen = [found for i, found in by_item.items() if member(i)]
        for q in QUESTIONS:
            yes = sum(all(r.answers[q] for r in found) for found in chosen)
            cell = numbers["table2"]["groups"][group][q]
            assert (cell["yes"], cell["n"]) == (yes, len(chosen))
            if chosen:
                low, high = wilson(yes, len(chosen))
                assert cell["low"] == round(100 * low, 1) and cell["high"] == round(100 * high, 1)
        worst = Counter(max((r.rating for r in found), key="ABCD".index) for found in chosen)
        for rating in "ABCD":
            assert numbers["table2"]["groups"][group][f"rating {rating}"]["yes"] == worst[rating]
    (pair,) = numbers["between_reviewers"]
    shared = sorted(set(i.instance for i in items[6:14]))
    assert pair["reviewers"] == ["alice", "bob"] and pair["n"] == len(shared) == 8
    mine = {(r.reviewer, r.instance): r for r in ratings}
    for q in QUESTIONS:
        a = [mine["alice", i].answers[q] for i in shared]
        b = [mine["bob", i].answers[q] for i in shared]
        expected = None if len(set(a) | set(b)) == 1 else round(kappa(a, b), 4)
        assert pair["questions"][q]["kappa"] == expected


def test_judge_agreement_with_people_by_hand(run: Path) -> None:
    items = draw(run, 20)
    rate(run, "alice", items, plan_for(20, 3))
    numbers = Run.open(run).quality()["review"]
    (row,) = numbers["judges"]
    assert row["current"] and row["judge"] == "fake:fake-1"
    judged = Run.open(run).judgments()
    people = {r.instance: r for r in Run.open(run).reviews()}
    shared = sorted(i for i in people if i in judged and judged[i].readable)
    assert row["n"] == len(shared) > 10
    for q in QUESTIONS:
        truth = [people[i].answers[q] for i in shared]
        said = [judged[i].answers[q] for i in shared]
        got = row["questions"][q]
        assert got["accuracy"] == round(
            sum(a == b for a, b in zip(truth, said, strict=True)) / len(shared), 4
        )
        rejects = [a for a, b in zip(truth, said, strict=True) if not b]
        if rejects:
            assert got["reject_precision"] == round(rejects.count(False) / len(rejects), 4)
        if len(set(truth) | set(said)) > 1 and len(set(truth)) * len(set(said)) > 1:
            assert got["kappa"] == round(kappa(truth, said), 4)
    # prepare's decision: people reject on any "no" or a rating below B; the judge likewise
    truth = [all(people[i].answers.values()) and people[i].rating in "AB" for i in shared]
    said = [judged[i].rating in "AB" for i in shared]
    assert row["decision"]["accuracy"] == round(
        sum(a == b for a, b in zip(truth, said, strict=True)) / len(shared), 4
    )


# -- prepare ---------------------------------------------------------------------------------
def test_prepare_drops_what_people_rejected_and_counts_it(run: Path) -> None:
    items = draw(run, 20)
    plan = plan_for(20, 4)
    rate(run, "alice", items, plan)
    rejected = {
        item.instance
        for item, (a, b, c, rating) in zip(items, plan, strict=True)
        if not (a and b and c) or rating in "CD"
    }
    assert rejected
    cli("prepare", "--out", run, *NO_REPORT)
    report = json.loads((run / "run.json").read_text())
    assert report["funnel"]["prepared"]["instances_dropped"]["human_rejected"] == len(rejected)
    assert report["review"]["rejected"] == len(rejected)
    drops = [d for d in read_jsonl(run / "quality_drops.jsonl") if d["reason"] == "human_rejected"]
    assert {f"{d['instruction_id']}.{d['position']}" for d in drops} == rejected
    for drop in drops:  # what this reviewer said, and only that
        a, b, c, rating = plan[
            [i.instance for i in items].index(f"{drop['instruction_id']}.{drop['position']}")
        ]
        said = [f"{q}: no" for q, yes in zip(QUESTIONS, (a, b, c), strict=True) if not yes]
        said += [f"rating {rating}"] if rating in "CD" else []
        assert drop["detail"] == f"alice: {', '.join(said)}"
    kept = read_jsonl(run / "finetuning_data" / "all_generated_instances.jsonl")
    texts = {(t.instruction, r.input, r.output): r.id for t in tasks_of(run) for r in t.instances}
    assert not {texts[(k["instruction"], k["input"], k["output"])] for k in kept} & rejected
    card = (run / "exports" / "README.md").read_text()
    assert "Table 2 from people" in card
    assert "people rated a sample of\n  20 instances" in card and "none was checked" not in card
    cli("prepare", "--out", run, "--set", "prepare.drop_human_rejected=false", *NO_REPORT)
    report = json.loads((run / "run.json").read_text())
    assert "human_rejected" not in report["funnel"]["prepared"]["instances_dropped"]


def test_judge_min_kappa_refuses_a_judge_people_disagree_with(run: Path) -> None:
    items = draw(run, 20)
    judged = Run.open(run).judgments()
    # people say the opposite of the judge's verdict on every item: kappa is negative
    plan = []
    for item in items:
        accepted = judged[item.instance].rating in ("A", "B")
        plan.append((True, True, True, "D" if accepted else "A"))
    rate(run, "alice", items, plan)
    before = (run / "finetuning_data").stat().st_mtime_ns
    failed = cli(
        "prepare", "--out", run, "--set", "prepare.judge_min_kappa=0.2", *NO_REPORT, check=False
    )
    assert failed.returncode != 0
    assert "agrees too little with people" in failed.stderr and "0.2" in failed.stderr
    assert (run / "finetuning_data").stat().st_mtime_ns == before
    # the threshold the refused prepare was given stays with the run, and can be unset
    again = cli("prepare", "--out", run, *NO_REPORT, check=False)
    assert again.returncode != 0 and "judge_min_kappa=none" in again.stderr
    cli("prepare", "--out", run, "--set", "prepare.judge_min_kappa=none", *NO_REPORT)
    # people who agree with the judge: prepare filters on it
    agreeing = [(True, True, True, judged[i.instance].rating or "D") for i in items]
    rate(run, "alice", items, agreeing)
    cli("prepare", "--out", run, "--set", "prepare.judge_min_kappa=0.2", *NO_REPORT)


def test_judge_min_kappa_without_reviews_says_what_to_do(run: Path) -> None:
    failed = cli(
        "prepare", "--out", run, "--set", "prepare.judge_min_kappa=0.4", *NO_REPORT, check=False
    )
    assert failed.returncode != 0
    assert "selfinstruct review --run" in failed.stderr


# -- export, import ---------------------------------------------------------------------------
def test_two_reviewers_on_two_machines_merge_by_export_and_import(
    run: Path, tmp_path: Path
) -> None:
    items = draw(run, 12)
    other = tmp_path / "laptop"
    shutil.copytree(run, other)
    rate(run, "alice", items, plan_for(12, 5))
    rate(other, "bob", items, plan_for(12, 6))
    cli("review", "--run", run, "--export", tmp_path / "alice.jsonl")
    cli("review", "--run", other, "--export", tmp_path / "bob.jsonl")
    lines = read_jsonl(tmp_path / "bob.jsonl")
    assert len(lines) == 12 and lines[0]["item"]["instruction"]
    third = tmp_path / "merged"
    shutil.copytree(run, third)
    done = cli(
        "review",
        "--run",
        third,
        "--import",
        tmp_path / "alice.jsonl",
        "--import",
        tmp_path / "bob.jsonl",
    )
    assert "Imported 12 ratings" in done.stdout  # alice's 12 are already in the copy
    numbers = Run.open(third).quality()["review"]
    assert numbers["ratings"] == 24 and numbers["between_reviewers"][0]["n"] == 12
    assert json.loads((third / "run.json").read_text())["review"] == numbers  # run.json too
    cli("prepare", "--out", third, *NO_REPORT)
    card = (third / "exports" / "README.md").read_text()
    assert "Reviewers `alice` and `bob` agree on 12 items with kappa" in card
    streamed = cli("review", "--run", third, "--export", "-", "--reviewer", "bob")
    assert [json.loads(line)["reviewer"] for line in streamed.stdout.splitlines()] == ["bob"] * 12
    again = cli("review", "--run", third, "--import", tmp_path / "bob.jsonl")
    assert "Imported 0 ratings" in again.stdout


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda o: o.update(run="0" * 16), "run"),
        (lambda o: o.update(digest="f" * 16), "digest"),
        (lambda o: o.update(id="9999.0"), "id"),
        (lambda o: o["answers"].update(output="maybe"), "answers.output"),
        (lambda o: o.update(rating="E"), "rating"),
        (lambda o: o.update(format="other"), "format"),
        (lambda o: o.update(reviewer=""), "reviewer"),
        (lambda o: o.update(rated_at="yesterday"), "rated_at"),
        (lambda o: o.update(rated_at="2999-01-01T00:00:00+00:00"), "rated_at"),
        (lambda o: o["answers"].pop("output"), "answers.output"),
        (lambda o: o.pop("rating"), "rating"),
        (lambda o: o.pop("version"), "version"),
        (lambda o: o.pop("digest"), "digest"),
    ],
)
def test_a_bad_or_foreign_import_is_refused_whole(
    run: Path, tmp_path: Path, change: Any, field: str
) -> None:
    items = draw(run, 4)
    rate(run, "alice", items, plan_for(4, 7))
    cli("review", "--run", run, "--export", tmp_path / "good.jsonl")
    lines = read_jsonl(tmp_path / "good.jsonl")
    for line in lines:
        line["reviewer"] = "dan"  # new ratings: each would be stored
    change(lines[2])
    bad = tmp_path / "bad.jsonl"
    bad.write_text("".join(json.dumps(line) + "\n" for line in lines))
    failed = cli("review", "--run", run, "--import", bad, check=False)
    assert failed.returncode != 0
    assert f"bad.jsonl, line 3, field '{field}'" in failed.stderr
    assert [r.reviewer for r in Run.open(run).reviews()] == ["alice"] * 4


def test_the_api_lists_ratings_read_only(run: Path) -> None:
    items = draw(run, 3)
    rate(run, "alice", items, plan_for(3, 8))
    found = Run.open(run).reviews()
    assert [r.instance for r in found] == sorted(
        (i.instance for i in items), key=lambda s: tuple(map(int, s.split(".")))
    )
    assert all(r.complete and r.reviewer == "alice" and r.rated_at for r in found)
    assert Run.open(run).reviews("nobody") == []


def test_a_later_reviewer_without_sample_options_sees_the_stored_sample(run: Path) -> None:
    first = draw(run, 12, per_task="all")
    tasks = tasks_of(run)
    with RunStore.open(run) as store:  # the second reviewer gives neither --sample nor --per-task
        again = ensure_sample(store, tasks, None, None, "42")
    assert again == first
    fresh = run.parent / "fresh"
    shutil.copytree(run, fresh)
    with RunStore.open(fresh) as store:
        store.db.execute("DELETE FROM review_items")
        store.db.execute("DELETE FROM meta WHERE key = 'review_sample'")
        drawn = ensure_sample(store, tasks, None, None, "42")
    assert len(drawn) == min(200, sum(1 for t in tasks if t.instances))  # the paper's 200
    assert len({item.instance.split(".")[0] for item in drawn}) == len(drawn)  # one per task


def test_review_refuses_what_it_cannot_use(run: Path, tmp_path: Path) -> None:
    empty = cli("review", "--run", run, "--reviewer", "", check=False)
    assert empty.returncode != 0 and "--reviewer" in empty.stderr
    items = draw(run, 2)
    rate(run, "alice", items, plan_for(2, 9))
    mixed = cli("review", "--run", run, "--export", tmp_path / "x.jsonl", "--sample", "5",
                check=False)  # fmt: skip
    assert mixed.returncode != 0 and "--sample" in mixed.stderr
    assert not (tmp_path / "x.jsonl").exists()
