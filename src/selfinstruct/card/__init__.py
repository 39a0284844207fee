"""The dataset card (exports/README.md): what it says about a run, and how it is written."""
