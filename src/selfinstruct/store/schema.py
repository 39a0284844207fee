"""Schema of the run store, as an ordered list of named migrations."""

from __future__ import annotations

import functools
import sqlite3
import time
from datetime import UTC, datetime

FORMAT = "selfinstruct-run"
FORMAT_VERSION = 1


INITIAL = """
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE seeds (
            position INTEGER PRIMARY KEY, id TEXT NOT NULL, name TEXT NOT NULL,
            instruction TEXT NOT NULL, instances TEXT NOT NULL, is_classification INTEGER NOT NULL
        );
        CREATE TABLE responses (
            key TEXT PRIMARY KEY, stage TEXT NOT NULL, request TEXT NOT NULL, text TEXT NOT NULL,
            finish_reason TEXT NOT NULL, prompt_tokens INTEGER NOT NULL,
            completion_tokens INTEGER NOT NULL, created_at TEXT NOT NULL
        );
        CREATE TABLE bootstrap_requests (
            request_idx INTEGER PRIMARY KEY, batch_idx INTEGER NOT NULL,
            response_key TEXT NOT NULL, outcome TEXT NOT NULL
        );
        CREATE TABLE candidates (
            request_idx INTEGER NOT NULL, piece_idx INTEGER NOT NULL, instruction TEXT NOT NULL,
            decision TEXT NOT NULL, PRIMARY KEY (request_idx, piece_idx)
        );
        CREATE TABLE instructions (
            id INTEGER PRIMARY KEY, instruction TEXT NOT NULL, most_similar TEXT NOT NULL,
            avg_similarity_score REAL NOT NULL, request_idx INTEGER NOT NULL,
            batch_idx INTEGER NOT NULL, response_key TEXT NOT NULL, created_at TEXT NOT NULL
        );
        CREATE TABLE labels (
            instruction_id INTEGER PRIMARY KEY REFERENCES instructions(id), raw TEXT NOT NULL,
            is_classification INTEGER NOT NULL, response_key TEXT NOT NULL
        );
        CREATE TABLE instances (
            instruction_id INTEGER PRIMARY KEY REFERENCES instructions(id),
            raw_instances TEXT NOT NULL, finish_reason TEXT NOT NULL, response_key TEXT NOT NULL
        );
        CREATE TABLE stage_runs (
            id INTEGER PRIMARY KEY, stage TEXT NOT NULL, started_at TEXT NOT NULL,
            seconds REAL NOT NULL, requests INTEGER NOT NULL, cached INTEGER NOT NULL,
            prompt_tokens INTEGER NOT NULL, completion_tokens INTEGER NOT NULL,
            kept INTEGER NOT NULL, dropped TEXT NOT NULL
        );
"""

# Instances parsed from each stored instances answer, with stable ids (instruction id and
# position), so later stages can record decisions about one instance. `parsed` marks the
# answers already parsed (an answer may hold no instance); answers stored before this
# migration are parsed when the run is next opened for writing.
PARSED_INSTANCES = """
        CREATE TABLE parsed_instances (
            instruction_id INTEGER NOT NULL REFERENCES instructions(id),
            position INTEGER NOT NULL, input TEXT NOT NULL, output TEXT NOT NULL,
            PRIMARY KEY (instruction_id, position)
        );
        ALTER TABLE instances ADD COLUMN parsed INTEGER NOT NULL DEFAULT 0;
"""

# Which seed and machine instructions each bootstrap prompt showed (JSON lists of their ids,
# each in the order the items appear in the prompt). Requests composed before this migration
# get theirs recomputed when the run is next opened for writing.
PROMPT_SOURCES = """
        CREATE TABLE prompt_sources (
            request_idx INTEGER PRIMARY KEY, seed_ids TEXT NOT NULL, machine_ids TEXT NOT NULL
        );
"""

# Per-instance quality records. `judgments`: a judge's answers to the paper's three review
# questions (1 yes, 0 no, NULL unreadable) and its A/B/C/D rating, one row per instance and
# judge (`judge`: a hash of what the judge's answers depend on), so a new judge adds rows and
# never replaces another's. `relabels`: the generator's input-first label of each instance of
# a classification task, and whether it agrees with the output-first one (NULL: unreadable).
QUALITY = """
        CREATE TABLE judgments (
            instruction_id INTEGER NOT NULL REFERENCES instructions(id),
            position INTEGER NOT NULL, judge TEXT NOT NULL, response_key TEXT NOT NULL,
            instruction_ok INTEGER, input_ok INTEGER, output_ok INTEGER, rating TEXT,
            reasons TEXT NOT NULL, PRIMARY KEY (instruction_id, position, judge)
        );
        CREATE TABLE relabels (
            instruction_id INTEGER NOT NULL REFERENCES instructions(id),
            position INTEGER NOT NULL, response_key TEXT NOT NULL, answer TEXT NOT NULL,
            agrees INTEGER, PRIMARY KEY (instruction_id, position)
        );
"""

# Where a merged run's instructions came from (`selfinstruct merge`): `merge_runs` lists the
# runs merged, by their position in the merge order; `merge_sources` gives each instruction's
# run and its id there. Empty in a run that is not a merge.
MERGE_SOURCES = """
        CREATE TABLE merge_runs (
            source INTEGER PRIMARY KEY, run_id TEXT NOT NULL, name TEXT NOT NULL,
            path TEXT NOT NULL
        );
        CREATE TABLE merge_sources (
            instruction_id INTEGER PRIMARY KEY REFERENCES instructions(id),
            source INTEGER NOT NULL REFERENCES merge_runs(source), source_id INTEGER NOT NULL
        );
"""

# The report's parse of each instruction: the verb nearest the root and its direct-object
# noun (both NULL when it has none), by instruction and `parser` (the model package, its
# version and the rules that read the parse), so a parse is made once per parser.
INSTRUCTION_PARSES = """
        CREATE TABLE instruction_parses (
            instruction_id INTEGER NOT NULL REFERENCES instructions(id),
            parser TEXT NOT NULL, verb TEXT, noun TEXT,
            PRIMARY KEY (instruction_id, parser)
        );
"""

# How many accepted instructions each bootstrap prompt's pool was missing: those accepted
# before its request was judged that its prompt, composed batches_in_flight batches ahead,
# could not show (NULL: judged before this was recorded, or merged).
POOL_MISSING = """
        ALTER TABLE bootstrap_requests ADD COLUMN missing INTEGER;
"""

# People's reviews (`selfinstruct review`): the sample every reviewer sees, in order
# (`review_items`), each reviewer's answers about an instance (`review_ratings`: the paper's
# three questions, 1 yes, 0 no, NULL not answered yet; an A-D rating; a note), bound to the
# digest of the text they were shown, and the log of every answer given (`review_events`,
# which undo walks back; values as JSON).
REVIEWS = """
        CREATE TABLE review_items (
            ordinal INTEGER PRIMARY KEY,
            instruction_id INTEGER NOT NULL REFERENCES instructions(id),
            position INTEGER NOT NULL, is_classification INTEGER NOT NULL, digest TEXT NOT NULL,
            UNIQUE (instruction_id, position)
        );
        CREATE TABLE review_ratings (
            instruction_id INTEGER NOT NULL REFERENCES instructions(id),
            position INTEGER NOT NULL, reviewer TEXT NOT NULL,
            instruction_ok INTEGER, input_ok INTEGER, output_ok INTEGER, rating TEXT,
            note TEXT NOT NULL DEFAULT '', digest TEXT NOT NULL, rated_at TEXT NOT NULL,
            PRIMARY KEY (instruction_id, position, reviewer)
        );
        CREATE TABLE review_events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, reviewer TEXT NOT NULL,
            instruction_id INTEGER NOT NULL, position INTEGER NOT NULL, field TEXT NOT NULL,
            value TEXT NOT NULL, previous TEXT NOT NULL, at TEXT NOT NULL,
            undone INTEGER NOT NULL DEFAULT 0
        );
"""

MIGRATIONS: list[tuple[str, str]] = [
    ("0001_initial", INITIAL),
    ("0002_parsed_instances", PARSED_INSTANCES),
    ("0003_prompt_sources", PROMPT_SOURCES),
    ("0004_quality", QUALITY),
    ("0005_merge_sources", MERGE_SOURCES),
    ("0006_instruction_parses", INSTRUCTION_PARSES),
    ("0007_pool_missing", POOL_MISSING),
    ("0008_reviews", REVIEWS),
]


def applied(db: sqlite3.Connection) -> set[str]:
    """The migrations a store has (none for a database without the migrations table)."""
    found = db.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'migrations'"
    ).fetchone()
    return {row[0] for row in db.execute("SELECT name FROM migrations")} if found else set()


def migrate(db: sqlite3.Connection) -> None:
    """Apply the migrations not yet recorded, each in its own transaction."""
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT)")
    done = applied(db)
    for name, sql in MIGRATIONS:
        if name not in done:
            db.executescript(
                f"BEGIN IMMEDIATE;\n{sql}\nINSERT INTO migrations VALUES ('{name}', '{now()}');"
                "\nCOMMIT;"
            )


def now() -> str:
    """The UTC time to the second, in ISO 8601 (what datetime.now(UTC).isoformat(timespec=
    "seconds") writes): every stored answer is stamped, so the text is made once a second."""
    return _second_text(int(time.time()))


@functools.lru_cache(maxsize=1)
def _second_text(second: int) -> str:
    return datetime.fromtimestamp(second, UTC).isoformat(timespec="seconds")
