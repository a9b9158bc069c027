"""Errors that reach the user as one line on stderr (never a traceback)."""


class FastembError(Exception):
    """Bad input or an impossible request: the CLI prints the message and exits with `exit_code`."""

    exit_code = 1


class Interrupted(FastembError):
    """Raised from a SIGTERM handler so that cleanup (temp files) runs like for Ctrl-C."""

    exit_code = 143
