"""Files in and out: user files read with errors that name the file, line and field, and
outputs written atomically."""
