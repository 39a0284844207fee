"""Seed files in every format: what parses, and how malformed files are reported.

Every malformed file must raise `InputError` whose message names the file, the line and the
field at fault, never any other exception type.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import expect_input_error, task_line
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from selfinstruct.errors import InputError
from selfinstruct.seeds import Instance, SeedTask, default_seed_path, load_seeds, seed_hash

ANY = object()  # "do not check this attribute"


def write(directory: Path, name: str, content: str | bytes) -> Path:
    path = directory / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8", newline="")
    return path


def jsonl(*lines: str) -> str:
    return "\n".join(lines) + "\n"


def expect_error(path: Path, **expected: Any) -> InputError:
    """load_seeds(path) raises InputError naming the file, line and field."""
    return expect_input_error(load_seeds, path, **expected)


# A valid file of at least four lines in each format, to corrupt line by line.
VALID = {
    ".jsonl": jsonl(task_line(0), task_line(1), task_line(2), task_line(3)),
    ".txt": "Write a haiku about rain.\nName three primary colors.\n"
    "Translate 'hello' into French.\nSummarize the plot of Hamlet.\n",
    ".csv": "instruction,input,output\nWrite a haiku about rain.,,Rain taps the roof.\n"
    "Name a primary color.,,Blue\nTranslate into French.,hello,bonjour\n",
    ".yaml": "- instruction: Write a haiku about rain.\n  output: Rain taps the roof.\n"
    "- instruction: Name a primary color.\n  output: Blue\n",
}
FORMATS = sorted(VALID)


# ---------------------------------------------------------------------------------------------
# Valid files


def test_paper_seed_file_parses(paper_seeds: Path) -> None:
    tasks = load_seeds(paper_seeds)
    assert len(tasks) == 175
    assert sum(t.is_classification for t in tasks) == 26
    assert all(len(t.instances) == 1 for t in tasks)
    assert sum(1 for t in tasks for i in t.instances if i.input == "") == 50
    assert len({t.id for t in tasks}) == 175
    assert tasks[0].id == "seed_task_0"
    assert tasks[0].name == "breakfast_suggestion"
    # The parsed records round-trip to the file's own lines.
    lines = paper_seeds.read_text(encoding="utf-8").splitlines()
    assert [t.to_json() for t in tasks] == [json.loads(line) for line in lines]


def test_packaged_seed_set() -> None:
    tasks = load_seeds()
    assert load_seeds(None) == tasks
    assert load_seeds(default_seed_path()) == tasks
    assert len(tasks) >= 100
    assert sum(t.is_classification for t in tasks) >= 20
    for task in tasks:
        assert task.instruction.strip()
        assert len(task.instances) >= 1, task.id
        assert all(i.output.strip() for i in task.instances), task.id
    assert len({t.id for t in tasks}) == len(tasks)
    assert len({t.instruction for t in tasks}) == len(tasks)


def test_jsonl_parses_every_field(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.jsonl",
        jsonl(
            task_line(0),
            "",
            task_line(
                1,
                id="clf",
                name="sentiment",
                instruction="Is this review positive?",
                instances=[
                    {"input": "Great!", "output": "Yes"},
                    {"input": "Awful.", "output": "No"},
                ],
                is_classification=True,
            ),
            "   ",
        ),
    )
    tasks = load_seeds(path)
    assert tasks == [
        SeedTask(
            "seed_task_0",
            "task_0",
            "Write a short poem about the number 0.",
            (Instance("", "Poem number 0."),),
            False,
        ),
        SeedTask(
            "clf",
            "sentiment",
            "Is this review positive?",
            (Instance("Great!", "Yes"), Instance("Awful.", "No")),
            True,
        ),
    ]


@pytest.mark.parametrize("name", ["s.json", "S.JSONL"])
def test_jsonl_other_extensions(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, jsonl(task_line(0), task_line(1)))
    assert [t.id for t in load_seeds(path)] == ["seed_task_0", "seed_task_1"]


def test_jsonl_utf8_bom_and_crlf(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.jsonl",
        b"\xef\xbb\xbf" + (task_line(0) + "\r\n" + task_line(1) + "\r\n").encode(),
    )
    assert [t.id for t in load_seeds(path)] == ["seed_task_0", "seed_task_1"]


def test_txt_one_instruction_per_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.txt",
        "# my seeds\n\nWrite a haiku about rain.\n   \n"
        "  Name three primary colors.  \n# Translate this.\n\tSummarize Hamlet.\n",
    )
    tasks = load_seeds(path)
    assert [t.instruction for t in tasks] == [
        "Write a haiku about rain.",
        "Name three primary colors.",
        "Summarize Hamlet.",
    ]
    assert [t.id for t in tasks] == ["seed_task_0", "seed_task_1", "seed_task_2"]
    assert len({t.name for t in tasks}) == 3
    assert all(t.instances == () and not t.is_classification for t in tasks)


def test_csv_groups_rows_and_reads_quoted_multiline_cells(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        (
            "instruction,input,output\n"
            "Add the numbers.,2 3,5\n"
            'Write a limerick about a cat.,,"There once was a cat\nwho sat on a mat,\n'
            'and that, ""she"" said, was that."\n'
            "Add the numbers.,10 20,30\n"
            "\n"
            'Add the numbers.,"1, 1",2\n'
        ),
    )
    tasks = load_seeds(path)
    assert [t.instruction for t in tasks] == ["Add the numbers.", "Write a limerick about a cat."]
    assert tasks[0].instances == (
        Instance("2 3", "5"),
        Instance("10 20", "30"),
        Instance("1, 1", "2"),
    )
    assert tasks[1].instances == (
        Instance("", 'There once was a cat\nwho sat on a mat,\nand that, "she" said, was that.'),
    )
    assert [t.id for t in tasks] == ["seed_task_0", "seed_task_1"]


def test_csv_optional_columns_in_any_order(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        (
            "id, is_classification ,output,instruction,name,input\r\n"
            "sent,yes,Positive,Classify the sentiment.,sentiment,I love it\r\n"
            ",no,Blue,Name a color.,,\r\n"
            ",TRUE,Negative,Classify the sentiment.,,I hate it\r\n"
        ),
    )
    tasks = load_seeds(path)
    assert tasks == [
        SeedTask(
            "sent",
            "sentiment",
            "Classify the sentiment.",
            (Instance("I love it", "Positive"), Instance("I hate it", "Negative")),
            True,
        ),
        SeedTask("seed_task_1", "task_1", "Name a color.", (Instance("", "Blue"),), False),
    ]


def test_csv_instruction_only_column(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "instruction\nWrite a haiku.\nName a color.\n")
    tasks = load_seeds(path)
    assert [(t.instruction, t.instances) for t in tasks] == [
        ("Write a haiku.", ()),
        ("Name a color.", ()),
    ]


def test_yaml_list_with_instances(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.yaml",
        """\
# seed tasks
- instruction: Classify the sentiment of the review.
  id: sentiment
  name: review_sentiment
  is_classification: true
  instances:
    - input: I love it.
      output: Positive
    - input: |
        Broke after a day.
        Never again.
      output: Negative
- instruction: Name a primary color.
  output: Blue
- instruction: Write a haiku about rain.
- instruction: Name a primary color.
  input: ""
  output: Red
""",
    )
    tasks = load_seeds(path)
    assert tasks == [
        SeedTask(
            "sentiment",
            "review_sentiment",
            "Classify the sentiment of the review.",
            (
                Instance("I love it.", "Positive"),
                Instance("Broke after a day.\nNever again.\n", "Negative"),
            ),
            True,
        ),
        SeedTask(
            "seed_task_1",
            "task_1",
            "Name a primary color.",
            (Instance("", "Blue"), Instance("", "Red")),
            False,
        ),
        SeedTask("seed_task_2", "task_2", "Write a haiku about rain.", (), False),
    ]


def test_yml_extension(tmp_path: Path) -> None:
    path = write(tmp_path, "s.yml", "- instruction: Name a color.\n  output: Blue\n")
    assert load_seeds(path)[0].instances == (Instance("", "Blue"),)


def test_seed_hash_is_format_independent(tmp_path: Path) -> None:
    as_jsonl = write(
        tmp_path,
        "s.jsonl",
        jsonl(
            task_line(0, instruction="Name a color.", instances=[{"input": "", "output": "Blue"}])
        ),
    )
    as_csv = write(
        tmp_path, "s.csv", "id,name,instruction,output\nseed_task_0,task_0,Name a color.,Blue\n"
    )
    as_yaml = write(
        tmp_path,
        "s.yaml",
        "- {id: seed_task_0, name: task_0, instruction: Name a color., output: Blue}\n",
    )
    hashes = {seed_hash(load_seeds(p)) for p in (as_jsonl, as_csv, as_yaml)}
    assert len(hashes) == 1


# ---------------------------------------------------------------------------------------------
# Malformed files, every format


@pytest.mark.parametrize("ext", FORMATS)
def test_empty_file(tmp_path: Path, ext: str) -> None:
    expect_error(write(tmp_path, f"seeds{ext}", ""), line=None, detail="empty")


@pytest.mark.parametrize("ext", FORMATS)
def test_whitespace_only_file(tmp_path: Path, ext: str) -> None:
    expect_error(write(tmp_path, f"seeds{ext}", " \n\t\n\r\n   "), line=None, detail="empty")


@pytest.mark.parametrize("ext", FORMATS)
@pytest.mark.parametrize("line", [1, 3])
def test_invalid_utf8_names_line(tmp_path: Path, ext: str, line: int) -> None:
    lines = VALID[ext].encode("utf-8").split(b"\n")
    lines[line - 1] = lines[line - 1][:5] + b"\xff\xfe" + lines[line - 1][5:]
    path = write(tmp_path, f"seeds{ext}", b"\n".join(lines))
    expect_error(path, line=line, field=None, detail="UTF-8")


@pytest.mark.parametrize("ext", FORMATS)
def test_nul_bytes_are_binary(tmp_path: Path, ext: str) -> None:
    lines = VALID[ext].encode("utf-8").split(b"\n")
    lines[1] = b"\x00\x01\x02\x03binary\x00"
    path = write(tmp_path, f"seeds{ext}", b"\n".join(lines))
    expect_error(path, line=2, detail="NUL")


@pytest.mark.parametrize("ext", FORMATS)
def test_binary_file(tmp_path: Path, ext: str) -> None:
    # A PNG header: not UTF-8 (0x89 on line 1).
    path = write(tmp_path, f"seeds{ext}", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")
    expect_error(path, line=1, detail="UTF-8")


@pytest.mark.parametrize("name", ["seeds.docx", "seeds.tsv", "seeds.jsonl.bak", "seeds"])
def test_unknown_extension(tmp_path: Path, name: str) -> None:
    path = write(tmp_path, name, VALID[".txt"])
    err = expect_error(path, line=None, detail="unknown seed format")
    for ext in (".jsonl", ".txt", ".csv", ".yaml"):
        assert ext in err.detail


@pytest.mark.parametrize("ext", FORMATS)
def test_nonexistent_path(tmp_path: Path, ext: str) -> None:
    expect_error(tmp_path / f"missing{ext}", line=None, detail="not found")


@pytest.mark.parametrize("ext", FORMATS)
def test_directory_path(tmp_path: Path, ext: str) -> None:
    path = tmp_path / f"seeds{ext}"
    path.mkdir()
    expect_error(path, line=None, detail="directory")


def test_directory_without_extension_says_directory(tmp_path: Path) -> None:
    path = tmp_path / "seeds"
    path.mkdir()
    expect_error(path, detail="directory")


@pytest.mark.parametrize("ext", FORMATS)
def test_no_tasks_only_comments_or_header(tmp_path: Path, ext: str) -> None:
    content = {
        ".jsonl": "\n\n",  # blank lines only: caught as empty
        ".txt": "# nothing here\n# still nothing\n",
        ".csv": "instruction,input,output\n",
        ".yaml": "[]\n",
    }[ext]
    err = expect_error(write(tmp_path, f"seeds{ext}", content), line=None)
    assert "empty" in err.detail or "no seed tasks" in err.detail


# ---------------------------------------------------------------------------------------------
# JSONL (the paper's format)


def test_jsonl_bad_json_on_line_3(tmp_path: Path) -> None:
    path = write(
        tmp_path, "s.jsonl", jsonl(task_line(0), task_line(1), '{"id": "x", oops', task_line(3))
    )
    expect_error(path, line=3, field=None, detail="invalid JSON")


def test_jsonl_blank_lines_count_for_line_numbers(tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", jsonl(task_line(0), "", "", "", task_line(4, id=7)))
    expect_error(path, line=5, field="id")


@pytest.mark.parametrize("missing", ["id", "name", "instruction", "instances", "is_classification"])
def test_jsonl_missing_field(tmp_path: Path, missing: str) -> None:
    path = write(tmp_path, "s.jsonl", jsonl(task_line(0), task_line(1, **{missing: ...})))
    expect_error(path, line=2, field=missing, detail="missing")


@pytest.mark.parametrize(
    ("changes", "field", "detail"),
    [
        ({"is_classification": "yes"}, "is_classification", "expected true or false"),
        ({"is_classification": 1}, "is_classification", "expected true or false"),
        ({"is_classification": None}, "is_classification", "null"),
        ({"instances": "input: x, output: y"}, "instances", "list"),
        ({"instances": {"input": "", "output": "y"}}, "instances", "list"),
        ({"instances": [{"input": "", "output": 5}]}, "instances[0].output", "string"),
        (
            {"instances": [{"input": "", "output": "ok"}, {"input": ["a"], "output": "b"}]},
            "instances[1].input",
            "string",
        ),
        ({"instances": [{"input": ""}]}, "instances[0].output", "missing"),
        ({"instances": [{"output": "x"}]}, "instances[0].input", "missing"),
        ({"instances": ["just text"]}, "instances[0]", "object"),
        ({"id": 12}, "id", "string"),
        ({"id": ""}, "id", "empty"),
        ({"name": None}, "name", "string"),
        ({"instruction": "   "}, "instruction", "empty"),
        ({"instruction": ["Write", "a poem"]}, "instruction", "string"),
    ],
)
def test_jsonl_mistyped_field(tmp_path: Path, changes: dict, field: str, detail: str) -> None:
    path = write(tmp_path, "s.jsonl", jsonl(task_line(0), task_line(1), task_line(2, **changes)))
    expect_error(path, line=3, field=field, detail=detail)


@pytest.mark.parametrize("line_text", ['["a", "b"]', '"text"', "42", "null"])
def test_jsonl_line_not_an_object(tmp_path: Path, line_text: str) -> None:
    path = write(tmp_path, "s.jsonl", jsonl(task_line(0), line_text))
    expect_error(path, line=2, field=None, detail="object")


def test_jsonl_whole_file_json_array(tmp_path: Path) -> None:
    path = write(tmp_path, "s.json", "[\n" + task_line(0) + ",\n" + task_line(1) + "\n]\n")
    expect_error(path, line=1)


def test_jsonl_duplicate_id_names_second_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "s.jsonl", jsonl(task_line(0), task_line(1), "", task_line(2, id="seed_task_0"))
    )
    err = expect_error(path, line=4, field="id", detail="duplicate id 'seed_task_0'")
    assert "line 1" in err.detail


def test_jsonl_utf8_bom_mid_file(tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", task_line(0) + "\n\ufeff" + task_line(1) + "\n")
    expect_error(path, line=2)


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85"])
def test_jsonl_line_separator_characters_inside_strings(tmp_path: Path, char: str) -> None:
    """JSON allows these raw inside strings (json.dumps(ensure_ascii=False) writes them);
    only "\\n" ends a JSON Lines record."""
    path = write(
        tmp_path,
        "s.jsonl",
        jsonl(task_line(0, instruction=f"Split here{char}please."), task_line(1)),
    )
    assert "\\u" not in path.read_text(encoding="utf-8")  # written raw, as json.dumps does
    tasks = load_seeds(path)
    assert tasks[0].instruction == f"Split here{char}please."
    # ...and they do not shift the line numbers of later errors.
    path = write(tmp_path, "s.jsonl", jsonl(task_line(0, name=f"a{char}b"), task_line(1, id=3)))
    expect_error(path, line=2, field="id")


def test_jsonl_huge_integer(tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", jsonl(task_line(0), '{"id": ' + "7" * 5000 + "}"))
    expect_error(path, line=2)


def test_jsonl_deeply_nested(tmp_path: Path) -> None:
    path = write(tmp_path, "s.jsonl", jsonl(task_line(0), "[" * 100_000))
    expect_error(path, line=2)


# ---------------------------------------------------------------------------------------------
# CSV


@pytest.mark.parametrize(
    "header", ["prompt,input,output", "Instruction,input,output", "instructions,input,output"]
)
def test_csv_without_instruction_column(tmp_path: Path, header: str) -> None:
    path = write(tmp_path, "s.csv", f"{header}\nWrite a haiku.,,Rain.\n")
    expect_error(path, line=1, field="instruction", detail="no 'instruction' column")


@pytest.mark.parametrize(
    ("row", "found"), [("Name a color.,", 2), ("Name a color.,,Blue,x", 4), ("Name a color.", 1)]
)
def test_csv_row_with_wrong_column_count(tmp_path: Path, row: str, found: int) -> None:
    path = write(tmp_path, "s.csv", f"instruction,input,output\nWrite a haiku.,,Rain.\n{row}\n")
    expect_error(path, line=3, field=None, detail=f"expected 3 columns, found {found}")


def test_csv_wrong_column_count_after_multiline_record(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        'instruction,input,output\n"Write\na haiku.",,Rain.\nName a color.,Blue\n',
    )
    expect_error(path, line=4, detail="expected 3 columns")


def test_csv_error_in_multiline_record_names_its_first_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        'is_classification,instruction,output\nmaybe,Write a poem.,"Roses\nare\nred."\n',
    )
    expect_error(path, line=2, field="is_classification")


def test_csv_unknown_column(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        "instruction,input,output,notes\nWrite a haiku.,,Rain.,x\nName a color.,,Blue,x\n",
    )
    expect_error(path, line=2, field="notes", detail="unknown column")


def test_csv_header_with_an_unnamed_column(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "instruction,input,output,\nWrite a haiku.,,Rain.,\n")
    expect_error(path, line=1, detail="column 4 of the header row has no name")


def test_csv_duplicate_column(tmp_path: Path) -> None:
    path = write(tmp_path, "s.csv", "instruction,output,output\nName a color.,Blue,Red\n")
    expect_error(path, line=1, field="output")


@pytest.mark.parametrize(
    ("content", "line"),
    [
        ('instruction,input,output\nWrite a haiku.,"unterminated,Rain.\n', 2),
        ('instruction,input,output\nWrite a haiku.,"a"b,Rain.\n', 2),
        ('instruction,input,output\nName a color.,,Blue\nWrite a haiku.,"a"b,Rain.\n', 3),
    ],
)
def test_csv_malformed_quoting(tmp_path: Path, content: str, line: int) -> None:
    expect_error(write(tmp_path, "s.csv", content), line=line, detail="malformed CSV")


@pytest.mark.parametrize(
    ("text", "line", "field", "detail"),
    [
        (
            "instruction,output,is_classification\nName a color.,Blue,no\nIs it spam?,Yes,maybe\n",
            3,
            "is_classification",
            "'maybe'",
        ),
        (
            "instruction,input,output\nName a color.,,Blue\nTranslate into French.,hello,\n",
            3,
            "output",
            "output",
        ),
        ("instruction,input,output\nName a color.,,Blue\n  ,x,y\n", 3, "instruction", "empty"),
        (
            "id,instruction,output\na,Name a color.,Blue\nb,Write a haiku.,Rain.\n"
            "a,Add 2 and 2.,4\n",
            4,
            "id",
            "duplicate id 'a'",
        ),
    ],
    ids=[
        "bad_is_classification",
        "input_without_output",
        "blank_instruction",
        "duplicate_id_names_second_row",
    ],
)
def test_csv_bad_row(tmp_path: Path, text: str, line: int, field: str, detail: str) -> None:
    expect_error(write(tmp_path, "s.csv", text), line=line, field=field, detail=detail)


def test_csv_field_too_large(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "s.csv",
        "instruction,input,output\nName a color.,,Blue\nSummarize.," + "x" * 200_000 + ",y\n",
    )
    expect_error(path, line=3, detail="malformed CSV")


# ---------------------------------------------------------------------------------------------
# YAML


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (
            "- instruction: Name a color.\n  output: Blue\n- instruction: [unclosed\n  output: x\n",
            4,
        ),
        ("- instruction: Name a color.\n  output: Blue\n - instruction: bad indent\n", 3),
        ("- instruction: Name a color.\n  output: 'unterminated\n", 3),
        ("- instruction: Name a color.\n\toutput: tab\n", 2),
        ("- instruction: A\n---\n- instruction: B\n", 2),
    ],
)
def test_yaml_syntax_error_names_line(tmp_path: Path, content: str, line: int) -> None:
    expect_error(write(tmp_path, "s.yaml", content), line=line, detail="invalid YAML")


@pytest.mark.parametrize(
    "content",
    [
        "instruction: Name a color.\noutput: Blue\n",
        "just a sentence\n",
        "42\n",
        "tasks:\n  - instruction: Name a color.\n",
    ],
)
def test_yaml_top_level_not_a_list(tmp_path: Path, content: str) -> None:
    expect_error(write(tmp_path, "s.yaml", content), line=1, detail="list")


def test_yaml_empty_document(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "s.yaml", "# just a comment\n"), line=None, detail="empty")


@pytest.mark.parametrize(
    ("item", "detail"),
    [
        ("- Write a haiku about rain.", "mapping"),
        ("- [Write a haiku, Rain]", "mapping"),
        ("- ~", "mapping"),
    ],
)
def test_yaml_item_not_a_mapping(tmp_path: Path, item: str, detail: str) -> None:
    content = "- instruction: Name a color.\n  output: Blue\n\n" + item + "\n"
    expect_error(write(tmp_path, "s.yaml", content), line=4, field=None, detail=detail)


def test_yaml_unknown_key(tmp_path: Path) -> None:
    content = (
        "- instruction: Name a color.\n  output: Blue\n"
        "- instruction: Write a haiku.\n  outputs: Rain.\n"
    )
    expect_error(
        write(tmp_path, "s.yaml", content), line=3, field="outputs", detail="unknown column"
    )


def test_yaml_missing_instruction(tmp_path: Path) -> None:
    content = "- instruction: Name a color.\n  output: Blue\n- input: x\n  output: y\n"
    expect_error(write(tmp_path, "s.yaml", content), line=3, field="instruction", detail="missing")


@pytest.mark.parametrize(
    ("item", "field", "detail"),
    [
        ("instruction: 42", "instruction", "string"),
        ("instruction: Name a color.\n  output: 5", "output", "string"),
        ("instruction: Name a color.\n  output: [Blue, Red]", "output", "string"),
        ("instruction: Name a color.\n  input: {a: 1}\n  output: Blue", "input", "string"),
        ("instruction: Name a color.\n  instances: Blue", "instances", "list"),
        ("instruction: Name a color.\n  instances: {input: '', output: Blue}", "instances", "list"),
        (
            "instruction: Name a color.\n  instances:\n    - output: 7",
            "instances[0].output",
            "string",
        ),
        (
            "instruction: Name a color.\n  instances:\n    - output: ok\n    - Blue",
            "instances[1]",
            "object",
        ),
        (
            "instruction: Name a color.\n  instances:\n    - input: x",
            "instances[0].output",
            "output",
        ),
        (
            "instruction: Is it spam?\n  is_classification: perhaps",
            "is_classification",
            "true or false",
        ),
        ("instruction: Is it spam?\n  is_classification: 3", "is_classification", "true or false"),
        ("instruction: Name a color.\n  id: [1, 2]", "id", "string"),
        ("instruction: 2023-02-01", "instruction", "string"),
    ],
)
def test_yaml_mistyped_field(tmp_path: Path, item: str, field: str, detail: str) -> None:
    content = "- instruction: Write a haiku.\n  output: Rain.\n- " + item + "\n"
    expect_error(write(tmp_path, "s.yaml", content), line=3, field=field, detail=detail)


def test_yaml_duplicate_id_names_second_item(tmp_path: Path) -> None:
    content = (
        "- {id: a, instruction: Name a color., output: Blue}\n"
        "- {id: b, instruction: Write a haiku., output: Rain.}\n"
        "- id: a\n  instruction: Add 2 and 2.\n  output: '4'\n"
    )
    expect_error(write(tmp_path, "s.yaml", content), line=3, field="id", detail="duplicate id 'a'")


def test_yaml_python_tags_are_not_constructed(tmp_path: Path) -> None:
    content = "- !!python/object/apply:os.system ['echo pwned']\n"
    expect_error(write(tmp_path, "s.yaml", content), line=1, detail="invalid YAML")


@pytest.mark.parametrize("value", ["0", "false", "[]"])
def test_yaml_falsy_non_string_input(tmp_path: Path, value: str) -> None:
    content = f"- instruction: Double the number.\n  input: {value}\n  output: '0'\n"
    expect_error(write(tmp_path, "s.yaml", content), line=1, field="input")


def test_yaml_unknown_key_inside_instance(tmp_path: Path) -> None:
    content = (
        "- instruction: Translate into French.\n  instances:\n"
        "    - inptu: hello\n      output: bonjour\n"
    )
    expect_error(write(tmp_path, "s.yaml", content), line=1, field="instances[0].inptu")


def test_yaml_duplicate_key(tmp_path: Path) -> None:
    content = "- instruction: Name a color.\n  output: Blue\n  output: Red\n"
    expect_error(write(tmp_path, "s.yaml", content), line=3, field="output")


def test_yaml_impossible_date(tmp_path: Path) -> None:
    content = "- instruction: Name the weekday.\n  input: 2023-02-30\n  output: none\n"
    expect_error(write(tmp_path, "s.yaml", content), line=2)


def test_yaml_huge_integer(tmp_path: Path) -> None:
    content = "- instruction: Name a color.\n  output: " + "9" * 5000 + "\n"
    expect_error(write(tmp_path, "s.yaml", content), line=2)


def test_yaml_deeply_nested(tmp_path: Path) -> None:
    expect_error(write(tmp_path, "s.yaml", "[" * 5000 + "]" * 5000 + "\n"))


# ---------------------------------------------------------------------------------------------
# Property: any content either loads or raises InputError


SYNTAX = [
    "{",
    "}",
    "[",
    "]",
    '"',
    "'",
    ":",
    ",",
    "-",
    " ",
    "  ",
    "\n",
    "\r\n",
    "\t",
    "#",
    "&a",
    "*a",
    "!!str",
    "?",
    "|",
    ">",
    "---",
    "null",
    "true",
    "yes",
    "1",
    "1.5",
    "\\",
    "\\u0000",
    "\\ud800",
    "id",
    "name",
    "instruction",
    "input",
    "output",
    "instances",
    "is_classification",
    '"id"',
    '"instruction"',
    '"instances"',
    "\u2028",
    "\x85",
    "\ufeff",
    "é",
    "日本",
]

contents = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda s: s.encode("utf-8")),
    st.lists(st.sampled_from(SYNTAX), max_size=60).map(lambda t: "".join(t).encode("utf-8")),
)


def check_loads_or_input_error(path: Path, data: bytes) -> None:
    path.write_bytes(data)
    try:
        tasks = load_seeds(path)
    except InputError as err:
        assert str(err).startswith(str(path))
        assert err.line is None or err.line >= 1
    else:
        assert tasks
        assert all(isinstance(t, SeedTask) and t.instruction.strip() for t in tasks)
        assert len({t.id for t in tasks}) == len(tasks)


PROPERTY_SETTINGS = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@PROPERTY_SETTINGS
@given(ext=st.sampled_from([".jsonl", ".csv", ".txt"]), data=contents)
def test_any_content_loads_or_raises_input_error(tmp_path: Path, ext: str, data: bytes) -> None:
    check_loads_or_input_error(tmp_path / f"seeds{ext}", data)


@PROPERTY_SETTINGS
@given(data=contents)
def test_any_yaml_content_loads_or_raises_input_error(tmp_path: Path, data: bytes) -> None:
    check_loads_or_input_error(tmp_path / "seeds.yaml", data)


@pytest.mark.parametrize("char", ["\x1b", "\x7f", "\x0c", "\x01"])
def test_yaml_control_character(tmp_path: Path, char: str) -> None:
    content = f"- instruction: Name a color.\n  output: Bl{char}ue\n"
    expect_error(write(tmp_path, "s.yaml", content), line=2)


@pytest.mark.parametrize("char", ["\x1b", "\x7f", "\x0c", "\x01"])
@pytest.mark.parametrize("ext", [".jsonl", ".csv", ".txt"])
def test_control_characters_elsewhere_load_or_raise_input_error(
    tmp_path: Path, ext: str, char: str
) -> None:
    text = VALID[ext].replace("Name", f"Na{char}me", 1).replace("poem", f"po{char}em", 1)
    check_loads_or_input_error(tmp_path / f"seeds{ext}", text.encode("utf-8"))
