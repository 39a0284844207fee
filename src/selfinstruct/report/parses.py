"""The verb-noun pairs of a run's instructions, each parsed once per parser and kept in the
run store (`store.parses`): a report on a run whose instructions all have their pair loads no
parser at all, and one on a grown run parses only the new instructions.

A store opened to write keeps each batch of new pairs as it is parsed (an interrupted parse
keeps what it did). A read-only view parses what is not kept yet in memory and writes
nothing, so every reader sees the same pairs."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from selfinstruct.analysis import verbs
from selfinstruct.analysis.verbs import Pair, VerbNouns
from selfinstruct.store.run_store import InstructionRow, RunStore

KEEP_EVERY = 1000  # instructions parsed per transaction that keeps their pairs


def verb_pairs(store: RunStore, rows: Sequence[InstructionRow]) -> VerbNouns:
    """The verb-noun chart's numbers for `rows`, from the pairs kept for the installed
    parser; those missing are parsed (and kept, when the store may be written)."""
    parser = verbs.parser_id()
    if parser is None:
        return verbs.unavailable()
    pairs = store.parses.of_parser(parser)
    missing = [row for row in rows if row.id not in pairs]
    if missing:
        nlp = verbs.load_pipeline()
        if nlp is None:
            return verbs.unavailable()
        for parsed in _parse(missing, nlp):
            if not store.readonly:
                with store.transaction():
                    store.parses.put(parser, parsed)
            pairs.update(parsed)
    return verbs.summarize([pairs[row.id] for row in rows])


def _parse(rows: Sequence[InstructionRow], nlp: Any) -> Iterator[dict[int, Pair | None]]:
    """The rows' pairs, KEEP_EVERY at a time."""
    for start in range(0, len(rows), KEEP_EVERY):
        batch = rows[start : start + KEEP_EVERY]
        found = verbs.parse_pairs([row.instruction for row in batch], nlp)
        yield {row.id: pair for row, pair in zip(batch, found, strict=True)}
