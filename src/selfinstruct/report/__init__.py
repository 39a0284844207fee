"""The run report: one self-contained HTML file (report.html) and the numbers behind its
charts (report.json), computed from a run store opened read-only."""
