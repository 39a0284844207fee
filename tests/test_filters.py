"""The paper's heuristic filters for instructions and instances."""

from __future__ import annotations

from collections import Counter

import pytest

from selfinstruct.filters.instance import filter_instances, invalid_reason
from selfinstruct.filters.instruction import heuristic_reason, upper_first
from selfinstruct.stages.bootstrap.settings import BLOCKED_KEYWORDS, BootstrapSettings


@pytest.fixture
def settings() -> BootstrapSettings:
    return BootstrapSettings()


def words(n: int) -> str:
    return " ".join(f"word{i}" for i in range(n))


# --------------------------------------------------------------------------------------------
# Instruction heuristics
# --------------------------------------------------------------------------------------------


def test_default_settings_match_the_paper(settings):
    assert settings.min_words == 4
    assert settings.max_words == 150
    assert settings.blocked_prefixes == ["Write a program"]
    assert set(settings.blocked_keywords) == {
        "image",
        "images",
        "graph",
        "graphs",
        "picture",
        "pictures",
        "file",
        "files",
        "map",
        "maps",
        "draw",
        "plot",
        "go to",
    }


def test_empty(settings):
    assert heuristic_reason("", settings) == "empty"


@pytest.mark.parametrize("text", ["Describe", "Describe it", "Describe it now."])
def test_three_words_or_fewer_is_too_short(settings, text):
    assert heuristic_reason(text, settings) == "too_short"


def test_whitespace_only_is_too_short(settings):
    assert heuristic_reason("   ", settings) == "too_short"


def test_four_words_kept(settings):
    assert heuristic_reason("Describe your favourite meal.", settings) is None


def test_150_words_kept_151_too_long(settings):
    assert heuristic_reason("Describe " + words(149), settings) is None
    assert heuristic_reason("Describe " + words(150), settings) == "too_long"


def test_words_are_counted_on_whitespace(settings):
    # Punctuation-glued tokens count as one word each ("a,b,c,d" is one word).
    assert heuristic_reason("Sort a,b,c,d,e,f quickly", settings) == "too_short"


@pytest.mark.parametrize("keyword", BLOCKED_KEYWORDS)
def test_each_blocked_keyword_is_dropped(settings, keyword):
    text = f"Tell me about the {keyword} in this story."
    assert heuristic_reason(text, settings) == "keyword"


@pytest.mark.parametrize("keyword", BLOCKED_KEYWORDS)
def test_blocked_keywords_are_case_insensitive(settings, keyword):
    assert heuristic_reason(f"Tell me about the {keyword.upper()} here.", settings) == "keyword"
    assert heuristic_reason(f"Tell me about the {keyword.title()} here.", settings) == "keyword"


@pytest.mark.parametrize(
    "text",
    [
        "Explain why the file, once saved, changes.",
        "List the (images) in the article please.",
        "Describe the map's legend in detail.",
        "Open file-based storage settings now.",
        "Please Go To the nearest store today.",
        "Plot: summarize the story in detail.",
    ],
)
def test_keyword_next_to_punctuation_is_still_a_word(settings, text):
    assert heuristic_reason(text, settings) == "keyword"


@pytest.mark.parametrize(
    "text",
    [
        "I filed the report with my manager today.",
        "Explain the mapping between keys and values.",
        "Design a graphic for the new logo.",
        "Profile the performance of this function.",
        "Describe the plotline of the movie.",
        "Explain what imagery does in poetry.",
        "Let us go today to the beach together.",
        "Describe how the drawing room was furnished.",
        "Name the cartographers who made early atlases.",
    ],
)
def test_words_containing_keywords_are_not_blocked(settings, text):
    assert heuristic_reason(text, settings) is None


def test_custom_keyword_list(settings):
    settings.blocked_keywords = ["recipe"]
    assert heuristic_reason("Draw a picture of the sea.", settings) is None
    assert heuristic_reason("Give me a recipe for bread.", settings) == "keyword"
    settings.blocked_keywords = []
    assert heuristic_reason("Draw a picture of the sea.", settings) is None


def test_write_a_program_prefix(settings):
    assert heuristic_reason("Write a program that sorts numbers.", settings) == "blocked_prefix"
    assert heuristic_reason("Write a programme that sorts numbers.", settings) == ("blocked_prefix")
    # Only as a prefix, and case-sensitive, like the paper's str.startswith.
    assert heuristic_reason("Please write a program that sorts numbers.", settings) is None
    assert heuristic_reason("Write a function that sorts numbers.", settings) is None
    # The bootstrap stage upper-cases the first character before filtering.
    assert heuristic_reason(upper_first("write a program that sorts numbers."), settings) == (
        "blocked_prefix"
    )


@pytest.mark.parametrize("first", ['"', "'", "-", "(", "*", "#", ".", "[", "?", "!"])
def test_first_char_punctuation(settings, first):
    assert heuristic_reason(f"{first}Summarize the article in brief.", settings) == (
        "starts_with_punctuation"
    )


@pytest.mark.parametrize(
    "text",
    [
        "Élan is a word worth explaining.",
        "¿Qué hora es ahora mismo?",
        "“Quote” the text below please.",
        "你好 translate this for me",
    ],
)
def test_first_char_non_ascii(settings, text):
    assert heuristic_reason(text, settings) == "starts_non_ascii"


def test_non_ascii_later_in_text_is_fine(settings):
    assert heuristic_reason("Translate “café” into German please.", settings) is None
    assert heuristic_reason("3 reasons to learn Python today.", settings) is None


def test_checks_run_in_order(settings):
    # Too short wins over keyword and punctuation.
    assert heuristic_reason('"Draw it"', settings) == "too_short"
    # Keyword wins over prefix and first character.
    assert heuristic_reason("Write a program to plot data.", settings) == "keyword"
    assert heuristic_reason("-Describe the map in words.", settings) == "keyword"


def test_upper_first_only_touches_the_first_character():
    assert upper_first("nASA launched a rocket") == "NASA launched a rocket"
    assert upper_first("explain what NASA does") == "Explain what NASA does"
    assert "explain what NASA does".capitalize() == "Explain what nasa does"
    assert upper_first("") == ""
    assert upper_first("x") == "X"
    assert upper_first("1st place") == "1st place"


# --------------------------------------------------------------------------------------------
# Instance filters
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pair", "reason"),
    [
        (("same", "same"), "input_equals_output"),
        ((" same ", "same\n"), "input_equals_output"),
        (("input", ""), "empty_output"),
        (("input", "   "), "empty_output"),
        (("", ""), "empty_output"),
        (("Sentence:", "out"), "ends_with_colon"),
        (("Sentence: x", "Output:"), "ends_with_colon"),
        (("x", "the list is: \n"), "ends_with_colon"),
        (("Sentence: hello", "Hola"), None),
        (("", "An answer."), None),
        (("a: b", "c: d"), None),
    ],
)
def test_invalid_reason(pair, reason):
    assert invalid_reason(pair) == reason


def test_filter_drops_invalid_and_counts_reasons():
    dropped: Counter[str] = Counter()
    pairs = [
        ("a", "a"),
        ("b", ""),
        ("c:", "x"),
        ("d", "y:"),
        ("e", "ok"),
        ("", "fine"),
    ]
    assert filter_instances(pairs, dropped) == [("e", "ok"), ("", "fine")]
    assert dropped == Counter(input_equals_output=1, empty_output=1, ends_with_colon=2)


def test_same_non_empty_input_with_different_outputs_drops_whole_task():
    dropped: Counter[str] = Counter()
    pairs = [("2+2", "4"), ("3+3", "6"), ("2+2", "5"), ("", "x")]
    assert filter_instances(pairs, dropped) == []
    assert dropped["same_input_different_output"] == 4


def test_conflict_is_checked_after_invalid_pairs_are_removed():
    dropped: Counter[str] = Counter()
    # The second "q" has an empty output, so it is invalid and does not cause a conflict.
    pairs = [("q", "answer"), ("q", ""), ("r", "other")]
    assert filter_instances(pairs, dropped) == [("q", "answer"), ("r", "other")]
    assert dropped == Counter(empty_output=1)


def test_same_empty_input_with_different_outputs_is_kept():
    dropped: Counter[str] = Counter()
    pairs = [("", "A haiku."), ("", "Another haiku."), ("", "A haiku.")]
    assert filter_instances(pairs, dropped) == [("", "A haiku."), ("", "Another haiku.")]
    assert dropped == Counter(duplicate=1)
    assert dropped["same_input_different_output"] == 0


def test_exact_duplicates_removed_keeping_first_occurrence_order():
    dropped: Counter[str] = Counter()
    pairs = [("c", "3"), ("a", "1"), ("c", "3"), ("b", "2"), ("a", "1"), ("a", "1")]
    assert filter_instances(pairs, dropped) == [("c", "3"), ("a", "1"), ("b", "2")]
    assert dropped["duplicate"] == 3


def test_filter_accumulates_into_existing_counter():
    dropped: Counter[str] = Counter(empty_output=5, other=1)
    filter_instances([("x", ""), ("y", "y"), ("z", "1"), ("z", "1")], dropped)
    assert dropped == Counter(empty_output=6, other=1, input_equals_output=1, duplicate=1)


def test_filter_empty_list():
    dropped: Counter[str] = Counter()
    assert filter_instances([], dropped) == []
    assert sum(dropped.values()) == 0


def test_filter_does_not_mutate_its_input():
    pairs = [("a", "1"), ("a", "1"), ("b", "")]
    copy = list(pairs)
    filter_instances(pairs, Counter())
    assert pairs == copy
