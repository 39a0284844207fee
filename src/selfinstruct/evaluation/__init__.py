"""Evaluate instruction following: models answer user-oriented tasks, scored by ROUGE-L
against the reference and by an LLM judge (A/B/C/D ratings, pairwise preference)."""
