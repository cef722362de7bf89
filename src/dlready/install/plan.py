"""The install planner's value objects: what the user wishes, and the plan that answers it."""

from __future__ import annotations

from typing import Any

from msgspec import Struct, field

from dlready.install.caveats import Unconfirmed
from dlready.install.facts import MachineFacts
from dlready.install.table import PLATFORMS, CompatTable
from dlready.model import StrEnum, to_jsonable

MANAGERS = ("pip", "uv", "conda")
PACKAGE_ORDER = ("torch", "torchvision", "torchaudio")
SUPPORTED_PLATFORMS = PLATFORMS


class CoverageState(StrEnum):
    """How a wheel's arch list serves the machine's GPUs (the worst GPU decides)."""

    NATIVE = "native"
    PTX = "ptx"
    """Only through JIT compilation of PTX: works, slow first start."""
    UNKNOWN = "unknown"
    """The arch list or the compute capability is unknown."""
    NONE = "none"
    """No kernels for some GPU: torch.cuda fails on it."""


class DriverSupport(StrEnum):
    """How the NVIDIA driver runs a CUDA wheel."""

    FULL = "full"
    MINOR_COMPAT = "minor-compat"
    """Through CUDA minor-version compatibility (no JIT of newer PTX)."""
    TOO_OLD = "too-old"
    UNKNOWN = "unknown"


class InstallWishes(Struct, frozen=True):
    """What the user asked for; None means "choose for me"."""

    torch: str | None = None
    variant: str | None = None
    manager: str = "pip"
    packages: tuple[str, ...] | None = None
    pin_local_versions: bool = False
    """Pin ``+variant`` local versions where the index has them, so an installed build of the
    same version (``2.11.0+cpu``) does not satisfy the request (used for fix commands)."""


class PlanContext(Struct, frozen=True):
    """One planning request: the machine, the wishes, the table and the target platform."""

    facts: MachineFacts
    wishes: InstallWishes
    table: CompatTable
    platform: str

    @property
    def python(self) -> str:
        """The target's Python ``X.Y`` (known once the platform is)."""
        return self.facts.python.value or ""

    @property
    def conda(self) -> bool:
        """True when planning a conda command."""
        return self.wishes.manager == "conda"


class Rationale(Struct):
    """What the plan tells the user besides the command: reasons, warnings and sources."""

    reasons: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)
    unconfirmed: list[Unconfirmed] = field(default_factory=list)


class PinnedPackage(Struct, frozen=True):
    """One package on the command line."""

    name: str
    """The package name as installed by the manager (conda: ``pytorch``)."""
    version: str
    local: str | None
    operator: str

    @property
    def spec(self) -> str:
        """``torch==2.5.1+cu121``."""
        local = f"+{self.local}" if self.local else ""
        return f"{self.name}{self.operator}{self.version}{local}"

    def to_jsonable(self) -> dict[str, Any]:
        """``{"name", "version", "local", "operator", "spec"}``."""
        return {**to_jsonable(self), "spec": self.spec}


class Candidate(Struct, frozen=True):
    """One variant the planner considered, and its verdict."""

    variant: str
    usable: bool
    chosen: bool
    coverage: CoverageState
    """The worst coverage over all GPUs."""
    driver: DriverSupport
    verdict: str

    def to_jsonable(self) -> dict[str, Any]:
        """All fields as JSON."""
        result: dict[str, Any] = to_jsonable(self)
        return result


class InstallPlan(Struct, frozen=True):
    """The one install command for a machine, and why."""

    command_line: str
    manager: str
    torch: str
    variant: str
    platform: str
    packages: tuple[PinnedPackage, ...]
    index_url: str | None
    index_flag: str | None
    channels: tuple[str, ...]
    conda_extras: tuple[str, ...]
    warnings: list[str]
    reasons: list[str]
    facts: MachineFacts
    candidates: tuple[Candidate, ...] = ()
    sources: list[str] = field(default_factory=list)
    table_checked_on: str = ""
    research_notes: list[str] = field(default_factory=list)
    """The table's notes behind the "not confirmed" warnings (for tools; people get the
    warnings, which name the public page to check)."""

    def to_jsonable(self) -> dict[str, Any]:
        """The plan as the ``data`` of the ``--json`` envelope (docs/install-cmd.md)."""
        data: dict[str, Any] = to_jsonable(self)
        data["packages"] = [package.to_jsonable() for package in self.packages]
        return data
