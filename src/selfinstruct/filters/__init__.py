"""Filters answer "keep this?" and, when not, say why (the reason is counted in summaries)."""
