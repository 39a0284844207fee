"""The paper's reported figures (Wang et al., 2023, "Self-Instruct"), written out here only.

- Table 1: statistics of the data GPT-3 generated from the 175 seed tasks;
- Table 2: an expert's review of 200 sampled instructions, each with one instance: three
  yes/no questions (valid instruction, appropriate input, correct output) and an overall
  rating from A (valid and satisfying) to D (irrelevant or invalid); the shares of yes.
"""

from __future__ import annotations

from types import MappingProxyType

# Table 1, by the field names of analysis/table1.py's Table1.
TABLE1 = MappingProxyType(
    {
        "instructions": 52445,
        "classification": 11584,
        "non_classification": 40861,
        "instances": 82439,
        "empty_input": 35878,
        "avg_instruction_words": 15.9,
        "avg_input_words": 12.7,
        "avg_output_words": 18.9,
    }
)

# Table 2's review: its questions (by the part of an instance each asks about) and ratings.
QUESTIONS = ("instruction", "input", "output")
RATINGS = ("A", "B", "C", "D")
ALL_THREE = "all three"  # every question answered yes
# Table 2's shares answered yes, in percent.
TABLE2 = MappingProxyType({"instruction": 92.0, "input": 79.0, "output": 58.0, ALL_THREE: 54.0})


def table1_figure(key: str) -> str:
    """A Table 1 figure as the paper prints it ("52,445", "15.9"); "-" where it gives none."""
    value = TABLE1.get(key)
    if value is None:
        return "-"
    return f"{value:,}" if isinstance(value, int) else f"{value:g}"


def table2_figure(key: str) -> str:
    """A Table 2 share as the paper prints it ("92%"); "" where it gives none."""
    value = TABLE2.get(key)
    return "" if value is None else f"{value:g}%"
