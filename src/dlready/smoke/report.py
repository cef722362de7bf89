"""The result model of ``dlready smoke``: pure data, no torch, no rich.

The worker sends plain dicts (one per check); :func:`check_result_from_event` turns them into
:class:`CheckResult`. The runner adds expectations and explanations, and the renderers read a
:class:`SmokeReport`. ``to_jsonable`` (from :mod:`dlready.model`) gives the documented
``data`` object of ``--json`` (docs/smoke.md).
"""

from __future__ import annotations

import math
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from dlready.model import StrEnum


class CheckStatus(StrEnum):
    """Outcome of one check."""

    PASS = "pass"
    WARN = "warn"
    """It ran and its result is right, but a figure is well below what the device should reach."""
    FAIL = "fail"
    SKIPPED = "skipped"
    """Not run here, with the reason (a dtype this device does not support, no PCIe link ...)."""
    TIMEOUT = "timeout"
    """It did not finish in time; the worker was killed and the rest of the suite went on."""


FAILING_STATUSES = frozenset({CheckStatus.FAIL, CheckStatus.TIMEOUT})


class Expectation(Struct, frozen=True):
    """What a speed figure should reach on this device, and where that figure comes from.

    ``value`` is None when no trustworthy figure exists (``source`` then says why), so the
    report prints "expected: unknown" instead of inventing one.
    """

    value: float | None
    unit: str
    source: str
    percent: float | None = None
    """Measured as a percentage of ``value`` (None when either is unknown)."""


class CheckResult(Struct, frozen=True):
    """One named check on one device."""

    name: str
    status: CheckStatus
    duration_s: float
    message: str
    measured: dict[str, Any] = field(default_factory=dict)
    expected: Expectation | None = None
    error_type: str | None = None
    """Exception class name when the check raised (``OutOfMemoryError``, ``RuntimeError``)."""
    explanation: str | None = None
    """Why it failed, in words a user can act on."""
    fix: str | None = None
    """The command or step that fixes it."""

    @property
    def failed(self) -> bool:
        """True for a failure or a timeout."""
        return self.status in FAILING_STATUSES


class DeviceReport(Struct, frozen=True):
    """The suite on one device."""

    requested: str
    """What the user asked for (``auto``, ``cpu``, ``cuda:1``, ...)."""
    device: str | None
    """The device the checks ran on (``cuda:0``), None when it could not be resolved."""
    info: dict[str, Any]
    """The ``device`` check's measurements: name, compute capability, arch list, memory ..."""
    checks: tuple[CheckResult, ...]


class TorchBuild(Struct, frozen=True):
    """The imported torch, as the worker saw it (no device touched)."""

    version: str
    cuda: str | None
    hip: str | None
    cudnn: int | None
    import_s: float
    location: str | None = None


class SmokeReport(Struct, frozen=True):
    """Everything one ``dlready smoke`` run found."""

    mode: str
    """``quick`` or ``full``."""
    torch: TorchBuild | None
    devices: tuple[DeviceReport, ...]
    wall_s: float
    usage_error: bool = False
    """A requested device does not exist (exit code 2)."""
    notes: tuple[str, ...] = ()

    @property
    def all_checks(self) -> tuple[CheckResult, ...]:
        """Every check of every device, in order."""
        return tuple(check for device in self.devices for check in device.checks)

    @property
    def counts(self) -> dict[str, int]:
        """Number of checks per status (every status present, zeros included)."""
        counts = {status.value: 0 for status in CheckStatus}
        for check in self.all_checks:
            counts[check.status.value] += 1
        return counts


def _clean_number(value: Any) -> Any:
    """JSON has no NaN or infinity: those become None (and are reported as such)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _clean_number(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean_number(v) for v in value]
    return value


def check_result_from_event(event: dict[str, Any]) -> CheckResult:
    """Build a :class:`CheckResult` from a worker ``result`` event.

    Unknown statuses (a worker from another version) become failures rather than passes.
    """
    try:
        status = CheckStatus(str(event.get("status")))
    except ValueError:
        status = CheckStatus.FAIL
    measured = event.get("measured")
    return CheckResult(
        name=str(event.get("check", "?")),
        status=status,
        duration_s=float(event.get("duration_s") or 0.0),
        message=str(event.get("message", "")),
        measured=_clean_number(measured) if isinstance(measured, dict) else {},
        error_type=event.get("error_type") or None,
    )


def with_status(result: CheckResult, status: CheckStatus, message: str) -> CheckResult:
    """A copy with another status and message (used when grading speed)."""
    return replace(result, status=status, message=message)
