"""What users see: progress while a stage runs, a summary when it ends."""
