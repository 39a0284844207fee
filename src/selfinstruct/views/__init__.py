"""Read-only views derived from a run store: parsed tasks, the run's funnel."""
