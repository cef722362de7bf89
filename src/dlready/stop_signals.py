"""Stop signals, from the first instruction of a command to its last line of output.

Kept apart from :mod:`dlready.result` (which needs the output module) because the console
script (:mod:`dlready.launch`) sets them up before anything else is imported: a cold command
lives about a tenth of a second, and most of it is importing.
"""

from __future__ import annotations

import signal
import threading
from typing import Any


class StopSignals:
    """SIGTERM and SIGHUP end a command like Ctrl-C: what it started is cleaned up by the
    code that catches KeyboardInterrupt, and "interrupted" is reported (exit 3).

    Python's default for them is to die at once, leaving children behind and no line (or
    JSON) saying what happened. Handlers are set only from the main thread and only where
    nobody else has set one (so nesting is harmless: the outermost one stays).
    """

    _SIGNALS = ("SIGTERM", "SIGHUP")
    received: str | None = None
    """The name of the last stop signal received in this process (None: none, or Ctrl-C)."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    @staticmethod
    def _handle(number: int, _frame: Any) -> None:
        StopSignals.received = signal.Signals(number).name
        raise KeyboardInterrupt

    def __enter__(self) -> StopSignals:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self._SIGNALS:
            number = getattr(signal, name, None)
            if number is not None and signal.getsignal(number) is signal.SIG_DFL:
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)


class OutputUnbroken:
    """While a command writes its result, a stop signal is noted instead of acted on.

    The command has finished by then: cutting its report off halfway (a table without its
    verdict, JSON that does not parse) helps nobody, so the result is written whole and its
    own exit code stands. A signal ignored before stays ignored.
    """

    _SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
    noted: str | None = None
    """The last signal that arrived while a result was being written (None: none)."""

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    @staticmethod
    def _note(number: int, _frame: Any) -> None:
        OutputUnbroken.noted = signal.Signals(number).name

    def __enter__(self) -> OutputUnbroken:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self._SIGNALS:
            number = getattr(signal, name, None)
            if number is None:
                continue
            previous = signal.getsignal(number)
            if previous is signal.SIG_IGN or previous is None:  # None: set outside Python
                continue
            self._previous[number] = signal.signal(number, self._note)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)
