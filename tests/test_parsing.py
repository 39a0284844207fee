"""Parsing of raw model text: instruction lists, yes/no labels and instances."""

from __future__ import annotations

import pytest

from selfinstruct.parsing.instances import (
    parse_classification,
    parse_generation,
    parse_instances,
    strip_markdown,
)
from selfinstruct.parsing.instructions import (
    collapse,
    split_chat,
    split_completion,
    split_instructions,
)
from selfinstruct.parsing.labels import is_yes

# --------------------------------------------------------------------------------------------
# Instructions: completion style (the paper's rule)
# --------------------------------------------------------------------------------------------


def test_completion_split_continues_after_item_nine():
    text = (
        " Tell me a joke about penguins.\n"
        "10. Name three fruits that are red.\n"
        "11. Summarize the article in one sentence.\n"
    )
    assert split_completion(text) == [
        "Tell me a joke about penguins.",
        "Name three fruits that are red.",
        "Summarize the article in one sentence.",
    ]


def test_completion_split_accepts_optional_space_before_period():
    text = "First task here please.\n10 . Second task here please.\n11. Third task here please."
    assert split_completion(text) == [
        "First task here please.",
        "Second task here please.",
        "Third task here please.",
    ]


def test_completion_split_collapses_whitespace_inside_pieces():
    text = "  Rewrite   the\tsentence\n   in passive voice.  \n10.   Give  me\n\ta  word.  "
    assert split_completion(text) == [
        "Rewrite the sentence in passive voice.",
        "Give me a word.",
    ]


def test_completion_split_keeps_empty_pieces_for_counting():
    pieces = split_completion("First task goes here.\n10.\n11. Third task goes here.")
    assert pieces == ["First task goes here.", "", "Third task goes here."]


def test_completion_split_needs_newline_before_the_number():
    # Numbers inside a line (decimals, "step 2.") are not item boundaries.
    text = "Add 2.5 and 3.5 then round to 1. decimal place.\n10. Convert 3 . 5 meters to feet."
    assert split_completion(text) == [
        "Add 2.5 and 3.5 then round to 1. decimal place.",
        "Convert 3 . 5 meters to feet.",
    ]


def test_completion_split_needs_a_period_after_the_number():
    text = "Task one is this.\n10) not a boundary in the paper's rule\n11. Task three."
    assert split_completion(text) == [
        "Task one is this. 10) not a boundary in the paper's rule",
        "Task three.",
    ]


def test_completion_split_of_empty_text():
    assert split_completion("") == [""]


def test_collapse():
    assert collapse(" a \n\n b\t\tc \u00a0") == "a b c"
    assert collapse("") == ""


def test_split_instructions_dispatches_on_style():
    text = "Sure! Here you go:\n9) Explain gravity to a child."
    assert split_instructions(text, "chat") == ["Explain gravity to a child."]
    # Completion style does not know about ")" and keeps the whole text as one piece.
    assert split_instructions(text, "completion") == [
        "Sure! Here you go: 9) Explain gravity to a child."
    ]


# --------------------------------------------------------------------------------------------
# Instructions: chat style
# --------------------------------------------------------------------------------------------


CHAT_ANSWER = """Sure! Here are some new tasks:

9. Tell me a joke about cats.
10) Summarize the news article in two sentences.
**11.** Translate the phrase into French.
- Explain how rainbows form in the sky.
Task 13: Write a haiku about the ocean waves.

I hope these tasks are helpful! Let me know if you need more."""


def test_chat_split_mixed_list_styles_preamble_and_closing_remark():
    assert split_chat(CHAT_ANSWER) == [
        "Tell me a joke about cats.",
        "Summarize the news article in two sentences.",
        "Translate the phrase into French.",
        "Explain how rainbows form in the sky.",
        "Write a haiku about the ocean waves.",
    ]


@pytest.mark.parametrize(
    "line",
    [
        "9. Describe your favourite season.",
        "9) Describe your favourite season.",
        "**9.** Describe your favourite season.",
        "**9. Describe your favourite season.**",
        "- Describe your favourite season.",
        "* Describe your favourite season.",
        "• Describe your favourite season.",
        "Task 9: Describe your favourite season.",
        "task 9: Describe your favourite season.",
        "Instruction 9: Describe your favourite season.",
        "  9. Describe your favourite season.",
        "9.Describe your favourite season.",
        '9. "Describe your favourite season."',
    ],
)
def test_chat_split_item_markers(line):
    assert split_chat(line) == ["Describe your favourite season."]


def test_chat_split_continuation_lines_join_the_open_item():
    text = "9. Write a short story\n   about a robot who learns\nto paint.\n10. Name a color."
    assert split_chat(text) == [
        "Write a short story about a robot who learns to paint.",
        "Name a color.",
    ]


def test_chat_split_blank_line_closes_item():
    text = "9. Name a planet in the solar system.\n\nThese tasks cover astronomy."
    assert split_chat(text) == ["Name a planet in the solar system."]


def test_chat_split_items_after_a_blank_line_are_still_items():
    text = "Here you go:\n9. Alpha task is this one.\n\n10. Beta task is this one.\n\nEnjoy!"
    assert split_chat(text) == ["Alpha task is this one.", "Beta task is this one."]


def test_chat_split_preamble_only_yields_nothing():
    assert split_chat("I'm sorry, but I can't help with that request.") == []
    assert split_chat("") == []


def test_chat_split_keeps_decimals_inside_items():
    text = "9. Compute 3.5 plus 2.\n10. What is 2.5 times 4?"
    assert split_chat(text) == ["Compute 3.5 plus 2.", "What is 2.5 times 4?"]


def test_chat_split_removes_emphasis_inside_items():
    assert split_chat("9. Explain **why** the sky is __blue__.") == ["Explain why the sky is blue."]


# --------------------------------------------------------------------------------------------
# Labels
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["Yes", "yes", "YES", " Yes", "Yes\n", "  yes  \n"])
def test_completion_yes_paper_rule_accepts(raw):
    assert is_yes(raw) is True
    assert is_yes(raw, "completion") is True


@pytest.mark.parametrize(
    "raw", ["No", "no", "", "   ", "Yes.", "yes,", "yEs", "Y", "Yes it is", "**Yes**", "Yeah"]
)
def test_completion_yes_paper_rule_rejects(raw):
    assert is_yes(raw, "completion") is False


@pytest.mark.parametrize(
    "raw",
    ["Yes", "yes.", "YES!", "**Yes**", "Yes, it is a classification task.", " - yes", "yEs"],
)
def test_chat_first_word_yes(raw):
    assert is_yes(raw, "chat") is True


@pytest.mark.parametrize(
    "raw",
    ["No", "no.", "**No**", "", "...", "Yesterday", "Not really, yes", "It is, yes", "Y"],
)
def test_chat_first_word_not_yes(raw):
    assert is_yes(raw, "chat") is False


# --------------------------------------------------------------------------------------------
# Instances: classification (output first)
# --------------------------------------------------------------------------------------------


def test_classification_label_then_input():
    text = (
        "Class label: Positive\nReview: The food was great.\n"
        "Class label: Negative\nReview: Cold soup.\nRating: 1 star"
    )
    assert parse_classification(text, truncated=False) == [
        ("Review: The food was great.", "Positive"),
        ("Review: Cold soup.\nRating: 1 star", "Negative"),
    ]


def test_classification_text_before_first_marker_is_ignored():
    text = "Here are the labels:\nsome junk\nClass label: Odd\nNumber: 7"
    assert parse_classification(text, truncated=False) == [("Number: 7", "Odd")]


def test_classification_label_only_instances():
    text = "Class label: dolphin\nClass label:  whale  \n"
    assert parse_classification(text, truncated=False) == [("", "dolphin"), ("", "whale")]


def test_classification_without_marker_yields_nothing():
    assert parse_classification("Positive\nReview: nice", truncated=False) == []
    assert parse_classification("", truncated=True) == []


def test_classification_truncated_drops_last_instance():
    text = "Class label: A\nInput: one\nClass label: B\nInput: tw"
    assert parse_classification(text, truncated=True) == [("Input: one", "A")]
    assert parse_classification("Class label: A\nInput: o", truncated=True) == []


def test_classification_marker_is_case_sensitive():
    assert parse_classification("class label: A\nx", truncated=False) == []


# --------------------------------------------------------------------------------------------
# Instances: generation (input first)
# --------------------------------------------------------------------------------------------


def test_generation_examples_with_named_fields():
    text = (
        "Example 1\nSentence: The chef cooked.\nOutput: It was cooked by the chef.\n\n"
        "Example 2\nSentence: Fans watched.\nOutput: It was watched by fans."
    )
    assert parse_generation(text, truncated=False) == [
        ("Sentence: The chef cooked.", "It was cooked by the chef."),
        ("Sentence: Fans watched.", "It was watched by fans."),
    ]


@pytest.mark.parametrize(
    "marker", ["Example 1", "Example1", "Example 1.", "Example1.", "Example 1 ."]
)
def test_generation_example_marker_variants(marker):
    second = marker.replace("1", "2")
    text = f"{marker}\nWord: cat\nOutput: animal\n{second}\nWord: rose\nOutput: plant"
    assert parse_generation(text, truncated=False) == [
        ("Word: cat", "animal"),
        ("Word: rose", "plant"),
    ]


def test_generation_multi_digit_example_numbers():
    text = "Example 9\nX: a\nOutput: b\nExample 10\nX: c\nOutput: d"
    assert parse_generation(text, truncated=False) == [("X: a", "b"), ("X: c", "d")]


def test_generation_numbered_output_and_leading_input_marker():
    text = "Example 1\nInput 1: hello\nOutput 1: world\nExample 2\nInput: foo\nOutput 2 : bar"
    assert parse_generation(text, truncated=False) == [("hello", "world"), ("foo", "bar")]


def test_generation_output_is_cut_at_a_later_input_marker():
    text = "Example 1\nInput: 2+2\nOutput: 4\nInput 2: 3+3\nOutput 2: 6"
    assert parse_generation(text, truncated=False) == [("2+2", "4")]


def test_generation_only_text_between_first_and_second_output_is_output():
    text = "Example 1\nQuestion: why?\nOutput: because\nOutput: something else\nOutput: more"
    assert parse_generation(text, truncated=False) == [("Question: why?", "because")]


def test_generation_without_example_marker_but_with_output_is_one_instance():
    text = "Paragraph: Bees dance.\nOutput: Bees communicate by dancing."
    assert parse_generation(text, truncated=False) == [
        ("Paragraph: Bees dance.", "Bees communicate by dancing.")
    ]
    assert parse_generation("Output:\ndef f():\n    return 1", truncated=False) == [
        ("", "def f():\n    return 1")
    ]


def test_generation_with_neither_marker_yields_nothing():
    assert parse_generation("Just some text without markers.", truncated=False) == []
    assert parse_generation("", truncated=False) == []


def test_generation_example_without_output_marker_is_all_output():
    # The paper's rule: a piece without "Output:" has an empty input and the piece as output.
    assert parse_generation("Example 1\nThe answer is 42.", truncated=False) == [
        ("", "The answer is 42.")
    ]


def test_generation_text_before_first_example_is_ignored():
    text = "Here are some examples:\nExample 1\nA: b\nOutput: c"
    assert parse_generation(text, truncated=False) == [("A: b", "c")]


def test_generation_empty_example_pieces_are_skipped():
    text = "Example 1\n\nExample 2\nA: b\nOutput: c\nExample 3\n   "
    assert parse_generation(text, truncated=False) == [("A: b", "c")]


def test_generation_truncated_drops_last_instance():
    text = "Example 1\nA: x\nOutput: y\nExample 2\nA: z\nOutput: parti"
    assert parse_generation(text, truncated=True) == [("A: x", "y")]
    assert parse_generation("Output: cut off mid", truncated=True) == []
    assert parse_generation("no markers", truncated=True) == []


def test_generation_multiline_output_kept():
    text = "Example 1\nCode: x = 1\nOutput:\nline one\nline two\n"
    assert parse_generation(text, truncated=False) == [("Code: x = 1", "line one\nline two")]


# --------------------------------------------------------------------------------------------
# Instances: dispatch and chat markdown
# --------------------------------------------------------------------------------------------


def test_parse_instances_dispatches_on_is_classification():
    text = "Class label: Yes\nExample 1\nA: b\nOutput: c"
    assert parse_instances(text, False, True, "completion") == [
        ("Example 1\nA: b\nOutput: c", "Yes")
    ]
    assert parse_instances(text, False, False, "completion") == [("A: b", "c")]


def test_parse_instances_passes_truncation():
    text = "Example 1\nA: b\nOutput: c\nExample 2\nA: d\nOutput: e"
    assert parse_instances(text, True, False, "completion") == [("A: b", "c")]


def test_chat_bold_example_and_output_markers_are_stripped():
    text = (
        "**Example 1**\nSentence: Hi there.\n**Output:** Hello.\n\n"
        "**Example 2**\nSentence: Bye now.\n**Output:** Goodbye."
    )
    assert parse_instances(text, False, False, "chat") == [
        ("Sentence: Hi there.", "Hello."),
        ("Sentence: Bye now.", "Goodbye."),
    ]


def test_chat_underscore_bold_markers_are_stripped():
    text = "__Example 1__\nA: b\n__Output__: c"
    assert parse_instances(text, False, False, "chat") == [("A: b", "c")]


def test_chat_bold_class_label_markers_are_stripped():
    text = "**Class label:** Positive\nReview: Lovely.\n**Class label:** Negative\nReview: Awful."
    assert parse_instances(text, False, True, "chat") == [
        ("Review: Lovely.", "Positive"),
        ("Review: Awful.", "Negative"),
    ]


def test_completion_style_does_not_strip_markdown():
    # Not stripped, so "**Class label:**" is not a marker at the start of a line.
    text = "**Class label:** Positive\nReview: Lovely."
    assert parse_instances(text, False, True, "completion") == []


def test_strip_markdown_leaves_text_without_bold_markers_alone():
    text = "Example 1\nExpr: 2**10\nOutput: 1024"
    assert strip_markdown(text) == text


def test_chat_markdown_stripping_keeps_content_asterisks_and_underscores():
    text = (
        "**Example 1**\nCode: class A:\n    def __init__(self): self.x = 2**10\n"
        "**Output:** It stores 1024."
    )
    assert parse_instances(text, False, False, "chat") == [
        ("Code: class A:\n    def __init__(self): self.x = 2**10", "It stores 1024.")
    ]


def test_chat_example_marker_with_colon():
    text = "**Example 1:**\nSentence: The dog ran.\n**Output:** Fast dog."
    assert parse_instances(text, False, False, "chat") == [("Sentence: The dog ran.", "Fast dog.")]


def test_chat_restated_task_line_is_not_part_of_the_input():
    text = "Task: Write a two-line poem.\nOutput: Roses are red,\nviolets are blue."
    assert parse_instances(text, False, False, "chat") == [
        ("", "Roses are red,\nviolets are blue.")
    ]
    # Completion style keeps the paper's rule: everything before "Output:" is the input.
    assert parse_instances(text, False, False, "completion") == [
        ("Task: Write a two-line poem.", "Roses are red,\nviolets are blue.")
    ]


# --------------------------------------------------------------------------------------------
# Markers count only at the start of a line, outside fenced code (code, markdown, quotes)
# --------------------------------------------------------------------------------------------


def test_output_comment_inside_generated_code_does_not_split_it():
    text = (
        "Example 1\nCode:\ndef is_even(n):\n    return n % 2 == 0\n\nprint(is_even(4))"
        "  # Output: True\nOutput: The function prints True because 4 is even."
    )
    assert parse_generation(text, truncated=False) == [
        (
            "Code:\ndef is_even(n):\n    return n % 2 == 0\n\nprint(is_even(4))  # Output: True",
            "The function prints True because 4 is even.",
        )
    ]


def test_output_comment_inside_a_code_output_stays_in_the_output():
    text = (
        "Output:\ndef square(x):\n    return x * x\n\nprint(square(3))  # Output: 9\n"
        "print(square(4))  # Output: 16"
    )
    assert parse_generation(text, truncated=False) == [
        (
            "",
            "def square(x):\n    return x * x\n\nprint(square(3))  # Output: 9\n"
            "print(square(4))  # Output: 16",
        )
    ]


def test_comment_line_with_input_marker_does_not_cut_the_output():
    text = "Example 1\nTask: add\nOutput:\n# Input: two numbers\ndef add(a, b):\n    return a + b"
    assert parse_generation(text, truncated=False) == [
        ("Task: add", "# Input: two numbers\ndef add(a, b):\n    return a + b")
    ]


def test_quoted_markers_in_inputs_and_outputs_are_text():
    text = (
        'Example 1\nSentence: He wrote "Output: none" on the form.\n'
        'Output: The form says "Output: none" and "Input: 3".\n\n'
        "Example 2\nSentence: See Example 3 below for details.\nOutput: A cross-reference."
    )
    assert parse_generation(text, truncated=False) == [
        (
            'Sentence: He wrote "Output: none" on the form.',
            'The form says "Output: none" and "Input: 3".',
        ),
        ("Sentence: See Example 3 below for details.", "A cross-reference."),
    ]


def test_markers_inside_fenced_code_blocks_are_text():
    text = (
        "Example 1\nProgram:\n```python\nprint(2 + 2)\nOutput: 4\n```\n"
        "Output: It prints 4.\n\n"
        "Example 2\nProgram:\n~~~\nExample 3\nInput: x\n~~~\nOutput: It shows text."
    )
    assert parse_generation(text, truncated=False) == [
        ("Program:\n```python\nprint(2 + 2)\nOutput: 4\n```", "It prints 4."),
        ("Program:\n~~~\nExample 3\nInput: x\n~~~", "It shows text."),
    ]


def test_markdown_output_with_a_fenced_block_is_kept_whole():
    text = (
        "Example 1\nLanguage: Python\nOutput:\n```python\nfor i in range(3):\n"
        "    print(f'Output: {i}')\n```\nThis prints three lines."
    )
    assert parse_generation(text, truncated=False) == [
        (
            "Language: Python",
            "```python\nfor i in range(3):\n    print(f'Output: {i}')\n```\n"
            "This prints three lines.",
        )
    ]


def test_indented_markers_at_the_start_of_a_line_still_count():
    text = "  Example 1\n  Word: cat\n  Output: animal\n  Example 2\n  Word: oak\n\tOutput: tree"
    assert parse_generation(text, truncated=False) == [
        ("Word: cat", "animal"),
        ("Word: oak", "tree"),
    ]


def test_class_label_inside_an_input_line_is_text():
    text = (
        'Class label: Spam\nEmail: The header reads "Class label: ham", trust me.\n'
        "Class label: Ham\nEmail: Lunch at noon?"
    )
    assert parse_classification(text, truncated=False) == [
        ('Email: The header reads "Class label: ham", trust me.', "Spam"),
        ("Email: Lunch at noon?", "Ham"),
    ]


def test_chat_style_code_with_marker_comments():
    text = (
        "**Example 1**\nCode:\n```js\nconsole.log(1 + 1); // Output: 2\n```\n**Output:** It logs 2."
    )
    assert parse_instances(text, False, False, "chat") == [
        ("Code:\n```js\nconsole.log(1 + 1); // Output: 2\n```", "It logs 2.")
    ]


def test_a_fence_opened_on_the_output_line_protects_its_block():
    text = "Example 1\nNumber: 10\nOutput: ```python\nprint(10 % 2 == 0)\nOutput: True\n```"
    assert parse_generation(text, truncated=False) == [
        ("Number: 10", "```python\nprint(10 % 2 == 0)\nOutput: True\n```")
    ]


def test_an_unclosed_fence_runs_to_the_end():
    text = "Example 1\nCode:\n```\nExample 2\nOutput: x"
    assert parse_generation(text, truncated=False) == [("", "Code:\n```\nExample 2\nOutput: x")]
