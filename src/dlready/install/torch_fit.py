"""What the install planner finds about the installed PyTorch, as plain values.

:class:`TorchFit` is the verdict on the installed torch (:func:`dlready.install.judge.
judge_installed_torch` decides it); :class:`SoftwareFinding` is everything ``check`` takes from
the planner. Both live here, apart from the planner, so that ``check`` can receive them from
its head start (:mod:`dlready.head_start`) without importing the planner and its tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec import Struct, field

from dlready.model import StrEnum

if TYPE_CHECKING:
    from dlready.model import MachineSnapshot


class FitStatus(StrEnum):
    """Whether the installed torch fits this machine."""

    FITS = "fits"
    MISMATCH = "mismatch"
    UNKNOWN = "unknown"
    NOT_INSTALLED = "not_installed"


class TorchFit(Struct, frozen=True):
    """The verdict on the installed torch; ``check`` judges its PyTorch part from it."""

    status: FitStatus
    version: str | None = None
    variant: str | None = None
    """The build: ``cu130``, ``cpu``, ``rocm6.4``, ``default`` (macOS), or None if unknown."""
    variant_source: str | None = None
    """How the build was known: ``local version``, ``cuda_version``, ``PyPI default`` ..."""
    problems: list[str] = field(default_factory=list)
    """Why it does not fit (status ``mismatch``) or what could not be checked (``unknown``)."""
    warnings: list[str] = field(default_factory=list)
    """Soft issues: PTX-only GPUs, minor-version compatibility, what the table could not
    confirm."""
    fix_command: str | None = None
    """The install command that fixes a mismatch (or installs torch); None when it fits."""

    def to_jsonable(self) -> dict[str, Any]:
        """All fields as JSON."""
        return {
            "status": self.status,
            "version": self.version,
            "variant": self.variant,
            "variant_source": self.variant_source,
            "problems": list(self.problems),
            "warnings": list(self.warnings),
            "fix_command": self.fix_command,
        }


class SoftwareFinding(Struct, frozen=True):
    """What ``check`` reports from the install planner for one snapshot."""

    torch_fit: TorchFit | None
    """The verdict on the installed torch; None when the planner failed."""
    command_line: str | None
    """The recommended install command, or None when no command fits this machine."""
    variant: str | None
    """The recommended build (``cu130``, ``cpu``...), or None."""
    note: str | None
    """Why there is no command (or that the planner failed), in one line."""
    alternatives: tuple[str, ...] = ()
    """``install-cmd`` commands that would give one when there is none."""


def find_software(snapshot: MachineSnapshot) -> SoftwareFinding:
    """Ask the install planner whether the installed torch fits, and what to install.

    A planner bug becomes a note (the hardware report must still stand), never an exception.
    """
    try:
        from dlready.install.judge import (
            explain_no_command,
            judge_installed_torch,
            no_command_alternatives,
            recommended_plan,
        )

        fit = judge_installed_torch(snapshot)
        plan = recommended_plan(snapshot)
        no_command = explain_no_command(snapshot) if plan is None else None
        alternatives = no_command_alternatives(snapshot) if plan is None else ()
    except Exception as exc:  # noqa: BLE001  # a planner bug must not hide the hardware report
        return SoftwareFinding(
            None, None, None, f"install planner failed: {type(exc).__name__}: {exc}"
        )
    return SoftwareFinding(
        torch_fit=fit,
        command_line=plan.command_line if plan else None,
        variant=plan.variant if plan else None,
        note=f"no PyTorch install command for this machine: {no_command}" if no_command else None,
        alternatives=alternatives,
    )
