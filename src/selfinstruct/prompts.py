"""Prompt templates: packaged defaults, overridable file by file from a user's directory.

Layout (same in the package and in a user's directory; missing files fall back to ours):
  fewshot/<name>.txt       example blocks, inserted as ${examples}
  completion/<name>.txt    a raw prompt for completion endpoints and base models
  chat/<name>.txt          messages: lines `[system]`, `[user]`, `[assistant]` open a message
  finetune.toml            prompt/completion layouts for fine-tuning data
"""

from __future__ import annotations

import hashlib
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from selfinstruct.errors import InputError
from selfinstruct.io.text import read_text
from selfinstruct.io.toml import parse_toml

ROLES = ("system", "user", "assistant")
FINETUNE_KEYS = {
    "with_input": {"instruction", "input", "output", "end_of_text"},
    "without_input": {"instruction", "output", "end_of_text"},
}

Messages = tuple[tuple[str, str], ...]

NO_INPUT = "(none)"  # how a prompt shows an instance without an input


@dataclass(frozen=True)
class TemplateSpec:
    """A prompt template, declared by the stage (or command) that renders it: its file name
    (under completion/ and chat/), the placeholders it must and may hold, and whether
    ${examples} comes from fewshot/<name>.txt."""

    name: str
    required: frozenset[str]
    optional: frozenset[str] = frozenset()
    fewshot: bool = False

    @property
    def allowed(self) -> frozenset[str]:
        return self.required | self.optional | ({"examples"} if self.fewshot else set())


@dataclass(frozen=True)
class Prompt:
    """A rendered prompt: raw text (completion style) or messages (chat style)."""

    text: str | None = None
    messages: Messages | None = None


@dataclass(frozen=True)
class FinetuneLayout:
    prompt: string.Template
    completion: string.Template


class TemplateSet:
    """The templates of one run, read once and checked up front."""

    def __init__(self, user_dir: str | Path | None = None) -> None:
        self.user_dir = Path(user_dir) if user_dir else None
        if self.user_dir is not None and not self.user_dir.is_dir():
            raise InputError(self.user_dir, "template directory not found")
        self._texts: dict[str, tuple[Path, str]] = {}
        self._checked: set[tuple[str, TemplateSpec]] = set()  # texts are read once

    def render(self, style: str, spec: TemplateSpec, **values: object) -> Prompt:
        """Fill template `style/<name>` with values (and ${examples} from the few-shot file)."""
        relative = f"{style}/{spec.name}.txt"
        path, text = self._load(relative)
        if (relative, spec) not in self._checked:  # a stage renders one per request
            self._check(path, text, spec)
            self._checked.add((relative, spec))
        if spec.fewshot and "examples" not in values:
            values["examples"] = self._load(f"fewshot/{spec.name}.txt")[1].rstrip("\n")
        if style == "chat":
            return Prompt(messages=self._messages(path, text, values))
        return Prompt(text=string.Template(text).substitute(values))

    def check_all(self, style: str, specs: Iterable[TemplateSpec]) -> None:
        """Load and check templates of a style, and the fine-tuning layouts (bad templates
        fail before a run)."""
        for spec in specs:
            path, text = self._load(f"{style}/{spec.name}.txt")
            self._check(path, text, spec)
            if style == "chat":
                self._messages(path, text, None)
        self.finetune_layouts()

    def fingerprint(self, style: str, specs: Iterable[TemplateSpec]) -> str:
        """Hash of the templates (and their few-shot files) that shape a stage's requests."""
        digest = hashlib.sha256()
        for spec in specs:
            digest.update(self._load(f"{style}/{spec.name}.txt")[1].encode())
            if spec.fewshot:
                digest.update(self._load(f"fewshot/{spec.name}.txt")[1].encode())
        return digest.hexdigest()[:16]

    def finetune_layouts(self) -> dict[str, list[FinetuneLayout]]:
        path, text = self._load("finetune.toml")
        data = parse_toml(text, path)
        return {kind: self._layouts(path, data, kind, keys) for kind, keys in FINETUNE_KEYS.items()}

    def _layouts(self, path: Path, data: dict, kind: str, keys: set[str]) -> list[FinetuneLayout]:
        entries = data.get(kind)
        if not isinstance(entries, list) or not entries:
            raise InputError(path, f"needs at least one [[{kind}]] entry", field=kind)
        layouts = []
        for i, entry in enumerate(entries):
            where = f"{kind}[{i}]"
            parts = {}
            for part in ("prompt", "completion"):
                value = entry.get(part) if isinstance(entry, dict) else None
                if not isinstance(value, str):
                    raise InputError(path, "expected a string", field=f"{where}.{part}")
                parts[part] = self._template(path, value, keys, f"{where}.{part}")
            layouts.append(FinetuneLayout(**parts))
        return layouts

    def _template(self, path: Path, text: str, allowed: set[str], where: str) -> string.Template:
        template = string.Template(text)
        if not template.is_valid():
            raise InputError(path, "invalid placeholder (write $$ for a dollar sign)", field=where)
        unknown = set(template.get_identifiers()) - allowed
        if unknown:
            raise InputError(path, f"unknown placeholder ${{{sorted(unknown)[0]}}}", field=where)
        return template

    def _load(self, relative: str) -> tuple[Path, str]:
        if relative not in self._texts:
            path = self._locate(relative)
            self._texts[relative] = (path, read_text(path))
        return self._texts[relative]

    def _locate(self, relative: str) -> Path:
        if self.user_dir is not None and (self.user_dir / relative).is_file():
            return self.user_dir / relative
        return Path(str(resources.files("selfinstruct") / "templates" / relative))

    def _check(self, path: Path, text: str, spec: TemplateSpec) -> None:
        template = string.Template(text)
        if not template.is_valid():
            raise InputError(
                path,
                "invalid placeholder (write $$ for a dollar sign)",
                line=_invalid_placeholder_line(text),
            )
        found = set(template.get_identifiers())
        unknown = found - spec.allowed
        if unknown:
            key = sorted(unknown)[0]
            raise InputError(
                path,
                f"unknown placeholder ${{{key}}} (allowed: {', '.join(sorted(spec.allowed))})",
                line=_first_line(text, r"\$\{?" + re.escape(key)),
            )
        missing = spec.required - found
        if missing:
            raise InputError(path, f"missing required placeholder ${{{sorted(missing)[0]}}}")

    def _messages(self, path: Path, text: str, values: dict | None) -> Messages:
        messages: list[tuple[str, list[str]]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            header = re.fullmatch(r"\[(\w+)\]\s*", line)
            if header:
                role = header.group(1)
                if role not in ROLES:
                    raise InputError(
                        path, f"unknown role [{role}] (use {', '.join(ROLES)})", line=number
                    )
                messages.append((role, []))
            elif messages:
                messages[-1][1].append(line)
            elif line.strip():
                raise InputError(path, "text before the first [system] or [user] line", line=number)
        if not messages or messages[-1][0] != "user":
            raise InputError(path, "a chat template must end with a [user] message")
        rendered = []
        for role, lines in messages:
            body = "\n".join(lines).strip()
            if values is not None:
                body = string.Template(body).substitute(values)
            rendered.append((role, body))
        return tuple(rendered)


def _invalid_placeholder_line(text: str) -> int | None:
    for match in string.Template.pattern.finditer(text):
        if match.group("invalid") is not None:
            return text[: match.start("invalid")].count("\n") + 1
    return None


def _first_line(text: str, pattern: str) -> int | None:
    match = re.search(pattern, text)
    return text[: match.start()].count("\n") + 1 if match else None
