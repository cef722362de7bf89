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
    "Exit codes: 0 ok; 1 a judged no (not ready, a failed check, does not fit, different); "
    "2 usage or input error; 3 the command could not run. Each command's --help says what "
    "they mean for it."
)

_COMMAND_EXIT_CODES = {
    "check": "0 meets the bar; 1 something is below it (or not judged, with --strict)",
    "install-cmd": "0 a command was printed (with --run: the install's own exit status); "
    "1 you answered no at the prompt",
    "smoke": "0 every check passed; 1 a check failed",
    "fleet": "0 every rank ready and uniform; 1 a finding (straggler, difference, wrong "
    "collective, missing rank)",
    "diff": "0 the same; 1 different",
    "fit": "0 it fits as asked; 1 it does not (the output says what would)",
}


def exit_codes_help(command: str) -> str:
    """The exit-code line at the end of a command's ``--help`` (docs/exit-codes.md)."""
    return (
        f"Exit codes: {_COMMAND_EXIT_CODES[command]}; 2 usage or input error; "
        "3 the command could not run."
    )
