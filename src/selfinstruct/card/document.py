"""The dataset card: exports/README.md in the Hugging Face dataset-card format.

A YAML header (license, language, task categories, size category, one config per export
file) written by a YAML serializer from settings and file names only (never model output),
then a body rendered from the template `templates/card/README.md` with `string.Template`.
"""

from __future__ import annotations

import json
import math
import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from selfinstruct.analysis.table1 import Table1
from selfinstruct.io.atomic import write_atomic
from selfinstruct.paper import table1_figure

CARD_FILE = "README.md"
TAGS = ("self-instruct", "synthetic", "instruction-tuning")
# The Hub's size buckets: (upper bound, name); beyond the last one "n>1T".
SIZE_CATEGORIES = (
    (10**3, "n<1K"),
    (10**4, "1K<n<10K"),
    (10**5, "10K<n<100K"),
    (10**6, "100K<n<1M"),
    (10**7, "1M<n<10M"),
    (10**8, "10M<n<100M"),
    (10**9, "100M<n<1B"),
    (10**10, "1B<n<10B"),
    (10**11, "10B<n<100B"),
    (10**12, "100B<n<1T"),
)
# The rows of Table 1, by Table1 field, beside the paper's figures (paper.py).
TABLE1_ROWS = (
    ("instructions", "instructions"),
    ("classification", "classification instructions"),
    ("non_classification", "non-classification instructions"),
    ("unlabelled", "instructions not labelled yet"),
    ("instances", "instances"),
    ("empty_input", "instances with an empty input"),
    ("avg_instruction_words", "average instruction length (words)"),
    ("avg_input_words", "average non-empty input length (words)"),
    ("avg_output_words", "average output length (words)"),
)
PACKAGED_MODEL_WARNING = (  # the last item of the limitations
    "\n- **This data was made by the embedded default model (SmolLM2-135M-Instruct), which "
    "shows the pipeline working offline but does not write useful data.** Do not train on "
    "it; generate again with a capable model (`--backend openai`)."
)

Fact = tuple[str, str]  # (what, value), a line of "How the data was made"


@dataclass(frozen=True)
class Dropped:
    """What a stage dropped, counted by reason (`unit`: what it counts)."""

    stage: str
    unit: str
    reasons: Mapping[str, int]


@dataclass(frozen=True)
class CardData:
    """Everything the card says. Facts are markdown, settings plain values (shown as TOML)."""

    pretty_name: str
    license: str
    language: str
    records: int  # records in the default data file (the size category)
    data_files: Sequence[str]  # file names beside the card; the first is the default config
    made_with: Sequence[Fact]
    table1: Table1
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)  # "" = core keys
    dropped: Sequence[Dropped] = ()
    packaged_model: bool = False  # the embedded default model made the data
    software: str = ""
    quality: str = ""  # markdown: the quality checks and the judge's Table 2
    reviewed: int = 0  # instances people rated (selfinstruct review)


NO_QUALITY = "No checks beyond the paper's filters."


def size_category(records: int) -> str:
    for bound, name in SIZE_CATEGORIES:
        if records < bound:
            return name
    return "n>1T"


def header(data: CardData) -> dict[str, Any]:
    """The YAML header's fields."""
    return {
        "license": data.license,
        "language": [data.language],
        "task_categories": ["text-generation"],
        "tags": list(TAGS),
        "size_categories": [size_category(data.records)],
        "pretty_name": one_line(data.pretty_name),
        "configs": [
            {
                "config_name": config_name(name),
                "data_files": [{"split": "train", "path": name}],
                **({"default": True} if i == 0 else {}),
            }
            for i, name in enumerate(data.data_files)
        ],
    }


def header_text(data: CardData) -> str:
    """The header between its `---` lines: every value on one line, quoted as YAML needs."""
    text = yaml.safe_dump(
        header(data), sort_keys=False, allow_unicode=True, width=math.inf, default_flow_style=False
    )
    return f"---\n{text}---\n"


def render(data: CardData, template: str | None = None) -> str:
    body = string.Template(template if template is not None else card_template())
    return header_text(data) + "\n" + body.substitute(_values(data))


def write_card(directory: Path, data: CardData) -> Path:
    """Write the card as README.md in `directory` (atomically); returns its path."""
    path = directory / CARD_FILE
    write_atomic(path, [render(data)])
    return path


def card_template() -> str:
    return (resources.files("selfinstruct") / "templates" / "card" / CARD_FILE).read_text(
        encoding="utf-8"
    )


def config_name(file_name: str) -> str:
    return file_name.split(".", 1)[0]


def one_line(text: str) -> str:
    return " ".join(text.split())


def code(text: object) -> str:
    """Markdown inline code that holds any text (a longer backtick fence than it contains)."""
    value = one_line(str(text))
    ticks = "`" * (max((len(run) for run in re.findall(r"`+", value)), default=0) + 1)
    pad = " " if value.startswith("`") or value.endswith("`") else ""
    return f"{ticks}{pad}{value}{pad}{ticks}"


def _values(data: CardData) -> dict[str, str]:
    return {
        "pretty_name": _escape_markdown(one_line(data.pretty_name)),
        "records": f"{data.records:,}",
        "license": code(data.license),
        "files": _files(data.data_files),
        "default_file": data.data_files[0] if data.data_files else "",
        "default_config": config_name(data.data_files[0]) if data.data_files else "",
        "made_with": "\n".join(f"- {what}: {value}" for what, value in data.made_with),
        "settings": _settings(data.settings),
        "table1": _table1(data.table1),
        "dropped": _dropped(data.dropped),
        "quality": data.quality or NO_QUALITY,
        "checked": _checked(data.reviewed),
        "model_warning": PACKAGED_MODEL_WARNING if data.packaged_model else "",
        "software": data.software or "unknown",
    }


def _checked(reviewed: int) -> str:
    """Who checked the data, in the first limitation (its line breaks are the card's)."""
    if not reviewed:
        return "none was checked by a\n  person"
    return (
        f"people rated a sample of\n  {reviewed:,} instances (see Quality checks), and none of "
        "the others was checked by a person"
    )


def _escape_markdown(text: str) -> str:
    return re.sub(r"([\\`*_{}\[\]<>#|!])", r"\\\1", text)


def _files(names: Sequence[str]) -> str:
    return "\n".join(f"- {code(name)} (config {code(config_name(name))})" for name in names)


def _settings(sections: Mapping[str, Mapping[str, Any]]) -> str:
    """TOML, as a --config file holds it (core keys first)."""
    lines: list[str] = []
    for section, values in sections.items():
        if section:
            lines += ["", f"[{section}]"] if lines else [f"[{section}]"]
        lines += [f"{key} = {_toml(value)}" for key, value in values.items()]
    return "```toml\n" + "\n".join(lines) + "\n```" if lines else "(not recorded)"


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    return json.dumps(str(value))  # a TOML basic string (ASCII, escaped)


def _table1(table: Table1) -> str:
    values = table.as_dict()
    rows = [
        "| | this dataset | the paper (GPT-3) |",
        "| --- | ---: | ---: |",
    ]
    for key, label in TABLE1_ROWS:
        value = values[key]
        if key == "unlabelled" and not value:
            continue
        shown = f"{value:.2f}" if isinstance(value, float) else f"{value:,}"
        rows.append(f"| {label} | {shown} | {table1_figure(key)} |")
    return "\n".join(rows)


def _dropped(dropped: Sequence[Dropped]) -> str:
    rows = [
        f"| {d.stage} | {d.unit} | {code(reason)} | {count:,} |"
        for d in dropped
        for reason, count in d.reasons.items()
        if count
    ]
    if not rows:
        return "The filters dropped nothing."
    return "\n".join(["| stage | dropped | reason | count |", "| --- | --- | --- | ---: |", *rows])
