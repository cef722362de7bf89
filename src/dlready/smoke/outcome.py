"""What a check function returns or raises (shared by ``checks``, ``speed`` and ``worker``).

Pure: no torch. A check returns an :class:`Outcome` for pass / warn / skipped, and raises
:class:`CheckFailedError` (via :func:`expect`) when what it proves does not hold. Any other exception
is a failure too; the worker records its class and message for ``explain``.
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct, field


class Outcome(Struct):
    """The result of a check that did not fail."""

    status: str
    message: str
    measured: dict[str, Any] = field(default_factory=dict)


class CheckFailedError(Exception):
    """What the check proves does not hold; ``message`` says what was expected and found."""

    def __init__(self, message: str, measured: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.measured = measured or {}


def passed(message: str, **measured: Any) -> Outcome:
    """A passing outcome with its measured values."""
    return Outcome("pass", message, dict(measured))


def skipped(reason: str, **measured: Any) -> Outcome:
    """Not applicable on this device; ``reason`` says why."""
    return Outcome("skipped", reason, dict(measured))


def expect(condition: bool, message: str, **measured: Any) -> None:
    """Raise :class:`CheckFailedError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise CheckFailedError(message, dict(measured))
