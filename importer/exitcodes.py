"""Exit codes of ``tagmango-import``, as documented in the README."""

#: Every row succeeded or was skipped (or: the file is valid).
EXIT_OK = 0
#: The job finished with dead or invalid rows.
EXIT_ROWS_FAILED = 1
#: The input was invalid; nothing was enqueued.
EXIT_INVALID_INPUT = 2
#: A configuration or connection problem (missing token, Redis unreachable, unreadable file...).
EXIT_CONFIG = 3
#: ``undo`` refused: a value the job wrote changed in TagMango since (``--force`` puts the old values back anyway).
EXIT_CHANGED_SINCE = 4
#: Interrupted (Ctrl-C).
EXIT_INTERRUPTED = 130


class CommandError(Exception):
    """A command cannot go on: one line for the user, and the exit code. Raised by command code, turned into the
    exit code by the command line (importer.cli); never a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_CONFIG) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
