"""What every family of tables works with: the store's connection, the migrations it has, and
its transaction (all or nothing; a savepoint inside `RunStore.commit_together`)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager

Transaction = Callable[[], AbstractContextManager[sqlite3.Connection]]


class Family:
    def __init__(self, db: sqlite3.Connection, migrations: set[str], transaction: Transaction):
        self.db = db
        self.migrations = migrations
        self.transaction = transaction
