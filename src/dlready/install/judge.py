"""Does the installed torch fit this machine? (used by ``dlready check``'s advice)

Reads ``snapshot.torch`` (package metadata, torch is never imported) and the GPUs and driver,
and names each way the build fails this machine: a CPU build on an NVIDIA machine, a CUDA build
newer than the driver supports, a GPU missing from the build's arch list, a ROCm build without
an AMD GPU. Pure: decided from the snapshot and the packaged compat table.
"""

from __future__ import annotations

from msgspec import Struct, field

from dlready.install.archs import Coverage, arch_labels
from dlready.install.caveats import arch_list_caveat, caveat_lines, driver_floor_caveats
from dlready.install.cuda_fit import gpu_coverage
from dlready.install.errors import PlanError
from dlready.install.facts import UNSUPPORTED_OS_DETAIL, MachineFacts, facts_from_snapshot
from dlready.install.plan import SUPPORTED_PLATFORMS, InstallPlan, InstallWishes
from dlready.install.planner import plan_install
from dlready.install.release_choice import python_fits
from dlready.install.table import (
    LINUX_ARM,
    LINUX_X86,
    CompatTable,
    CompatTableError,
    Release,
    load_compat_table,
)
from dlready.install.torch_fit import FitStatus, TorchFit
from dlready.install.versions import (
    compare_numeric,
    variant_kind,
)
from dlready.model import MachineSnapshot
from dlready.probes.torch_meta import build_variant

FITS = FitStatus.FITS
MISMATCH = FitStatus.MISMATCH
UNKNOWN = FitStatus.UNKNOWN
NOT_INSTALLED = FitStatus.NOT_INSTALLED


def _installed_variant(
    snapshot: MachineSnapshot, release: Release | None, platform: str | None
) -> tuple[str | None, str | None]:
    """The installed build and how it was known (probes.torch_meta.build_variant decides)."""
    torch = snapshot.torch
    local = torch.local_variant.value if torch.local_variant.ok else None
    if local:
        return str(local).lower(), "local version"
    version = str(torch.version.value) if torch.version.ok and torch.version.value else None
    cuda = (
        str(torch.cuda_version.value)
        if torch.cuda_version.ok and torch.cuda_version.value
        else None
    )
    hip = str(torch.hip_version.value) if torch.hip_version.ok and torch.hip_version.value else None
    variant = build_variant(version, cuda, hip)
    if variant is not None:
        if version and "+" in version:
            return variant, "local version"
        return variant, "torch.version.cuda" if cuda else "torch.version.hip"
    return _default_variant(release, platform)


def _default_variant(
    release: Release | None, platform: str | None
) -> tuple[str | None, str | None]:
    """The build a plain ``pip install torch`` gives on this platform."""
    if platform is None:
        return None, None
    if platform.startswith("macos"):
        return "default", "macOS wheel"
    if platform.startswith("windows"):
        return "cpu", "PyPI default (Windows wheels are CPU builds)"
    if release is None:
        return None, None
    if platform == LINUX_X86 and release.pypi_default_cuda:
        return release.pypi_default_cuda, "PyPI default for Linux x86_64"
    if platform == LINUX_ARM:
        return release.pypi_default_cuda_aarch64 or "cpu", "PyPI default for Linux aarch64"
    return None, None


def _fix(
    facts: MachineFacts, version: str | None, table: CompatTable, replace: bool
) -> tuple[str | None, str | None]:
    """The fix command: the same release in the right build if possible, else the newest.

    A replacement pins ``+variant`` local versions: otherwise pip would take the installed
    ``2.11.0+cpu`` as satisfying ``torch==2.11.0`` and change nothing. A first install needs no
    such pins.
    """
    attempts = []
    if version and table.release(version) is not None:
        attempts.append(InstallWishes(torch=version, pin_local_versions=True))
    attempts.append(InstallWishes(pin_local_versions=replace))
    error = None
    for wishes in attempts:
        command, error = _try_plan(facts, wishes, table)
        if command:
            return command, None
    return None, error


def _try_plan(
    facts: MachineFacts, wishes: InstallWishes, table: CompatTable
) -> tuple[str | None, str | None]:
    try:
        return plan_install(facts, wishes, table=table).command_line, None
    except PlanError as exc:
        return None, _describe(exc)


class _Findings(Struct):
    """What the judge found: problems (a mismatch), unknowns (not judged), soft warnings."""

    problems: list[str] = field(default_factory=list)
    unknowns: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Installed(Struct, frozen=True):
    """The installed torch as the judge sees it."""

    raw_version: str | None
    version: str | None
    release: Release | None
    variant: str | None
    variant_source: str | None

    @property
    def kind(self) -> str | None:
        return variant_kind(self.variant) if self.variant else None

    @property
    def build(self) -> str:
        return f"torch {self.raw_version or '?'}" + (f" ({self.variant})" if self.variant else "")


def judge_installed_torch(snapshot: MachineSnapshot, table: CompatTable | None = None) -> TorchFit:
    """Judge the installed torch against this machine's GPUs and driver.

    Args:
        snapshot: the machine, with ``snapshot.torch`` read from package metadata.
        table: the compatibility table; the packaged one by default.

    Returns:
        The verdict with its problems and, for a mismatch, the command that fixes it.
    """
    table = table or load_compat_table()
    facts = facts_from_snapshot(snapshot)
    if not snapshot.torch.installed:
        fix, error = _fix(facts, None, table, replace=False)
        missing = ["torch is not installed"] + ([error] if error else [])
        return TorchFit(NOT_INSTALLED, None, None, None, missing, [], fix)
    installed = _read_installed(snapshot, table, facts.platform)
    found = _Findings(unknowns=_unreadable(snapshot, installed, table))
    accel = facts.accelerator.value
    if accel == "cuda":
        _judge_on_nvidia(installed, facts, table, found)
    elif accel == "rocm":
        _judge_on_amd(installed, facts.platform, found)
    else:
        _judge_without_gpu(installed, facts, table, found)
    found.warnings += [f"detection: {note}" for note in facts.notes]
    return _verdict(installed, facts, table, found)


def _read_installed(
    snapshot: MachineSnapshot, table: CompatTable, platform: str | None
) -> _Installed:
    torch = snapshot.torch
    raw_version = str(torch.version.value) if torch.version.ok else None
    version = raw_version.split("+", 1)[0] if raw_version else None
    release = table.release(version) if version else None
    variant, variant_source = _installed_variant(snapshot, release, platform)
    return _Installed(raw_version, version, release, variant, variant_source)


def _unreadable(snapshot: MachineSnapshot, installed: _Installed, table: CompatTable) -> list[str]:
    unknowns = []
    if installed.version is None:
        reason = snapshot.torch.version.reason or "no reason"
        unknowns.append(f"torch version unreadable ({reason})")
    elif installed.release is None:
        unknowns.append(
            f"torch {installed.version} is not in the compatibility table "
            f"(checked {table.checked_on})"
        )
    if installed.variant is None:
        unknowns.append("which build of torch is installed (CPU, CUDA, ROCm) is unknown")
    return unknowns


def _verdict(
    installed: _Installed, facts: MachineFacts, table: CompatTable, found: _Findings
) -> TorchFit:
    raw, variant, source = installed.raw_version, installed.variant, installed.variant_source
    if found.problems:
        fix, error = _fix(facts, installed.version, table, replace=True)
        if error:
            found.problems.append(f"no install command fits either: {error}")
        problems = found.problems + found.unknowns
        return TorchFit(MISMATCH, raw, variant, source, problems, found.warnings, fix)
    if found.unknowns:
        return TorchFit(UNKNOWN, raw, variant, source, found.unknowns, found.warnings, None)
    return TorchFit(FITS, raw, variant, source, [], found.warnings, None)


def _judge_on_nvidia(
    installed: _Installed, facts: MachineFacts, table: CompatTable, found: _Findings
) -> None:
    build, kind = installed.build, installed.kind
    if kind in ("cpu", "default"):
        found.problems.append(
            f"{build} is a CPU build on a machine with an NVIDIA GPU: "
            "torch.cuda.is_available() is False"
        )
    elif kind == "rocm":
        found.problems.append(f"{build} is a ROCm build on a machine with an NVIDIA GPU")
    elif kind == "cuda" and installed.variant:
        _judge_cuda(installed, facts, table, found)


def _judge_on_amd(installed: _Installed, platform: str | None, found: _Findings) -> None:
    build, kind = installed.build, installed.kind
    if kind == "cuda":
        found.problems.append(
            f"{build} is a CUDA build on a machine with an AMD GPU and no NVIDIA GPU"
        )
    elif kind == "cpu" and platform == LINUX_X86:
        found.problems.append(
            f"{build} is a CPU build on a Linux machine with an AMD GPU (a ROCm build exists)"
        )
    elif kind == "rocm":
        found.warnings.append("ROCm: the GPU's gfx architecture is not checked against the build")


def _judge_without_gpu(
    installed: _Installed, facts: MachineFacts, table: CompatTable, found: _Findings
) -> None:
    build, kind, fault = installed.build, installed.kind, facts.nvidia_fault
    if kind == "rocm":
        found.problems.append(f"{build} is a ROCm build but this machine has no AMD GPU")
    elif kind == "cuda" and fault is not None:
        found.unknowns.append(
            f"{build} is a CUDA build, but the NVIDIA driver stack could not be read "
            f"({fault.problem}): whether it fits is unknown"
        )
    elif kind in ("cpu", "default") and fault is not None:
        found.unknowns.append(
            f"{build} is a CPU build, but this machine has an NVIDIA GPU whose driver does "
            f"not work ({fault.problem}): fix the driver first ({fault.fix}), then install a "
            "CUDA build"
        )
    elif kind == "cuda":
        found.warnings.append(
            f"{build} is a CUDA build on a machine without an NVIDIA GPU: it runs on the CPU "
            "only (the CPU build is a much smaller download)"
        )
    version = installed.version
    mps_first = table.mps_first_release
    if facts.accelerator.value == "mps" and version and compare_numeric(version, mps_first) < 0:
        found.warnings.append(f"torch {version} predates MPS support ({mps_first})")


def _judge_cuda(
    installed: _Installed, facts: MachineFacts, table: CompatTable, found: _Findings
) -> None:
    variant = installed.variant or ""
    _judge_cuda_driver(variant, installed.build, facts, table, found)
    if installed.release is None:
        return  # already reported: the release is not in the table
    _judge_cuda_arch(variant, installed.release, installed.build, facts, table, found)


def _judge_cuda_driver(
    variant: str, build: str, facts: MachineFacts, table: CompatTable, found: _Findings
) -> None:
    driver = facts.driver_version.value
    floor = table.driver_floor(variant)
    windows = (facts.platform or "").startswith("windows") or facts.is_wsl.value is True
    if floor is None:
        found.unknowns.append(f"no driver minimum for {variant} in the table")
        return
    if not driver:
        found.unknowns.append(f"NVIDIA driver version unknown ({facts.driver_version.detail})")
        return
    required = floor.min_windows if windows else floor.min_linux
    full = floor.full_windows if windows else floor.full_linux
    if required and compare_numeric(driver, required) < 0:
        found.problems.append(
            f"{build} needs NVIDIA driver >= {required} (CUDA {floor.cuda}); this driver is "
            f"{driver}: the CUDA build is newer than the driver supports"
        )
    elif full and compare_numeric(driver, full) < 0:
        found.warnings.append(
            f"driver {driver} runs CUDA {floor.cuda} through minor-version compatibility "
            f"(full support from {full})"
        )
    found.warnings += caveat_lines(driver_floor_caveats(variant, table, windows), table)


def _judge_cuda_arch(
    variant: str,
    release: Release,
    build: str,
    facts: MachineFacts,
    table: CompatTable,
    found: _Findings,
) -> None:
    platform = facts.platform
    no_wheel = _no_wheel_reason(release, variant, facts, platform)
    if no_wheel:
        found.unknowns.append(
            f"{no_wheel}: the arch list of {build} is unknown (not a published wheel)"
        )
        return
    form = release.pip_form(variant, platform) if platform else None
    capabilities = facts.compute_capabilities.value or ()
    if form is None or form.arch is None:
        found.unknowns.append(f"the arch list of {build} is not in the table")
        return
    if not capabilities:
        found.unknowns.append(
            f"GPU compute capability unknown ({facts.compute_capabilities.detail})"
        )
        return
    labels = " ".join(arch_labels(form.arch.arch_list))
    for index, cc in enumerate(capabilities):
        level = gpu_coverage(form.arch.arch_list, cc, platform, table)
        name = facts.gpu_names[index] if index < len(facts.gpu_names) else f"GPU {index}"
        if level is Coverage.NONE:
            found.problems.append(
                f"{name} (compute capability {cc}) is not in the arch list of {build} "
                f'({labels}): "no kernel image is available"'
            )
        elif level is Coverage.PTX:
            found.warnings.append(
                f"{name} (compute capability {cc}) runs {build} only through PTX (JIT on first use)"
            )
    found.warnings += caveat_lines(arch_list_caveat(form), table)


def _no_wheel_reason(
    release: Release, variant: str, facts: MachineFacts, platform: str | None
) -> str | None:
    """Why PyTorch publishes no wheel of this release and variant for this machine, if so."""
    if platform is None:
        if not facts.os.known:
            if facts.os.detail == UNSUPPORTED_OS_DETAIL:
                return "PyTorch publishes no wheels for this operating system"
            return f"the operating system is unknown ({facts.os.detail})"
        return f"the CPU architecture is unknown ({facts.arch.detail})"
    if platform not in SUPPORTED_PLATFORMS:
        return f"PyTorch publishes no wheels for {platform}"
    python = facts.python.value
    if python and python_fits(release, python) is None:
        return f"PyTorch publishes no torch {release.torch} wheels for Python {python}"
    if release.pip_form(variant, platform) is None:
        return f"PyTorch publishes no torch {release.torch} {variant} wheels for {platform}"
    return None


def _hint_parts(error: PlanError) -> tuple[list[str], list[str]]:
    """The hint's words, and its flag choices as whole ``dlready install-cmd`` commands,
    which ``check`` prints on lines of their own."""
    words, flag_choices = error.choices()
    return words, [choice.command(f"dlready install-cmd {choice.flags}") for choice in flag_choices]


def _describe(error: PlanError) -> str:
    # The flag choices are commands of their own (check prints them whole, on their own
    # lines; `install-cmd` itself lists them): named here, not inlined as bare flags.
    words, commands = _hint_parts(error)
    if commands:
        words.append("another choice that `dlready install-cmd` lists")
    return error.message + (f" (hint: {'; or '.join(words)})" if words else "")


def _recommend(snapshot: MachineSnapshot) -> tuple[InstallPlan | None, str | None]:
    try:
        return plan_install(facts_from_snapshot(snapshot), InstallWishes()), None
    except PlanError as exc:
        return None, _describe(exc)
    except CompatTableError as exc:
        return None, f"the packaged compatibility table is unreadable ({exc})"


def recommended_command_line(snapshot: MachineSnapshot) -> str | None:
    """The recommended install command for this machine, or None if none fits.

    Convenience for ``check`` and ``smoke``: default wishes (newest torch, pip).
    :func:`explain_no_command` says why it is None.
    """
    plan = _recommend(snapshot)[0]
    return plan.command_line if plan else None


def recommended_plan(snapshot: MachineSnapshot) -> InstallPlan | None:
    """The recommended install plan (its command, build variant...), or None if none fits."""
    return _recommend(snapshot)[0]


def no_command_alternatives(snapshot: MachineSnapshot) -> tuple[str, ...]:
    """When no install command fits: the ``dlready install-cmd`` commands that would give one
    (an older torch, the CPU build...), each whole; empty when a command fits."""
    try:
        plan_install(facts_from_snapshot(snapshot), InstallWishes())
    except PlanError as exc:
        return tuple(_hint_parts(exc)[1])
    except CompatTableError:
        return ()
    return ()


def explain_no_command(snapshot: MachineSnapshot) -> str | None:
    """Why :func:`recommended_command_line` has no command for this machine; None if it has one.

    One line for ``check`` to print, e.g. ``"PyTorch publishes no stable wheels for Python 3.15
    on linux-x86_64 (newest supported: Python 3.14 with torch 2.14.1) (hint: another choice
    that `dlready install-cmd` lists)"``; :func:`no_command_alternatives` gives the commands.
    """
    return _recommend(snapshot)[1]
