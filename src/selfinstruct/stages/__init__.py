"""The stages of a run (`stage.py` says what a stage is; `registry.py` lists them in order)."""
