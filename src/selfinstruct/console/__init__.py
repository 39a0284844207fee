"""What a command shows while it works: stage counters, progress bars and summaries."""
