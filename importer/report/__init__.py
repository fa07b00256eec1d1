"""What the user sees of an import: progress, the results file, tables, troubleshooting."""
