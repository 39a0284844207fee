"""Language model backends behind one small interface (`base.LLM`), found by name in
`registry.py`."""
