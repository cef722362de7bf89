"""Run a call on its own thread and collect its result later.

What ``concurrent.futures`` gives, without its import: that module pulls in ``logging``
(about 6 ms), and every ``check`` probes with two of these. The threads are daemons, so a
call that never returns (a hung program) cannot keep the process from exiting.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class Background(Generic[T]):
    """``call`` running on a daemon thread since construction."""

    def __init__(self, call: Callable[[], T], name: str = "dlready-background") -> None:
        self._call = call
        self._value: T | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as exc:  # noqa: BLE001  # handed to whoever collects the result
            self._error = exc

    def result(self) -> T:
        """Wait for the call; its value, or its exception raised here."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error was raised


def run_all(calls: Sequence[Callable[[], T]]) -> list[T]:
    """Run every call at once (the first on this thread); their values in order.

    An exception is raised as it is met, in order; calls still running go on in the
    background.
    """
    others = [Background(call) for call in calls[1:]]
    first = [calls[0]()] if calls else []
    return [*first, *(other.result() for other in others)]
