"""Commands of the command line that live outside cli.py, and what they share."""
