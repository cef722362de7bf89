"""Exit codes shared by every dlready command (documented in docs/exit-codes.md and --help)."""

from __future__ import annotations

import enum


class ExitCode(enum.IntEnum):
    """What a dlready process tells its caller."""

    OK = 0
    """check: meets the bar; smoke: every check passed; install-cmd: a command was printed."""
    NOT_READY = 1
    """check: something is below the bar; smoke: a check failed."""
    USAGE = 2
    """Bad flags, bad input files, impossible requests. Nothing was judged."""
    COULD_NOT_RUN = 3
    """The command itself could not run (e.g. torch missing for smoke, probing crashed)."""


EXIT_CODES_HELP = (
    "Exit codes: 0 ok; 1 not ready (check below the bar, or a smoke check failed); "
    "2 usage or input error; 3 the command could not run."
)
