"""Reading user-supplied files with errors that name the file, line and field."""
