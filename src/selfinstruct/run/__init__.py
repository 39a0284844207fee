"""A run, driven: opening it with layered settings, fingerprints, `--estimate`, running its
stages in order, and writing run.json, the dataset card and the report after prepare."""
