"""The run directory: its SQLite store (the source of truth) and the files derived from it."""
