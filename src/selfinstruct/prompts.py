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
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from selfinstruct.errors import InputError
from selfinstruct.inputs.text import read_text
from selfinstruct.inputs.toml import parse_toml

STAGE_TEMPLATES = (
    "bootstrap",
    "bootstrap_classification",
    "classify",
    "instances_classification",
    "instances_generation",
)
# Templates of `selfinstruct evaluate` (not part of a generation run's fingerprint). In the
# completion style the answer prompt is the first layout of finetune.toml, the format a
# fine-tuned model was trained on, so only chat/evaluate_answer.txt exists.
EVALUATION_TEMPLATES = ("judge_rating", "judge_pairwise")
REQUIRED = {
    "bootstrap": {"tasks"},
    "bootstrap_classification": {"tasks"},
    "classify": {"instruction"},
    "instances_classification": {"instruction"},
    "instances_generation": {"instruction"},
    "judge_rating": {"instruction", "input", "reference", "response"},
    "judge_pairwise": {"instruction", "input", "reference", "response_a", "response_b"},
    "evaluate_answer": {"instruction"},
}
ALLOWED = {
    "bootstrap": {"tasks", "next_number", "last_number"},
    "bootstrap_classification": {"tasks", "next_number", "last_number"},
    "classify": {"instruction", "examples"},
    "instances_classification": {"instruction", "examples", "max_instances"},
    "instances_generation": {"instruction", "examples", "max_instances"},
    "judge_rating": {"instruction", "input", "reference", "response"},
    "judge_pairwise": {"instruction", "input", "reference", "response_a", "response_b"},
    "evaluate_answer": {"instruction", "input"},
}
FEWSHOT = {
    "classify": "classify",
    "instances_classification": "instances_classification",
    "instances_generation": "instances_generation",
}
ROLES = ("system", "user", "assistant")
FINETUNE_KEYS = {
    "with_input": {"instruction", "input", "output", "end_of_text"},
    "without_input": {"instruction", "output", "end_of_text"},
}

Messages = tuple[tuple[str, str], ...]


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

    def render(self, style: str, name: str, **values: object) -> Prompt:
        """Fill template `style/name` with values (and ${examples} from the few-shot file)."""
        path, text = self._load(f"{style}/{name}.txt")
        self._check(path, text, name)
        if name in FEWSHOT and "examples" not in values:
            values["examples"] = self._load(f"fewshot/{FEWSHOT[name]}.txt")[1].rstrip("\n")
        if style == "chat":
            return Prompt(messages=self._messages(path, text, values))
        return Prompt(text=string.Template(text).substitute(values))

    def check_all(self, style: str) -> None:
        """Load and check every stage template of a style (bad templates fail before a run)."""
        for name in STAGE_TEMPLATES:
            path, text = self._load(f"{style}/{name}.txt")
            self._check(path, text, name)
            if style == "chat":
                self._messages(path, text, None)
        self.finetune_layouts()

    def fingerprint(self, style: str, names: tuple[str, ...]) -> str:
        """Hash of the templates (and their few-shot files) that shape a stage's requests."""
        digest = hashlib.sha256()
        for name in names:
            digest.update(self._load(f"{style}/{name}.txt")[1].encode())
            if name in FEWSHOT:
                digest.update(self._load(f"fewshot/{FEWSHOT[name]}.txt")[1].encode())
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

    def _check(self, path: Path, text: str, name: str) -> None:
        template = string.Template(text)
        if not template.is_valid():
            raise InputError(path, "invalid placeholder (write $$ for a dollar sign)",
                             line=_invalid_placeholder_line(text))
        found = set(template.get_identifiers())
        unknown = found - ALLOWED[name]
        if unknown:
            key = sorted(unknown)[0]
            raise InputError(path, f"unknown placeholder ${{{key}}} (allowed: "
                             f"{', '.join(sorted(ALLOWED[name]))})",
                             line=_first_line(text, r"\$\{?" + re.escape(key)))
        missing = REQUIRED[name] - found
        if missing:
            raise InputError(path, f"missing required placeholder ${{{sorted(missing)[0]}}}")

    def _messages(self, path: Path, text: str, values: dict | None) -> Messages:
        messages: list[tuple[str, list[str]]] = []
        for number, line in enumerate(text.splitlines(), start=1):
            header = re.fullmatch(r"\[(\w+)\]\s*", line)
            if header:
                role = header.group(1)
                if role not in ROLES:
                    raise InputError(path, f"unknown role [{role}] (use {', '.join(ROLES)})",
                                     line=number)
                messages.append((role, []))
            elif messages:
                messages[-1][1].append(line)
            elif line.strip():
                raise InputError(path, "text before the first [system] or [user] line",
                                 line=number)
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
