"""How a command ends: its exit code (listed in the package's docstring) and `CliError`, a user mistake."""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130
STATUS_EXIT = {"done": EXIT_OK, "stopped": EXIT_INTERRUPTED, "diverged": EXIT_DIVERGED, "failed": EXIT_FAILED}


class CliError(Exception):
    """A user mistake: printed as one line, exit code 2."""
