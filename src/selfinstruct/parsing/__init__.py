"""Turning raw model text into instructions, labels and instances."""
