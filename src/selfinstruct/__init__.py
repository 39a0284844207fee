"""selfinstruct: turn a few seed tasks into an instruction-tuning dataset (Self-Instruct)."""

__version__ = "0.1.0"
