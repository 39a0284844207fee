"""Prepare's dataset builder: the quality screen, the paper's filters and the fine-tuning
formats over parsed tasks; it reads no store of its own."""
