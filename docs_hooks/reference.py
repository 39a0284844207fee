"""MkDocs hook: the parts of the documentation that are generated when the site is built.

- The configuration reference: the core keys, then one table per settings section (key, type,
  default, description), read from the settings dataclasses and their source (each field's
  description is the comment or attribute docstring beside it; a stage's default stop
  sequences are worked out by the stage). It replaces the block between `GENERATED_START`
  and `GENERATED_END` in a page (reference/configuration.md).
- The architecture's layers: pyproject.toml's import contract, each layer's packages with the
  first line of their docstring (the block between `LAYERS_START` and `LAYERS_END`).
- The drop reasons: every reason's name and what it means, from `selfinstruct.filters.reasons`
  (the block between `REASONS_START` and `REASONS_END`).
- BENCHMARKS.md, published as the page `benchmarks.md`; a link to the repository file from a
  page (`../BENCHMARKS.md#...`, right when the pages are read as files) is pointed at it.
- The reference documents what selfinstruct ships: backends that plug-ins installed where the
  site is built add are left out, here and in the command line reference that mkdocs-click
  writes.

Nothing generated is written to the repository.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import json
import logging
import posixpath
import re
import textwrap
import tokenize
import tomllib
import types
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page


@dataclass(frozen=True)
class Sources:
    """What the configuration reference is generated from."""

    section_types: Callable[[], dict[str, type]]  # {section name: settings dataclass}
    core_keys: tuple[str, ...]
    config: type  # its fields give the core keys' types and defaults
    pricing: type  # the [pricing] section
    default_stops: Callable[[str, str], list[str]]  # a stage's stops for (stage, style)
    stages: Callable[[], list[str]]


def sources() -> Sources:
    """The one place that knows where the settings live."""
    from selfinstruct.config import CORE_KEYS, PROMPT_STYLES, Config, PricingSettings
    from selfinstruct.run.layers import section_types
    from selfinstruct.stages.registry import default_stops, stage_names

    def stops(stage: str, style: str) -> list[str]:
        assert style in PROMPT_STYLES
        return default_stops(stage, style)

    return Sources(section_types, tuple(CORE_KEYS), Config, PricingSettings, stops, stage_names)


log = logging.getLogger("mkdocs.hooks.reference")

HERE = Path(__file__).resolve().parent
GUIDES_FILE = HERE / "section_guides.toml"
GENERATED_START = "<!-- generated:configuration -->"
GENERATED_END = "<!-- /generated:configuration -->"
LAYERS_START = "<!-- generated:layers -->"
LAYERS_END = "<!-- /generated:layers -->"
REASONS_START = "<!-- generated:reasons -->"
REASONS_END = "<!-- /generated:reasons -->"
PRICING = "pricing"
BACKEND_PLUGINS = "selfinstruct.backends"  # the entry-point group of backend plug-ins
# Repository files published as pages: {path from the repository root: page in docs/}.
PUBLISHED = {"BENCHMARKS.md": "benchmarks.md"}
LINK = re.compile(r"\]\((?P<target>[^)#\s]+)(?P<anchor>#[^)\s]*)?\)")
TYPE_WORDS = {bool: "boolean", int: "integer", float: "float", str: "string"}


# --- MkDocs events -----------------------------------------------------------------------


def on_config(config: MkDocsConfig) -> MkDocsConfig:
    _hide_backend_plugins()
    return config


def on_files(files: Files, config: MkDocsConfig) -> Files:
    root = _repository_root(config)
    for source, page in PUBLISHED.items():
        text = (root / source).read_text(encoding="utf-8")
        files.append(File.generated(config, page, content=text))
    return files


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    if GENERATED_START in markdown:
        generated = configuration_reference(page.file.src_uri, Path(config.docs_dir))
        markdown = _replace_block(markdown, generated, GENERATED_START, GENERATED_END)
    if LAYERS_START in markdown:
        layers = layers_table(_repository_root(config))
        markdown = _replace_block(markdown, layers, LAYERS_START, LAYERS_END)
    if REASONS_START in markdown:
        markdown = _replace_block(markdown, reasons_table(), REASONS_START, REASONS_END)
    return _point_at_published(markdown, page.file.src_uri, config)


# --- Plug-ins left out ---------------------------------------------------------------------


def _hide_backend_plugins() -> None:
    """Make the `selfinstruct.backends` entry-point group look empty to this process."""
    original = metadata.entry_points
    if getattr(original, "hides_backend_plugins", False):
        return

    def entry_points(**params: Any) -> Any:
        if params.get("group") == BACKEND_PLUGINS:
            return metadata.EntryPoints(())
        return original(**params)

    entry_points.hides_backend_plugins = True  # type: ignore[attr-defined]
    metadata.entry_points = entry_points


# --- Links to published repository files ---------------------------------------------------


def _repository_root(config: MkDocsConfig) -> Path:
    return Path(config.config_file_path).resolve().parent


def _point_at_published(markdown: str, src_uri: str, config: MkDocsConfig) -> str:
    """`](../BENCHMARKS.md#x)` in a page becomes `](benchmarks.md#x)`, relative to the page."""
    docs = Path(config.docs_dir).resolve()
    root = _repository_root(config)
    page_dir = posixpath.dirname(src_uri)

    def replace(match: re.Match[str]) -> str:
        target = match.group("target")
        if "://" in target:
            return match.group(0)
        resolved = (docs / page_dir / target).resolve()
        for source, page in PUBLISHED.items():
            if resolved == root / source:
                relative = posixpath.relpath(page, page_dir or ".")
                return f"]({relative}{match.group('anchor') or ''})"
        return match.group(0)

    return LINK.sub(replace, markdown)


# --- The configuration reference -----------------------------------------------------------


@dataclass(frozen=True)
class Row:
    key: str
    kind: str
    default: str
    about: str


def configuration_reference(src_uri: str, docs: Path) -> str:
    """The Markdown of every table, for the page at `src_uri` of the pages in `docs`."""
    found = sources()
    sections = _built_in(found.section_types())
    sections[PRICING] = found.pricing
    guides = _checked_guides(_read_guides(), sections)
    parts = [_core_table(found)]
    stages = set(found.stages())
    for name, cls in sections.items():
        stops = _stops(found, name) if name in stages else ""
        parts.append(_section_table(name, cls, guides, stops, docs, posixpath.dirname(src_uri)))
    return "\n".join(parts)


def _stops(found: Sources, stage: str) -> str:
    """A stage's default stop sequences in each prompt style ("" when it has none)."""
    shown = {style: found.default_stops(stage, style) for style in ("completion", "chat")}
    if not any(shown.values()):
        return ""
    if shown["completion"] == shown["chat"]:
        return f"Default: `{_toml(shown['chat'])}`."
    return f"Default: `{_toml(shown['completion'])}` (completion), `{_toml(shown['chat'])}` (chat)."


def _built_in(sections: Mapping[str, type]) -> dict[str, type]:
    """The sections of selfinstruct's own stages and backends."""
    return {
        name: cls
        for name, cls in sections.items()
        if cls.__module__ == "selfinstruct" or cls.__module__.startswith("selfinstruct.")
    }


def _core_table(found: Sources) -> str:
    hints = _hints(found.config)
    fields = {f.name: f for f in dataclasses.fields(found.config)}
    rows = [
        _row(key, fields[key], hints, _description(found.config, key)) for key in found.core_keys
    ]
    intro = (
        "Top-level keys of a config file (before any `[section]`); each has a flag of the "
        "same name (`num_instructions`: `--num-instructions`)."
    )
    return f"## Core keys {{#core-keys}}\n\n{intro}\n\n{_table(rows)}\n"


def _section_table(
    name: str, cls: type, guides: dict[str, str], stops: str, docs: Path, page_dir: str
) -> str:
    hints = _hints(cls)
    rows = []
    for item in dataclasses.fields(cls):
        about = _description(cls, item.name)
        if item.name == "stop" and stops:
            about = f"{about} {stops}".strip()
        rows.append(_row(item.name, item, hints, about))
    lines = [f"## `[{name}]` {{#{name}}}", ""]
    docstring = _class_docstring(cls)
    if docstring:
        lines += [_escape(docstring), ""]
    if name in guides:
        target, _, anchor = guides[name].partition("#")
        link = posixpath.relpath(target, page_dir or ".") + (f"#{anchor}" if anchor else "")
        lines += [f"More: [{_page_title(docs / target)}]({link}).", ""]
    lines.append(_table(rows))
    return "\n".join(lines) + "\n"


def _row(key: str, item: dataclasses.Field[Any], hints: dict[str, Any], about: str) -> Row:
    if item.metadata.get("paths"):
        about = f"{about} Paths relative to the config file.".strip()
    return Row(key, _type_words(hints.get(key, item.type)), _default(item), about)


def _table(rows: list[Row]) -> str:
    """A Markdown table in a `settings-table` block (docs/stylesheets/extra.css)."""
    lines = ["| key | type | default | description |", "| --- | --- | --- | --- |"]
    for row in rows:
        cells = [f"`{row.key}`", row.kind, row.default, _escape(row.about) or "&nbsp;"]
        lines.append("| " + " | ".join(cells) + " |")
    return '<div class="settings-table" markdown>\n\n' + "\n".join(lines) + "\n\n</div>"


def _hints(cls: type) -> dict[str, Any]:
    """Resolved annotations; the written ones where a name cannot be resolved."""
    try:
        return get_type_hints(cls)
    except (NameError, TypeError):
        return {f.name: f.type for f in dataclasses.fields(cls)}


def _type_words(hint: Any) -> str:
    if isinstance(hint, str):
        return f"`{hint}`"
    if get_origin(hint) in (Union, types.UnionType):
        return " or ".join(_type_words(a) for a in get_args(hint) if a is not type(None))
    if get_origin(hint) is list:
        (item,) = get_args(hint) or (Any,)
        return f"array of {_type_words(item)}s"
    return TYPE_WORDS.get(hint, getattr(hint, "__name__", str(hint)))


def _default(item: dataclasses.Field[Any]) -> str:
    if item.default is not dataclasses.MISSING:
        value = item.default
    elif item.default_factory is not dataclasses.MISSING:
        value = item.default_factory()
    else:
        return "*required*"
    return "*unset*" if value is None else f"`{_toml(value)}`"


def _toml(value: Any) -> str:
    """A default as it would be written in a config file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return repr(value)


def _escape(text: str) -> str:
    """Text for a table cell: one line, pipes escaped, `<` kept as text outside code."""
    pieces = " ".join(text.split()).split("`")
    for i in range(0, len(pieces), 2):  # outside code spans
        pieces[i] = pieces[i].replace("<", "&lt;")
    return "`".join(pieces).replace("|", "\\|")


# --- Descriptions from the source ----------------------------------------------------------


def _description(cls: type, name: str) -> str:
    """A field's description from the first class of the MRO whose source has one."""
    for owner in cls.__mro__:
        if dataclasses.is_dataclass(owner):
            found = _field_descriptions(owner).get(name)
            if found:
                return found
    return ""


def _field_descriptions(cls: type) -> dict[str, str]:
    """Per field defined in the class's own source: its attribute docstring, else its trailing
    comment, else the comment lines directly above it."""
    source, node = _class_source(cls)
    if node is None:
        return {}
    comments = dict(_comments(source))
    lines = source.splitlines()
    found = {}
    for index, statement in enumerate(node.body):
        if not (isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name)):
            continue
        following = node.body[index + 1] if index + 1 < len(node.body) else None
        text = (
            _string(following)
            or _trailing(statement, comments, lines)
            or _above(statement, comments, lines)
        )
        if text:
            found[statement.target.id] = text
    return found


def _class_source(cls: type) -> tuple[str, ast.ClassDef | None]:
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return "", None
    tree = ast.parse(source)
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef)), None)
    return source, node


def _class_docstring(cls: type) -> str:
    """The docstring written in the class (not the one dataclasses makes up)."""
    _, node = _class_source(cls)
    return (ast.get_docstring(node) or "") if node else ""


def _comments(source: str) -> Iterator[tuple[int, str]]:
    """(line number, comment text) of every comment."""
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            yield token.start[0], token.string.lstrip("#").strip()


def _string(statement: ast.stmt | None) -> str:
    if isinstance(statement, ast.Expr) and isinstance(statement.value, ast.Constant):
        value = statement.value.value
        if isinstance(value, str):
            return inspect.cleandoc(value)
    return ""


def _trailing(statement: ast.stmt, comments: dict[int, str], lines: list[str]) -> str:
    end = statement.end_lineno or statement.lineno
    for number in range(statement.lineno, end + 1):
        if number in comments and not _comment_only(lines[number - 1]):
            return comments[number]
    return ""


def _above(statement: ast.stmt, comments: dict[int, str], lines: list[str]) -> str:
    found: list[str] = []
    number = statement.lineno - 1
    while number >= 1 and number in comments and _comment_only(lines[number - 1]):
        found.insert(0, comments[number])
        number -= 1
    return " ".join(found)


def _comment_only(line: str) -> bool:
    return line.lstrip().startswith("#")


# --- Guides ---------------------------------------------------------------------------------


def _read_guides() -> dict[str, str]:
    """The page (from docs/) that explains each section, linked under its table."""
    return dict(tomllib.loads(GUIDES_FILE.read_text(encoding="utf-8")))


def _checked_guides(guides: dict[str, str], sections: Mapping[str, type]) -> dict[str, str]:
    """Every guide names a section that exists: a name left behind by a rename fails."""
    stale = sorted(set(guides) - set(sections))
    if stale:
        raise PluginError(f"{GUIDES_FILE.name} names sections that do not exist: {stale}")
    return guides


def _page_title(path: Path) -> str:
    """A guide's title: the first heading of its file."""
    text = path.read_text(encoding="utf-8")
    heading = next((line for line in text.splitlines() if line.startswith("# ")), path.stem)
    return heading.removeprefix("# ").strip()


def _replace_block(markdown: str, generated: str, start_mark: str, end_mark: str) -> str:
    start = markdown.index(start_mark)
    end = markdown.index(end_mark, start) + len(end_mark)
    return markdown[:start] + generated + markdown[end:]


# --- The architecture's layers ---------------------------------------------------------------


def layers_table(root: Path) -> str:
    """The layers of pyproject.toml's import contract, top to bottom: each layer's packages
    and modules with the first line of their docstrings."""
    project = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))
    contracts = project["tool"]["importlinter"]["contracts"]
    layers = next(c for c in contracts if c["type"] == "layers")["layers"]
    package = root / "src" / project["tool"]["importlinter"]["root_package"]
    lines = ["| layer | what it holds |", "| --- | --- |"]
    for number, layer in enumerate(layers, start=1):
        names = [name.strip() for name in re.split(r"[|:]", layer)]
        about = "<br>".join(f"`{name}`: {_escape(_summary(package, name))}" for name in names)
        lines.append(f"| {number} | {about} |")
    return "\n".join(lines)


def reasons_table() -> str:
    """Every drop reason and what it means, in the vocabulary's order."""
    from selfinstruct.filters.reasons import REASONS

    rows = [f"| `{name}` | {_escape(meaning)} |" for name, meaning in REASONS.items()]
    return "\n".join(["| reason | what it means |", "| --- | --- |", *rows])


def _summary(package: Path, name: str) -> str:
    """The first sentence of a package's or module's docstring."""
    path = package / name / "__init__.py"
    if not path.exists():
        path = package / f"{name}.py"
    docstring = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    paragraph = docstring.split("\n\n")[0]
    return " ".join(paragraph.split())
