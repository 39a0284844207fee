"""Decontamination: generated instructions (ROUGE-L) and instances (shared n-grams) that
overlap the evaluation tasks, each named by the evaluation task it matched."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from rouge_score import rouge_scorer

from selfinstruct.errors import InputError
from selfinstruct.evaluation.tasks import EvalTask, read_tasks
from selfinstruct.quality.contamination import Decontaminator, Match, load_eval_tasks
from selfinstruct.seeds import load_seeds
from selfinstruct.similarity.tokenize import unicode_tokens

SCORER = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=False)
FILLER = "xyzzy plugh"  # words found in no evaluation task

# The packaged seed set is not disjoint from the packaged evaluation set: these seeds are
# (near) copies of evaluation tasks, and two seed instances quote 13 words of one.
SEED_INSTRUCTION_MATCHES = {
    "seed_task_1": "selfinstruct_eval_2",  # identical up to case
    "seed_task_8": "selfinstruct_eval_1",
    "seed_task_13": "selfinstruct_eval_19",
    "seed_task_27": "selfinstruct_eval_36",
    "seed_task_44": "selfinstruct_eval_31",
    "seed_task_86": "selfinstruct_eval_44",  # identical
    "seed_task_111": "selfinstruct_eval_9",
    "seed_task_119": "selfinstruct_eval_43",
}
SEED_INSTANCE_MATCHES = {
    "seed_task_31": (
        "selfinstruct_eval_23",
        "go to bed and wake up at about the same time every day",
    ),
    "seed_task_111": (
        "selfinstruct_eval_9",
        "1 bodyweight squats 2 wall or knee push ups 3 glute bridges 4",
    ),
}


def reference(target: str, prediction: str) -> float:
    return SCORER.score(target, prediction)["rougeL"].fmeasure


def words(text: str) -> list[str]:
    return re.findall(r"\w+", text.lower())


def task(task_id: str, instruction: str, input: str = "", reference: str = "out") -> EvalTask:
    return EvalTask(task_id, "app", instruction, input, reference)


@pytest.fixture(scope="module")
def eval_tasks() -> list[EvalTask]:
    return load_eval_tasks([])


@pytest.fixture(scope="module")
def checker(eval_tasks: list[EvalTask]) -> Decontaminator:
    return Decontaminator(eval_tasks)


def write_tasks(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


# -- load_eval_tasks


def test_no_paths_gives_the_packaged_tasks(eval_tasks: list[EvalTask]) -> None:
    assert eval_tasks == read_tasks()
    assert len(eval_tasks) == 60


def test_several_files_give_all_their_tasks_in_order(tmp_path: Path) -> None:
    first = write_tasks(
        tmp_path / "a.jsonl",
        [{"id": "a1", "instruction": "Do A.", "instances": [{"input": "", "output": "x"}]}],
    )
    second = write_tasks(
        tmp_path / "b.jsonl",
        [{"id": "b1", "instruction": "Do B.", "instances": [{"output": "y"}, {"output": "z"}]}],
    )
    tasks = load_eval_tasks([first, second])
    assert [t.id for t in tasks] == ["a1", "b1#0", "b1#1"]
    assert [t.reference for t in tasks] == ["x", "y", "z"]


def test_a_bad_file_names_its_file_and_line(tmp_path: Path) -> None:
    good = write_tasks(
        tmp_path / "good.jsonl",
        [{"id": "g", "instruction": "Do G.", "instances": [{"output": "x"}]}],
    )
    bad = write_tasks(
        tmp_path / "bad.jsonl",
        [
            {"id": "b1", "instruction": "Do B.", "instances": [{"output": "x"}]},
            {"id": "b2", "instances": [{"output": "x"}]},
        ],
    )
    with pytest.raises(InputError) as caught:
        load_eval_tasks([good, bad])
    assert caught.value.path == str(bad)
    assert caught.value.line == 2
    assert str(bad) in str(caught.value) and "line 2" in str(caught.value)


# -- arguments


@pytest.mark.parametrize("threshold", [0.0, -0.1, 1.0001, 2.0, math.nan])
def test_threshold_must_be_in_0_1(threshold: float) -> None:
    with pytest.raises(ValueError, match="rouge_threshold"):
        Decontaminator([], rouge_threshold=threshold)


@pytest.mark.parametrize("ngram", [0, -3])
def test_ngram_must_be_at_least_one(ngram: int) -> None:
    with pytest.raises(ValueError, match="ngram"):
        Decontaminator([], ngram=ngram)


def test_no_tasks_match_nothing() -> None:
    checker = Decontaminator([], rouge_threshold=1.0, ngram=1)
    assert checker.instruction_matches(["Fix the grammar.", ""]) == [None, None]
    assert checker.instance_match("anything", "at all") is None


# -- instructions


def test_exact_copies_of_every_eval_instruction_match_their_task(
    checker: Decontaminator, eval_tasks: list[EvalTask]
) -> None:
    matches = checker.instruction_matches([t.instruction for t in eval_tasks])
    assert [m.task_id if m else None for m in matches] == [t.id for t in eval_tasks]
    first = matches[0]
    assert first == Match(
        "selfinstruct_eval_0",
        "instruction",
        "ROUGE-L 1.00 with 'Fix the grammar and spelling mistakes in this sentence.'",
    )
    assert first.describe() == (
        "selfinstruct_eval_0: ROUGE-L 1.00 with "
        "'Fix the grammar and spelling mistakes in this sentence.'"
    )


def test_a_copy_with_one_word_changed_still_matches(
    checker: Decontaminator, eval_tasks: list[EvalTask]
) -> None:
    for target in eval_tasks:
        tokens = target.instruction.split()
        if len(tokens) < 8:
            continue
        tokens[len(tokens) // 2] = "zebra"
        edited = " ".join(tokens)
        [match] = checker.instruction_matches([edited])
        assert match is not None and match.task_id == target.id, edited
        assert match.kind == "instruction"
        assert reference(target.instruction, edited) > 0.7


def test_long_eval_instructions_are_quoted_cut_to_80_chars(
    checker: Decontaminator, eval_tasks: list[EvalTask]
) -> None:
    long = next(t for t in eval_tasks if len(t.instruction) > 80)
    [match] = checker.instruction_matches([long.instruction])
    assert match is not None
    quoted = match.detail.removeprefix("ROUGE-L 1.00 with '").removesuffix("'")
    assert len(quoted) == 80
    assert quoted == long.instruction[:77] + "..."


def test_packaged_seed_instructions_match_only_the_known_copies(checker: Decontaminator) -> None:
    seeds = load_seeds()
    matches = checker.instruction_matches([s.instruction for s in seeds])
    found = {s.id: m.task_id for s, m in zip(seeds, matches, strict=True) if m}
    assert found == SEED_INSTRUCTION_MATCHES
    assert len(seeds) - len(found) == 112


def test_packaged_seed_instances_match_only_the_known_quotes(checker: Decontaminator) -> None:
    found = {}
    for seed in load_seeds():
        for instance in seed.instances:
            match = checker.instance_match(instance.input, instance.output)
            if match:
                assert match.kind == "ngram"
                found[seed.id] = (match.task_id, match.detail.removeprefix("shares '")[:-1])
    assert found == SEED_INSTANCE_MATCHES


def test_the_papers_175_seeds_match_nothing(checker: Decontaminator, paper_seeds: Path) -> None:
    seeds = load_seeds(paper_seeds)
    assert len(seeds) == 175
    assert checker.instruction_matches([s.instruction for s in seeds]) == [None] * 175
    for seed in seeds:
        for instance in seed.instances:
            assert checker.instance_match(instance.input, instance.output) is None


def test_best_scores_equal_rouge_score_package(eval_tasks: list[EvalTask]) -> None:
    """The best score is bit-for-bit the reference's maximum: with the threshold just below
    it the seed matches (a task reaching that maximum), with it just above, it does not."""
    instructions = list(dict.fromkeys(t.instruction for t in eval_tasks))
    by_instruction = {t.instruction: t.id for t in reversed(eval_tasks)}
    checked = 0
    for seed in load_seeds()[:50]:
        scores = [reference(ev, seed.instruction) for ev in instructions]
        best = max(scores)
        if best > 1e-9:
            [match] = Decontaminator(eval_tasks, rouge_threshold=best - 1e-9).instruction_matches(
                [seed.instruction]
            )
            assert match is not None, seed.instruction
            first = instructions[scores.index(best)]  # ties: the first task
            assert match.task_id == by_instruction[first]
            assert match.detail.startswith(f"ROUGE-L {best:.2f} with ")
            checked += 1
        above = min(best + 1e-9, 1.0)
        assert Decontaminator(eval_tasks, rouge_threshold=above).instruction_matches(
            [seed.instruction]
        ) == [None]
    assert checked >= 45


def test_the_threshold_is_strict() -> None:
    tasks = [task("t", "alpha beta gamma delta")]
    # two shared words of four each: precision = recall = F = 0.5 exactly
    assert reference("alpha beta gamma delta", "alpha beta omega sigma") == 0.5
    at = Decontaminator(tasks, rouge_threshold=0.5)
    assert at.instruction_matches(["alpha beta omega sigma"]) == [None]
    below = Decontaminator(tasks, rouge_threshold=0.4999)
    [match] = below.instruction_matches(["alpha beta omega sigma"])
    assert match == Match("t", "instruction", "ROUGE-L 0.50 with 'alpha beta gamma delta'")
    # an exact copy scores 1.0, so a threshold of 1 lets nothing through
    assert Decontaminator(tasks, rouge_threshold=1.0).instruction_matches(
        ["alpha beta gamma delta"]
    ) == [None]


def test_ties_go_to_the_first_task_and_instances_share_a_base_id(tmp_path: Path) -> None:
    path = write_tasks(
        tmp_path / "eval.jsonl",
        [
            {
                "id": "multi",
                "instruction": "Sort these numbers from small to large.",
                "instances": [{"output": "1 2"}, {"output": "3 4"}],
            },
            {
                "id": "other",
                "instruction": "Sort these words from small to large.",
                "instances": [{"output": "a b"}],
            },
            {"id": "odd#7", "instruction": "Name a colour.", "instances": [{"output": "red"}]},
        ],
    )
    checker = Decontaminator(load_eval_tasks([path]))
    # one word away from both sorting instructions: the same score, the first task wins
    [tie, own] = checker.instruction_matches(
        ["Sort these letters from small to large.", "Name a colour."]
    )
    assert tie is not None and tie.task_id == "multi"  # not "multi#0"
    assert own is not None and own.task_id == "odd#7"  # a single task keeps its own id


def test_the_runs_tokenizer_is_used() -> None:
    tasks = [task("zh", "把这句话翻译成英文")]
    assert Decontaminator(tasks).instruction_matches(["把这句话翻译成英文"]) == [None]
    [match] = Decontaminator(tasks, tokenizer=unicode_tokens).instruction_matches(
        ["把这句话翻译成英文"]
    )
    assert match is not None and match.task_id == "zh"


def test_five_thousand_instructions_in_one_call(
    checker: Decontaminator, eval_tasks: list[EvalTask]
) -> None:
    """Not timed: 5,000 instructions against the 60 evaluation ones take a fraction of a
    second; only the planted copies match."""
    seeds = [s.instruction for s in load_seeds() if s.id not in SEED_INSTRUCTION_MATCHES]
    instructions = [f"{seeds[i % len(seeds)]} Case {i}." for i in range(5000)]
    planted = {i: eval_tasks[i % len(eval_tasks)] for i in range(0, 5000, 97)}
    for i, target in planted.items():
        instructions[i] = target.instruction
    matches = checker.instruction_matches(instructions)
    assert len(matches) == 5000
    found = {i: m.task_id for i, m in enumerate(matches) if m}
    assert found == {i: target.id for i, target in planted.items()}


# -- instances (n-grams)


def long_reference(eval_tasks: list[EvalTask], need: int) -> EvalTask:
    return next(t for t in eval_tasks if len(words(t.reference)) >= need)


def test_an_output_quoting_13_words_of_a_reference_matches(
    checker: Decontaminator, eval_tasks: list[EvalTask]
) -> None:
    target = long_reference(eval_tasks, 20)
    span = " ".join(words(target.reference)[3:16])
    match = checker.instance_match("", f"{FILLER} {span} {FILLER}")
    assert match == Match(target.id, "ngram", f"shares '{span}'")
    assert match.describe() == f"{target.id}: shares '{span}'"
    # in the input just as well, and whatever the case
    upper = checker.instance_match(f"{FILLER} {span.upper()}.", "no")
    assert upper == match


def test_a_12_word_span_does_not_match(checker: Decontaminator, eval_tasks: list[EvalTask]) -> None:
    for target in eval_tasks:
        reference_words = words(target.reference)
        for start in range(0, len(reference_words) - 11, 5):
            span = " ".join(reference_words[start : start + 12])
            assert checker.instance_match(FILLER, f"{FILLER} {span} {FILLER}") is None, span


def test_ngrams_never_span_two_eval_fields(
    checker: Decontaminator, eval_tasks: list[EvalTask]
) -> None:
    crossing = [
        t for t in eval_tasks if len(words(t.input)) >= 13 and len(words(t.reference)) >= 13
    ]
    assert crossing
    for target in crossing:
        tail, head = words(target.input)[-6:], words(target.reference)[:7]
        across = " ".join(tail + head)  # end of the input + start of the reference
        assert checker.instance_match("", across) is None, target.id
        instruction_end = " ".join(words(target.instruction)[-6:] + words(target.input)[:7])
        assert checker.instance_match(instruction_end, "") is None, target.id
        # while 13 words of the reference alone do match
        assert checker.instance_match("", " ".join(words(target.reference)[:13])) is not None


def test_instance_input_and_output_are_checked_separately() -> None:
    text = "one two three four five six seven eight nine ten"
    checker = Decontaminator([task("t", "Do it.", reference=text)], ngram=6)
    assert checker.instance_match("one two three", "four five six") is None
    assert checker.instance_match("one two three four five six", "") is not None
    assert checker.instance_match("", "five six seven eight nine ten") is not None


def test_the_ngram_length_is_configurable_and_case_insensitive() -> None:
    tasks = [
        task("a", "Translate this sentence.", input="The Quick brown fox jumps.", reference="x"),
        task("b", "Summarize this text.", reference="Quick brown fox jumps over lazy dogs"),
    ]
    five = Decontaminator(tasks, ngram=5)
    assert five.instance_match("", "the quick brown fox jumps high") == Match(
        "a", "ngram", "shares 'the quick brown fox jumps'"
    )
    assert five.instance_match("QUICK BROWN FOX JUMPS OVER", "") == Match(
        "b", "ngram", "shares 'quick brown fox jumps over'"
    )
    assert five.instance_match("quick brown fox jumps", "brown fox jumps") is None
    # fields shorter than n words give no n-gram
    assert Decontaminator(tasks, ngram=8).instance_match("", "the quick brown fox jumps") is None
    # one-word n-grams
    one = Decontaminator(tasks, ngram=1)
    assert one.instance_match("", "Lazy!") == Match("b", "ngram", "shares 'lazy'")


def test_the_first_eval_task_wins() -> None:
    shared = "alpha beta gamma delta epsilon"
    tasks = [
        task("first", "Do one.", reference=f"zeta {shared}"),
        task("second", "Do two.", input=shared),
        task("third", "Do three.", reference="eta theta iota kappa lambda"),
    ]
    checker = Decontaminator(tasks, ngram=5)
    first = checker.instance_match(shared, "")
    assert first is not None and first.task_id == "first"
    # found later in the instance, but first in the evaluation file
    match = checker.instance_match("eta theta iota kappa lambda", shared)
    assert match == Match("first", "ngram", f"shares '{shared}'")


def test_unicode_words_are_compared() -> None:
    tasks = [task("de", "Übersetze.", reference="Grüße aus München und Köln")]
    checker = Decontaminator(tasks, ngram=5)
    assert checker.instance_match("", "GRÜSSE aus München und Köln") is None  # ß is not ss
    assert checker.instance_match("", "grüße AUS münchen UND köln!") == Match(
        "de", "ngram", "shares 'grüße aus münchen und köln'"
    )
