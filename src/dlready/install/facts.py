"""The machine facts the install planner needs, and where each came from.

:func:`facts_from_snapshot` reads them from a :class:`~dlready.model.MachineSnapshot` (pure);
:func:`apply_overrides` lets command-line flags win over detection, keeping the origin of
every value so the explanation can say which were detected and which were given.
"""

from __future__ import annotations

import difflib
from typing import Any, Generic, TypeVar

from msgspec import Struct, field
from msgspec.structs import replace

from dlready.install.errors import PlanError
from dlready.install.pci_ids import gpu_from_pci_device
from dlready.install.versions import (
    compute_capability_key,
    normalize_compute_capability,
    python_minor,
)
from dlready.model import (
    GpuVendor,
    MachineSnapshot,
    OperatingSystem,
    PciDisplayDevice,
    Source,
    StackState,
    to_jsonable,
)
from dlready.probes.pci import nvidia_card_ruled_out, nvidia_devices_on_bus
from dlready.words import stack_state_words

T = TypeVar("T")

DETECTED = "detected"
GIVEN = "given"
IMPLIED = "implied"
UNKNOWN = "unknown"

OS_CHOICES = ("linux", "windows", "macos")
ARCH_CHOICES = ("x86_64", "aarch64", "arm64")
ACCELERATOR_CHOICES = ("cuda", "rocm", "mps", "cpu")
_OS_ALIASES = {
    "darwin": "macos",
    "osx": "macos",
    "mac": "macos",
    "win": "windows",
    "win32": "windows",
}
_ARCH_ALIASES = {"amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64", "armv8": "aarch64"}
DEFAULT_ARCH_FOR_OS = {"macos": "arm64", "windows": "x86_64", "linux": "x86_64"}
"""The architecture assumed for ``--os`` given without ``--arch`` on a machine of another OS:
Apple silicon for macOS (Intel Macs stopped at torch 2.2.2), x86_64 for Windows and Linux."""
UNSUPPORTED_OS_DETAIL = "not Linux, Windows or macOS, and PyTorch publishes wheels for no other"
COMPUTE_CAPABILITY_MAJORS = (1, 15)
"""Accepted majors of ``--compute-capability``: NVIDIA GPUs so far span 1.0 (Tesla) to 12.x
(Blackwell); up to 15 leaves room for the next generations without accepting typos like 99.9."""
COMPUTE_CAPABILITY_HINT = "--compute-capability X.Y, e.g. 8.6 (RTX 30xx) or 6.1 (GTX 10xx)"
_CLOSE_MATCH_CUTOFF = 0.8
"""How similar a misspelt value must be to a valid one to be offered as "did you mean":
``linx`` -> ``linux`` (0.89) yes, ``freebsd`` -> ``macos`` no."""


class Fact(Struct, Generic[T], frozen=True):
    """One fact with its origin: ``detected``, ``given`` (a flag), ``implied`` or ``unknown``."""

    value: T | None
    origin: str
    detail: str | None = None
    """Where exactly: ``"NVML"``, ``"--driver"``, ``"by --driver"`` (for an implied value), or why
    it is unknown."""

    @property
    def known(self) -> bool:
        """True when the fact has a value."""
        return self.value is not None and self.value != ()

    def to_jsonable(self) -> dict[str, Any]:
        """``{"value", "origin", "detail"}`` (tuples become lists)."""
        result: dict[str, Any] = to_jsonable(self)
        return result


def unknown(reason: str) -> Fact[Any]:
    """A fact nobody could determine, with the reason."""
    return Fact(value=None, origin=UNKNOWN, detail=reason)


class NvidiaFault(Struct, frozen=True):
    """An NVIDIA GPU is evidently here, but its driver does not work: plan nothing until it
    does (a CPU build on a GPU machine is the wrong install)."""

    problem: str
    """What is wrong, in plain words with the driver's own message."""
    fix: str
    evidence: str
    """What shows the GPU is here (the driver library answering with an error, the PCI bus,
    the loaded kernel module)."""
    compute_capabilities: tuple[str, ...] = ()
    """Of every NVIDIA card on the PCI bus, when each is in the PCI id table; else empty."""
    gpu_names: tuple[str, ...] = ()
    kernel_driver_version: str | None = None
    """The loaded kernel module's version (``/proc/driver/nvidia/version``), if any."""


class MachineFacts(Struct, frozen=True):
    """What the planner needs to know about the target machine."""

    os: Fact[str]
    arch: Fact[str]
    python: Fact[str]
    accelerator: Fact[str]
    driver_version: Fact[str] = field(default_factory=lambda: unknown("no NVIDIA driver"))
    compute_capabilities: Fact[tuple[str, ...]] = field(
        default_factory=lambda: unknown("no NVIDIA GPU")
    )
    is_wsl: Fact[bool] = field(default_factory=lambda: unknown("not probed"))
    gpu_names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    """Detection remarks worth a warning (a broken driver stack, a GPU without a reading)."""
    nvidia_fault: NvidiaFault | None = None
    """Set when an NVIDIA GPU is evidently present but its driver does not work."""

    @property
    def platform(self) -> str | None:
        """``linux-x86_64``, ``linux-aarch64``, ``windows-x86_64``, ``windows-arm64``,
        ``macos-arm64`` or ``macos-x86_64``; None when OS or architecture is unknown."""
        if not (self.os.known and self.arch.known):
            return None
        arch = self.arch.value
        if arch in ("aarch64", "arm64"):
            arch = "aarch64" if self.os.value == "linux" else "arm64"
        return f"{self.os.value}-{arch}"

    def to_jsonable(self) -> dict[str, Any]:
        """Every fact with its origin, plus GPU names and detection notes."""
        result: dict[str, Any] = to_jsonable(self)
        return result


def _reading_value(reading: Any) -> Any:
    return reading.value if reading.ok else None


def facts_from_snapshot(snapshot: MachineSnapshot) -> MachineFacts:
    """The planner's facts from a snapshot: OS, CPU arch, Python X.Y, accelerator, driver,
    the compute capability of every NVIDIA GPU, WSL. Pure: reads only the snapshot."""
    os_fact = _os_fact(snapshot)
    arch_fact = _arch_fact(snapshot)
    driver_fact = _driver_fact(snapshot)
    cc_fact, names, gpu_notes = _nvidia_gpus(snapshot)
    accelerator, accel_notes = _accelerator_fact(snapshot, os_fact, arch_fact)
    return MachineFacts(
        os=os_fact,
        arch=arch_fact,
        python=_python_fact(snapshot),
        accelerator=accelerator,
        driver_version=driver_fact,
        compute_capabilities=cc_fact,
        is_wsl=_wsl_fact(snapshot),
        gpu_names=names,
        notes=(*gpu_notes, *accel_notes),
        nvidia_fault=_nvidia_fault(snapshot, driver_fact),
    )


def _os_fact(snapshot: MachineSnapshot) -> Fact[str]:
    if snapshot.platform.os is OperatingSystem.OTHER:
        return unknown(UNSUPPORTED_OS_DETAIL)
    return Fact(str(snapshot.platform.os), DETECTED, "platform")


def _arch_fact(snapshot: MachineSnapshot) -> Fact[str]:
    platform = snapshot.platform
    raw_arch = _reading_value(platform.machine_arch) or _reading_value(snapshot.cpu.architecture)
    if not raw_arch:
        return unknown(platform.machine_arch.reason or "CPU architecture not read")
    arch = _ARCH_ALIASES.get(str(raw_arch).lower(), str(raw_arch).lower())
    return Fact(arch, DETECTED, "platform")


def _python_fact(snapshot: MachineSnapshot) -> Fact[str]:
    reading = snapshot.platform.python_version
    raw_python = _reading_value(reading)
    if not raw_python:
        return unknown(reading.reason or "Python version not read")
    try:
        return Fact(python_minor(raw_python), DETECTED, "this interpreter")
    except ValueError:
        return unknown(f"unreadable Python version {raw_python!r}")


def _wsl_fact(snapshot: MachineSnapshot) -> Fact[bool]:
    reading = snapshot.platform.is_wsl
    if not reading.ok:
        return unknown(reading.reason or "not probed")
    return Fact(bool(reading.value), DETECTED, "platform")


_SOURCE_WORDS = {
    Source.NVML: "NVML",
    Source.PROCFS: "/proc/driver/nvidia",
    Source.SYSFS: "/sys/module/nvidia",
}


def _driver_fact(snapshot: MachineSnapshot) -> Fact[str]:
    stack = snapshot.stack(GpuVendor.NVIDIA)
    if stack is None:
        return unknown("no NVIDIA driver")
    driver = _reading_value(stack.driver_version)
    if driver:
        return Fact(str(driver), DETECTED, _SOURCE_WORDS.get(stack.driver_version.source, "NVML"))
    if stack.state is StackState.NOT_INSTALLED:
        return unknown("no NVIDIA driver")
    return unknown(stack.reason or stack.driver_version.reason or str(stack.state))


def _nvidia_gpus(
    snapshot: MachineSnapshot,
) -> tuple[Fact[tuple[str, ...]], tuple[str, ...], list[str]]:
    """Compute capabilities and names of the NVIDIA GPUs, with notes on unreadable ones."""
    nvidia = [gpu for gpu in snapshot.gpus if gpu.vendor is GpuVendor.NVIDIA]
    capabilities: list[str] = []
    names: list[str] = []
    notes: list[str] = []
    for gpu in nvidia:
        read_name = _reading_value(gpu.name)
        name = str(read_name) if read_name else f"GPU {gpu.index}"
        names.append(name)
        label = f"GPU {gpu.index} ({name})" if read_name else name
        cc = _reading_value(gpu.compute_capability)
        if not cc:
            reason = gpu.error or gpu.compute_capability.reason or "not read"
            notes.append(f"{label}: compute capability unknown ({reason})")
            continue
        try:
            capabilities.append(normalize_compute_capability(str(cc)))
        except ValueError:
            notes.append(f"{label}: unreadable compute capability {cc!r}")
    if capabilities:
        return Fact(tuple(capabilities), DETECTED, "NVML"), tuple(names), notes
    reason = "no NVIDIA GPU" if not nvidia else "no GPU reported a compute capability"
    return unknown(reason), tuple(names), notes


def _accelerator_fact(
    snapshot: MachineSnapshot, os_fact: Fact[str], arch_fact: Fact[str]
) -> tuple[Fact[str], list[str]]:
    """The detected accelerator, NVIDIA first (a broken NVIDIA driver is :class:`NvidiaFault`)."""
    nvidia = [gpu for gpu in snapshot.gpus if gpu.vendor is GpuVendor.NVIDIA]
    amd = [gpu for gpu in snapshot.gpus if gpu.vendor is GpuVendor.AMD]
    apple = [gpu for gpu in snapshot.gpus if gpu.vendor is GpuVendor.APPLE]
    nv_stack = snapshot.stack(GpuVendor.NVIDIA)
    nvidia_on_bus = nvidia_devices_on_bus(snapshot.pci_display_devices)
    notes: list[str] = []
    nv_devices = _reading_value(nv_stack.device_count) if nv_stack else None
    if nvidia or (nv_stack is not None and nv_stack.state is StackState.OK and nv_devices):
        if amd:
            notes.append("NVIDIA and AMD GPUs found: planning for the NVIDIA GPUs (CUDA)")
        return Fact("cuda", DETECTED, f"{len(nvidia) or nv_devices} NVIDIA GPU(s)"), notes
    if nvidia_on_bus:
        # The card is on the PCI bus but no driver answers: a CUDA machine whose driver comes
        # first, not a CPU machine.
        detail = f"{len(nvidia_on_bus)} NVIDIA device(s) on the PCI bus, no driver"
        return Fact("cuda", DETECTED, detail), notes
    if nv_stack is not None and nv_stack.state in _BROKEN_STACK and _leftover_driver(snapshot):
        notes.append(
            f"an NVIDIA driver is installed but {stack_state_words(nv_stack.state)}, and no "
            "NVIDIA card is on the PCI bus: planned as the machine it is, without one"
        )
    if amd:
        return Fact("rocm", DETECTED, f"{len(amd)} AMD GPU(s)"), notes
    if apple or (os_fact.value == "macos" and arch_fact.value in ("arm64", "aarch64")):
        return Fact("mps", DETECTED, "Apple GPU (Metal)"), notes
    return Fact("cpu", DETECTED, "no supported GPU found"), notes


_BROKEN_STACK = (
    StackState.DRIVER_NOT_LOADED,
    StackState.VERSION_MISMATCH,
    StackState.NO_PERMISSION,
    StackState.TIMED_OUT,
    StackState.FAILED,
)
_NO_DRIVER = "no working NVIDIA driver is installed for this GPU"
_INSTALL_DRIVER = (
    "install the NVIDIA driver for this GPU (your distribution's nvidia-driver package, or "
    "https://www.nvidia.com/en-us/drivers/), then reboot"
)


def _nvidia_fault(snapshot: MachineSnapshot, driver: Fact[str]) -> NvidiaFault | None:
    """Evidence of an NVIDIA GPU (a failing driver library, a card on the PCI bus) without a
    working driver."""
    stack = snapshot.stack(GpuVendor.NVIDIA)
    on_bus = nvidia_devices_on_bus(snapshot.pci_display_devices)
    broken = stack if stack is not None and stack.state in _BROKEN_STACK else None
    if broken is not None and _leftover_driver(snapshot):
        broken = None  # said in the accelerator's notes instead
    if driver.known or not (broken or on_bus):
        return None
    evidence = []
    if broken:
        evidence.append(f"the NVIDIA driver: {stack_state_words(broken.state)}")
    if on_bus:
        ids = ", ".join(f"{d.bus_id} (device {d.device_id})" for d in on_bus)
        evidence.append(f"NVIDIA display device(s) on the PCI bus: {ids}")
    capabilities, names = _identified_on_bus(on_bus)
    return NvidiaFault(
        problem=(broken.reason or "the NVIDIA driver does not answer") if broken else _NO_DRIVER,
        fix=(broken.hint if broken else None) or _INSTALL_DRIVER,
        evidence="; ".join(evidence),
        compute_capabilities=capabilities,
        gpu_names=names,
    )


def _leftover_driver(snapshot: MachineSnapshot) -> bool:
    """An NVIDIA driver that fails where the PCI bus shows no NVIDIA card (probes/pci.py)."""
    return nvidia_card_ruled_out(snapshot.pci_display_devices, snapshot.platform.is_wsl)


def _identified_on_bus(
    devices: tuple[PciDisplayDevice, ...],
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Compute capabilities and names of the NVIDIA cards on the bus, when every one is in
    the PCI id table (a partial answer would plan for the wrong set of GPUs)."""
    known = [gpu_from_pci_device(device.device_id) for device in devices]
    identified = [gpu for gpu in known if gpu is not None]
    if not identified or len(identified) != len(known):
        return (), ()
    return (
        tuple(gpu.compute_capability for gpu in identified),
        tuple(gpu.name for gpu in identified),
    )


def with_kernel_module(facts: MachineFacts, version: str | None) -> MachineFacts:
    """Add what the loaded NVIDIA kernel module says (read without NVML): the driver version
    a broken driver stack runs, or, when nothing else showed an NVIDIA GPU, the evidence."""
    if version is None or facts.driver_version.known:
        return facts
    fault = facts.nvidia_fault
    if fault is None or fault.problem == _NO_DRIVER:
        fault = NvidiaFault(
            problem=(
                f"the NVIDIA kernel module (driver {version}) is loaded, but the driver's "
                "library (libnvidia-ml.so) was not found"
            ),
            fix=(
                f"install the NVIDIA driver's user-space libraries of version {version}; in a "
                "container, start it with GPU access (docker run --gpus all)"
            ),
            evidence="; ".join(
                [
                    *([fault.evidence] if fault else []),
                    "the NVIDIA kernel module is loaded (/proc/driver/nvidia/version)",
                ]
            ),
            compute_capabilities=fault.compute_capabilities if fault else (),
            gpu_names=fault.gpu_names if fault else (),
        )
    return replace(facts, nvidia_fault=replace(fault, kernel_driver_version=version))


class FactOverrides(Struct, frozen=True):
    """Values given on the command line; None means "not given"."""

    os: str | None = None
    arch: str | None = None
    python: str | None = None
    accelerator: str | None = None
    driver: str | None = None
    compute_capabilities: tuple[str, ...] = ()

    @property
    def covers_detection(self) -> bool:
        """True when no probe is needed: OS, arch, Python and accelerator are all given, and
        for CUDA the driver too (compute capabilities may stay unknown, with a warning)."""
        basics = all((self.os, self.arch, self.python, self.accelerator))
        return basics and (self.accelerator != "cuda" or self.driver is not None)


def nearest_choice(value: str, choices: tuple[str, ...] | list[str]) -> str:
    """The closest valid spelling, for "did you mean" hints."""
    matches = difflib.get_close_matches(value.lower(), list(choices), n=1, cutoff=0.0)
    return matches[0] if matches else choices[0]


def _no_wheels_for(flag: str, raw: str, value: str, choices: tuple[str, ...]) -> PlanError:
    """An unknown ``--os``/``--arch``: "did you mean" only for a near-typo; otherwise say that
    PyTorch publishes no wheels for it and list what it does publish for."""
    close = difflib.get_close_matches(value, list(choices), n=1, cutoff=_CLOSE_MATCH_CUTOFF)
    supported = ", ".join(choices[:-1]) + f" or {choices[-1]}"
    if close:
        return PlanError(f"unknown {flag} {raw!r}", f"{flag} {close[0]} (one of {supported})")
    return PlanError(
        f"PyTorch publishes no wheels for {flag} {raw!r}", f"supported: {flag} {supported}"
    )


def _compute_capabilities(values: tuple[str, ...]) -> tuple[str, ...]:
    """Validated ``--compute-capability`` values: ``X.Y`` (or ``sm_XY``/``XY``), comma lists
    allowed, major within :data:`COMPUTE_CAPABILITY_MAJORS` and a one-digit minor."""
    capabilities = []
    for raw in values:
        for item in raw.split(","):
            if not item.strip():
                raise PlanError(
                    f"--compute-capability {raw!r} has an empty value", COMPUTE_CAPABILITY_HINT
                )
            try:
                major, minor = compute_capability_key(item)
            except ValueError:
                raise PlanError(
                    f"--compute-capability {item!r} is not a compute capability",
                    COMPUTE_CAPABILITY_HINT,
                ) from None
            low, high = COMPUTE_CAPABILITY_MAJORS
            if not (low <= major <= high and 0 <= minor <= 9):
                raise PlanError(
                    f"--compute-capability {item!r} is outside the known range "
                    f"({low}.0 to {high}.9)",
                    COMPUTE_CAPABILITY_HINT,
                )
            capabilities.append(f"{major}.{minor}")
    return tuple(capabilities)


def validate_overrides(overrides: FactOverrides) -> FactOverrides:
    """Normalise flag values; unknown values raise :class:`PlanError` naming the nearest.

    Raises:
        PlanError: for an unknown OS, architecture, accelerator, a malformed Python version,
            driver version or compute capability.
    """
    os_value = overrides.os
    if os_value is not None:
        os_value = _OS_ALIASES.get(os_value.lower(), os_value.lower())
        if os_value not in OS_CHOICES:
            raise _no_wheels_for("--os", overrides.os or "", os_value, OS_CHOICES)
    arch = overrides.arch
    if arch is not None:
        arch = _ARCH_ALIASES.get(arch.lower(), arch.lower())
        if arch not in ARCH_CHOICES:
            raise _no_wheels_for("--arch", overrides.arch or "", arch, ARCH_CHOICES)
    python = overrides.python
    if python is not None:
        try:
            python = python_minor(python)
        except ValueError:
            raise PlanError(
                f"--python {overrides.python!r} is not a Python version",
                "--python X.Y, e.g. --python 3.12",
            ) from None
    accelerator = overrides.accelerator
    if accelerator is not None:
        accelerator = accelerator.lower()
        if accelerator not in ACCELERATOR_CHOICES:
            raise PlanError(
                f"unknown --accelerator {overrides.accelerator!r}",
                f"--accelerator {nearest_choice(accelerator, ACCELERATOR_CHOICES)} "
                f"(one of {', '.join(ACCELERATOR_CHOICES)})",
            )
    driver = overrides.driver
    if driver is not None:
        driver = driver.strip()
        parts = driver.split(".")
        if not (1 <= len(parts) <= 3 and all(p.isdigit() for p in parts)):
            raise PlanError(
                f"--driver {overrides.driver!r} is not an NVIDIA driver version",
                "--driver like 580.65.06 or 551.61",
            )
    capabilities = _compute_capabilities(overrides.compute_capabilities)
    nvidia_only = [
        flag
        for flag, given in (("--driver", driver), ("--compute-capability", capabilities))
        if given
    ]
    if accelerator not in (None, "cuda") and nvidia_only:
        # Planning a ROCm, MPS or CPU build while describing an NVIDIA GPU is a contradiction;
        # silently ignoring the NVIDIA flags would hide a typo in one of them.
        verb = "describe" if len(nvidia_only) > 1 else "describes"
        hint = f"--accelerator cuda, or drop {' and '.join(nvidia_only)}"
        if os_value == "macos":  # no CUDA wheels there: the default macOS wheels, as asked
            keep = accelerator if accelerator in ("mps", "cpu") else "cpu"
            if keep == "mps" and arch == "x86_64":
                keep = "cpu"
            elif accelerator == "rocm" and arch != "x86_64":
                keep = "mps"
            hint = (
                f"--accelerator {keep} --variant default without --driver "
                "--compute-capability (the default macOS wheels)"
            )
        raise PlanError(
            f"{' and '.join(nvidia_only)} {verb} an NVIDIA GPU, but --accelerator "
            f"{accelerator} was given",
            hint,
        )
    return FactOverrides(
        os=os_value,
        arch=arch,
        python=python,
        accelerator=accelerator,
        driver=driver,
        compute_capabilities=tuple(capabilities),
    )


def apply_overrides(facts: MachineFacts, overrides: FactOverrides) -> MachineFacts:
    """Flags win over detection. ``--driver`` or ``--compute-capability`` on a machine
    detected as CPU-only imply ``--accelerator cuda``.

    ``overrides`` must come from :func:`validate_overrides`.
    """
    result = facts
    if overrides.os is not None:
        result = replace(result, os=Fact(overrides.os, GIVEN, "--os"))
    if overrides.arch is not None:
        result = replace(result, arch=Fact(overrides.arch, GIVEN, "--arch"))
    elif overrides.os is not None and overrides.os != facts.os.value:
        # This machine's CPU says nothing about a machine of another OS.
        result = replace(result, arch=_implied_arch(overrides.os, facts))
    if overrides.python is not None:
        result = replace(result, python=Fact(overrides.python, GIVEN, "--python"))
    if overrides.driver is not None:
        result = replace(result, driver_version=Fact(overrides.driver, GIVEN, "--driver"))
    if overrides.compute_capabilities:
        result = replace(
            result,
            compute_capabilities=Fact(
                overrides.compute_capabilities, GIVEN, "--compute-capability"
            ),
            gpu_names=(),
        )
    if overrides.accelerator is not None:
        result = replace(result, accelerator=Fact(overrides.accelerator, GIVEN, "--accelerator"))
    elif (
        overrides.driver or overrides.compute_capabilities
    ) and result.accelerator.value != "cuda":
        flag = "--driver" if overrides.driver else "--compute-capability"
        result = replace(result, accelerator=Fact("cuda", IMPLIED, f"by {flag}"))
    return result


def _implied_arch(os_name: str, facts: MachineFacts) -> Fact[str]:
    arch = DEFAULT_ARCH_FOR_OS[os_name]
    here = f"this {facts.os.value} machine" if facts.os.known else "this machine"
    assumed = (
        "Apple silicon assumed, --arch x86_64 for an Intel Mac"
        if os_name == "macos"
        else f"{arch} assumed, --arch to change it"
    )
    return Fact(
        arch,
        IMPLIED,
        f"by --os {os_name}: the CPU of {here} says nothing about the target; {assumed}",
    )


def facts_from_overrides(overrides: FactOverrides) -> MachineFacts:
    """Facts for a machine described only by flags (no detection ran)."""
    base = MachineFacts(
        os=unknown("not detected"),
        arch=unknown("not detected"),
        python=unknown("not detected"),
        accelerator=unknown("not detected"),
        driver_version=unknown("not given (no detection: every basic fact was given)"),
        compute_capabilities=unknown("not given (no detection: every basic fact was given)"),
        is_wsl=unknown("not detected"),
    )
    return apply_overrides(base, overrides)
