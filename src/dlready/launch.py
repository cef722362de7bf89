"""The ``dlready`` console script: give ``check`` its head start, then run the command line.

Kept apart from :mod:`dlready.cli` because that module imports typer (about 25 ms), and the
head start (:mod:`dlready.head_start`) has to begin before it.
"""

from __future__ import annotations

import gc
import sys

from dlready.stop_signals import StopSignals

_TORCH_IN_PROCESS = frozenset({"smoke", "fleet"})
"""Commands that may import torch into this process: its shutdown is left as it is."""

_NO_HEAD_START = frozenset({"--snapshot", "--list-profiles", "--psu-watts", "--help", "-h"})
"""``check`` options under which it does not probe, or probes with other settings: a head
start would be wasted (``check`` would not take it)."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point (see :func:`dlready.cli.main`)."""
    args = list(sys.argv[1:] if argv is None else argv)
    # From here on, Ctrl-C, SIGTERM and SIGHUP end the command with "interrupted" (exit 3),
    # even while it is still importing (most of a cold command's life).
    try:
        with StopSignals():
            _start(args)
    except KeyboardInterrupt:
        from dlready.result import interrupted_exit

        raise SystemExit(interrupted_exit(args)) from None
    finally:
        if not _TORCH_IN_PROCESS.intersection(args[:1]):
            # The interpreter still runs full collections while it shuts down, over every
            # object the imports made (about 10 ms of a cold check, measured): frozen objects
            # are left out of them. Exit handlers still run; the memory goes back to the
            # system with the process.
            gc.freeze()


def _start(args: list[str]) -> None:
    if args[:1] == ["check"] and not _NO_HEAD_START.intersection(
        arg.split("=", 1)[0] for arg in args
    ):
        # A cold check creates some 100,000 objects while it imports, and lives a tenth of a
        # second: the cyclic garbage collector would only scan them again and again (about
        # 5 % of its time, measured). Its objects are freed by reference counting as usual.
        gc.disable()
        from dlready import head_start

        head_start.start()
    from dlready.cli import main as cli_main

    cli_main(args)
