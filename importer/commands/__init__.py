"""The command bodies behind ``importer.cli``: each returns an exit code."""
