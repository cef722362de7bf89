"""Stop signals, from the first instruction of a command to its last line of output.

Kept apart from :mod:`dlready.result` (which needs the output module) because the console
script (:mod:`dlready.launch`) sets them up before anything else is imported: a cold command
lives about a tenth of a second, and most of it is importing.
"""

from __future__ import annotations

import signal
import threading
from typing import Any, TypeVar

_H = TypeVar("_H", bound="_Handlers")


class _Handlers:
    """Set a handler for some signals on entry (main thread only), put the old ones back on
    exit. Subclasses say which signals, what the handler does, and which old handlers to
    replace."""

    _SIGNALS: tuple[str, ...] = ()

    def __init__(self) -> None:
        self._previous: dict[int, Any] = {}

    @staticmethod
    def _handle(number: int, _frame: Any) -> None:
        raise NotImplementedError

    @staticmethod
    def _replaces(previous: Any) -> bool:
        raise NotImplementedError

    def __enter__(self: _H) -> _H:
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self._SIGNALS:
            number = getattr(signal, name, None)
            if number is not None and self._replaces(signal.getsignal(number)):
                self._previous[number] = signal.signal(number, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for number, previous in self._previous.items():
            signal.signal(number, previous)


class StopSignals(_Handlers):
    """SIGTERM and SIGHUP end a command like Ctrl-C: what it started is cleaned up by the
    code that catches KeyboardInterrupt, and "interrupted" is reported (exit 3).

    Python's default for them is to die at once, leaving children behind and no line (or
    JSON) saying what happened. Handlers are set only from the main thread and only where
    nobody else has set one (so nesting is harmless: the outermost one stays).
    """

    _SIGNALS = ("SIGTERM", "SIGHUP")
    received: str | None = None
    """The name of the last stop signal received in this process (None: none, or Ctrl-C)."""

    @staticmethod
    def _handle(number: int, _frame: Any) -> None:
        StopSignals.received = signal.Signals(number).name
        raise KeyboardInterrupt

    @staticmethod
    def _replaces(previous: Any) -> bool:
        return previous is signal.SIG_DFL


class OutputUnbroken(_Handlers):
    """While a command writes its result, a stop signal is noted instead of acted on.

    The command has finished by then: cutting its report off halfway (a table without its
    verdict, JSON that does not parse) helps nobody, so the result is written whole and its
    own exit code stands. A signal ignored before stays ignored.
    """

    _SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP")
    noted: str | None = None
    """The last signal that arrived while a result was being written (None: none)."""

    @staticmethod
    def _handle(number: int, _frame: Any) -> None:
        OutputUnbroken.noted = signal.Signals(number).name

    @staticmethod
    def _replaces(previous: Any) -> bool:
        return previous is not signal.SIG_IGN and previous is not None  # None: set outside Python
