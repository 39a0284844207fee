"""ROUGE-L similarity between an instruction and the task pool."""
