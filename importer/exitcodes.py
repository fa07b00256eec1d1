"""Exit codes of ``tagmango-import``, as documented in the README."""

#: Every row succeeded or was skipped (or: the file is valid).
EXIT_OK = 0
#: The job finished with dead or invalid rows.
EXIT_ROWS_FAILED = 1
#: The input was invalid; nothing was enqueued.
EXIT_INVALID_INPUT = 2
#: A configuration or connection problem (missing token, Redis unreachable, unreadable file...).
EXIT_CONFIG = 3
