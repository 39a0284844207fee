"""What stages run on: the `Stage` declaration, the run context, answering requests through
the cache and the budget, per-record plans and batch files."""
