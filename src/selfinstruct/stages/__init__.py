"""The stages of a run, one module (or package) each, and `registry.py`, which lists them in
run order (what a stage is: `engine/stage.py`)."""
