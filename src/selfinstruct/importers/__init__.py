"""Reading other tools' files into this tool's records."""
