"""Run every probe and assemble one :class:`MachineSnapshot`.

Each probe is isolated: one that raises becomes a :class:`ProbeError` and its part of the
snapshot stays "not probed"; the rest of the report still stands. The NVML probe runs in a forked
child process (:mod:`dlready.probes.isolated`) while the file probes run here, so a slow or hung
driver overlaps with them, a hang is abandoned after :data:`NVML_TIMEOUT_S`, and a crash inside
the NVIDIA library (a segfault) costs the GPU rows, never the report. Where ``fork`` is not
available the NVML probe runs on a thread with the same timeout.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections.abc import Callable
from typing import TypeVar

from msgspec import Struct, field

from dlready import __version__
from dlready.background import Background
from dlready.model import (
    BuildTools,
    CpuInfo,
    DriverStack,
    GpuInfo,
    GpuVendor,
    MachineSnapshot,
    MemoryInfo,
    OperatingSystem,
    PlatformInfo,
    PowerSupplyInfo,
    ProbeError,
    Reading,
    Source,
    StackState,
    TorchInstall,
    missing,
)
from dlready.plausibility import screen_snapshot
from dlready.probes.cpu import probe_cpu
from dlready.probes.host_gateway import HostBackend, RealHost
from dlready.probes.hostfs import HostFiles, RealHostFiles
from dlready.probes.isolated import ChildProbe, Crashed, Failed, Finished, TimedOut, can_isolate
from dlready.probes.memory import probe_memory
from dlready.probes.nvml_gateway import NVML_TIMEOUT_S, NvmlBackend
from dlready.probes.pci import probe_pci_display_devices
from dlready.probes.platform_probe import operating_system, probe_platform
from dlready.probes.psu import probe_power_supply
from dlready.probes.tools_gateway import RealTools, ToolBackend
from dlready.probes.torch_meta import probe_torch

T = TypeVar("T")

GpuProbeResult = tuple[DriverStack, tuple[GpuInfo, ...]]


class ProbeBackends(Struct):
    """Everything the probes read from. Tests pass replays; ``None`` fields mean "the real one"."""

    files: HostFiles = field(default_factory=RealHostFiles)
    host: HostBackend = field(default_factory=RealHost)
    nvml: NvmlBackend | None = None
    """None builds ``RealNvml`` lazily (pynvml import), in the probe's own process."""
    sysctl: Callable[[str], str | None] | None = None
    """macOS ``sysctl`` runner for the Apple probe; None uses the real one."""
    torch: Callable[[], TorchInstall] = probe_torch
    tools: ToolBackend = field(default_factory=RealTools)
    """Programs on PATH (nvcc, compilers) and toolchain files, for the build tools part."""
    nvml_timeout_s: float = NVML_TIMEOUT_S
    isolate_nvml: bool = True
    """Run the NVML probe in a forked child (where the platform allows it)."""


def _now_iso() -> str:
    # What datetime.now(timezone.utc).isoformat(timespec="seconds") says, without importing it.
    return time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())


def _probe_nvidia(backends: ProbeBackends) -> GpuProbeResult:
    from dlready.probes import nvidia, nvml_gateway

    backend = backends.nvml if backends.nvml is not None else nvml_gateway.RealNvml()
    return nvidia.probe_nvidia(backend, timeout_s=backends.nvml_timeout_s)


class _IsolatedNvidiaProbe:
    """The NVML probe in a forked child, started at once and collected later."""

    def __init__(self, backends: ProbeBackends) -> None:
        # Everything the child runs is imported here first: a fork copies the import locks
        # that other threads (smoke's main thread) hold at that moment, and a child waiting
        # for one of them would hang until its deadline.
        from dlready.probes import nvidia, nvml_gateway

        if backends.nvml is None and threading.active_count() > 1:
            nvml_gateway.preload()
        self._backends = backends
        backend = backends.nvml if backends.nvml is not None else nvml_gateway.RealNvml()
        # No thread in the child (starting one there costs milliseconds): this deadline is
        # the probe's time limit, and the child is killed when it passes.
        self.child = ChildProbe(
            lambda: nvidia.probe_nvidia_unbounded(backend), backends.nvml_timeout_s
        )

    def result(self) -> GpuProbeResult:
        """The probe's result; a crash or a hang of the child becomes the driver stack's state."""
        from dlready.probes import nvidia

        outcome = self.child.result()
        if isinstance(outcome, Finished):
            return outcome.value
        if isinstance(outcome, TimedOut):
            return nvidia.stack_timed_out(self._backends.nvml_timeout_s), ()
        if isinstance(outcome, Crashed):
            return _crashed_stack(outcome), ()
        assert isinstance(outcome, Failed)
        return _failed_stack(GpuVendor.NVIDIA, outcome.message)


def _crashed_stack(crash: Crashed) -> DriverStack:
    if crash.signal_number in (signal.SIGINT, signal.SIGTERM):
        reason = f"reading the GPUs was interrupted ({crash.description})"
        hint = "Run the command again to read the GPUs."
    else:
        reason = f"the NVIDIA library crashed ({crash.description}) while reading the GPUs"
        hint = (
            "The driver's NVML library is broken or does not match the kernel module: run "
            "`nvidia-smi` (it uses the same library) and check `dmesg` for Xid errors; "
            "reinstalling the driver or a reboot usually fixes it."
        )
    return DriverStack(vendor=GpuVendor.NVIDIA, state=StackState.FAILED, reason=reason, hint=hint)


def _probe_amd(backends: ProbeBackends) -> GpuProbeResult:
    from dlready.probes import amd

    return amd.probe_amd(backends.files)


def _probe_apple(backends: ProbeBackends) -> GpuProbeResult:
    from dlready.probes import apple

    return apple.probe_apple(
        system=backends.host.system(),
        machine=backends.host.machine(),
        sysctl=backends.sysctl or apple.run_sysctl,
    )


def _probe_build(backends: ProbeBackends, os_family: OperatingSystem) -> BuildTools:
    from dlready.probes.build_tools import probe_build_tools

    return probe_build_tools(backends.tools, os_family)


class _Timed:
    """Runs probes, timing each and turning an exception into a :class:`ProbeError`."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.errors: list[ProbeError] = []

    def run(self, name: str, probe: Callable[[], T], fallback: T) -> T:
        started = time.perf_counter()
        try:
            return probe()
        except Exception as exc:  # noqa: BLE001  # one broken probe must not sink the report
            self.errors.append(ProbeError(probe=name, message=f"{type(exc).__name__}: {exc}"))
            return fallback
        finally:
            self.seconds[name] = round(time.perf_counter() - started, 4)


def _failed_stack(vendor: GpuVendor, reason: str = "the probe crashed") -> GpuProbeResult:
    return DriverStack(vendor=vendor, state=StackState.FAILED, reason=reason), ()


def collect_snapshot(
    *,
    backends: ProbeBackends | None = None,
    psu_watts: float | None = None,
    validate_psu: bool = False,
    meanwhile: Callable[[], object] | None = None,
) -> MachineSnapshot:
    """Probe this machine (or the replayed one in ``backends``).

    ``meanwhile`` runs on this thread while the slow probes (NVML in its child, the build
    tools' programs) are still out: ``check`` imports its judge there instead of after.
    Whatever it raises is left for the caller to meet again later.

    Raises:
        ValueError: with ``validate_psu``, when ``--psu-watts`` or ``DLREADY_PSU_WATTS`` is
            not a plausible wattage (``check`` judges the PSU; other commands only read it,
            and a bad value becomes a failed reading there).
    """
    backends = backends or ProbeBackends()
    timed = _Timed()
    os_family = operating_system(backends.host.system())
    environ = backends.host.environ()
    # Validate user input first, so a bad value fails before any probing.
    try:
        power_supply = probe_power_supply(backends.files, psu_watts, environ)
    except ValueError as exc:
        if validate_psu:
            raise
        power_supply = PowerSupplyInfo(
            declared_capacity_w=Reading.failed(Source.USER, str(exc)),
            dmi_capacity_w=Reading.unsupported(Source.DMI, "not read"),
        )

    isolated: _IsolatedNvidiaProbe | None = None
    if os_family is not OperatingSystem.MACOS and backends.isolate_nvml and can_isolate():
        # Forked before any thread of ours starts (see _IsolatedNvidiaProbe).
        with contextlib.suppress(OSError):  # no process to spare: NVML runs on a thread below
            isolated = _IsolatedNvidiaProbe(backends)
    try:
        # The build tools probe waits on programs (nvcc, gcc): overlap it with the file
        # probes.
        build_future = Background(
            lambda: timed.run("build", lambda: _probe_build(backends, os_family), BuildTools())
        )
        nvidia_future: Background[GpuProbeResult] | None = None
        if os_family is not OperatingSystem.MACOS and isolated is None:
            nvidia_future = Background(
                lambda: timed.run(
                    "nvidia", lambda: _probe_nvidia(backends), _failed_stack(GpuVendor.NVIDIA)
                )
            )
        platform = timed.run(
            "platform",
            lambda: probe_platform(backends.files, backends.host),
            PlatformInfo(os=os_family),
        )
        cpu = timed.run("cpu", lambda: probe_cpu(backends.files, backends.host), CpuInfo())
        memory = timed.run(
            "memory", lambda: probe_memory(backends.files, backends.host), MemoryInfo()
        )
        torch = timed.run("torch", backends.torch, TorchInstall(installed=False))
        results: list[GpuProbeResult] = []
        pci = missing("PCI devices are read on Linux only")
        if os_family is OperatingSystem.LINUX:
            pci = timed.run("pci", lambda: probe_pci_display_devices(backends.files), pci)
            results.append(
                timed.run("amd", lambda: _probe_amd(backends), _failed_stack(GpuVendor.AMD))
            )
        if os_family is OperatingSystem.MACOS:
            results.append(
                timed.run("apple", lambda: _probe_apple(backends), _failed_stack(GpuVendor.APPLE))
            )
        if meanwhile is not None:
            with contextlib.suppress(Exception):
                meanwhile()
        if isolated is not None:
            results.insert(0, timed.run("nvidia", isolated.result, _failed_stack(GpuVendor.NVIDIA)))
        if nvidia_future is not None:
            results.insert(0, nvidia_future.result())
        build = build_future.result()
    finally:
        if isolated is not None:  # Ctrl-C or a bug above: the child must not outlive us
            isolated.child.kill()

    stacks = tuple(stack for stack, _ in results)
    gpus: list[GpuInfo] = []
    for _, vendor_gpus in results:
        gpus.extend(vendor_gpus)
    snapshot = MachineSnapshot(
        captured_at=_now_iso(),
        dlready_version=__version__,
        platform=platform,
        cpu=cpu,
        memory=memory,
        driver_stacks=stacks,
        gpus=tuple(gpus),
        power_supply=power_supply,
        torch=torch,
        pci_display_devices=pci,
        build=build,
        probe_seconds=timed.seconds,
        errors=tuple(timed.errors),
    )
    # Readings no hardware can produce (driver sentinels, sensor faults) are not judged.
    return screen_snapshot(snapshot)
