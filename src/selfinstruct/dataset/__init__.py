"""Prepare's dataset builder: the quality screen, the paper's filters and the fine-tuning
formats over parsed tasks (build.py reads no store: the same code builds the dataset of a
run, of a read-only view and of the paper's files), and the files prepare writes."""
