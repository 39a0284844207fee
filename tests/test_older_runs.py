"""Runs written before a setting existed keep working: a setting missing from a run's
recorded fingerprint had its default value then."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import cli


def forget(run: Path, key: str) -> None:
    """Remove a key from every stage fingerprint, as a run recorded before the key existed."""
    with sqlite3.connect(run / "selfinstruct.db") as db:
        (value,) = db.execute("SELECT value FROM meta WHERE key = 'fingerprints'").fetchone()
        prints = json.loads(value)
        for stage in prints.values():
            stage.pop(key, None)
        db.execute("UPDATE meta SET value = ? WHERE key = 'fingerprints'", (json.dumps(prints),))


def test_a_run_from_before_a_new_setting_resumes_and_keeps_its_meaning(tmp_path: Path) -> None:
    run = tmp_path / "run"
    cli("bootstrap", "--out", str(run), "--backend", "fake", "--num-instructions", "5", "-q")
    forget(run, "bootstrap.truncated_responses")
    forget(run, "chat_format")
    resumed = cli("run", "--out", str(run), "--num-instructions", "8", "-q", check=False)
    assert resumed.returncode == 0, resumed.stderr

    forget(run, "bootstrap.truncated_responses")
    config = tmp_path / "keep.toml"
    config.write_text('[bootstrap]\ntruncated_responses = "keep_complete_items"\n')
    changed = cli("run", "--out", str(run), "--config", str(config), check=False)
    assert changed.returncode == 2
    assert "bootstrap.truncated_responses: 'discard' -> 'keep_complete_items'" in changed.stderr
