"""Run every probe and assemble one :class:`MachineSnapshot`.

Each probe is isolated: one that raises becomes a :class:`ProbeError` and its part of the
snapshot stays "not probed"; the rest of the report still stands. The NVML probe runs on its own
thread (and has its own timeout) so a slow or hung driver overlaps with the file probes.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from dlready import __version__
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
from dlready.probes.memory import probe_memory
from dlready.probes.pci import probe_pci_display_devices
from dlready.probes.platform_probe import operating_system, probe_platform
from dlready.probes.psu import probe_power_supply
from dlready.probes.tools_gateway import RealTools, ToolBackend
from dlready.probes.torch_meta import probe_torch

T = TypeVar("T")

NVML_TIMEOUT_S = 10.0
"""A cold multi-GPU host without persistence mode takes seconds per GPU to initialise."""

GpuProbeResult = tuple[DriverStack, tuple[GpuInfo, ...]]


@dataclass
class ProbeBackends:
    """Everything the probes read from. Tests pass replays; ``None`` fields mean "the real one"."""

    files: HostFiles = field(default_factory=RealHostFiles)
    host: HostBackend = field(default_factory=RealHost)
    nvml: Any = None
    """An ``nvml_gateway.NvmlBackend``; None builds ``RealNvml`` lazily (pynvml import)."""
    sysctl: Callable[[str], str | None] | None = None
    """macOS ``sysctl`` runner for the Apple probe; None uses the real one."""
    torch: Callable[[], TorchInstall] = probe_torch
    tools: ToolBackend = field(default_factory=RealTools)
    """Programs on PATH (nvcc, compilers) and toolchain files, for the build tools part."""
    nvml_timeout_s: float = NVML_TIMEOUT_S


def _now_iso() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")


def _probe_nvidia(backends: ProbeBackends) -> GpuProbeResult:
    from dlready.probes import nvidia, nvml_gateway

    backend = backends.nvml if backends.nvml is not None else nvml_gateway.RealNvml()
    return nvidia.probe_nvidia(backend, timeout_s=backends.nvml_timeout_s)


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


def _failed_stack(vendor: GpuVendor) -> GpuProbeResult:
    return DriverStack(vendor=vendor, state=StackState.FAILED, reason="the probe crashed"), ()


def collect_snapshot(
    *,
    backends: ProbeBackends | None = None,
    psu_watts: float | None = None,
    validate_psu: bool = False,
) -> MachineSnapshot:
    """Probe this machine (or the replayed one in ``backends``).

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

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        # The build tools probe waits on programs (nvcc, gcc): overlap it with the file probes.
        build_future = pool.submit(
            timed.run, "build", lambda: _probe_build(backends, os_family), BuildTools()
        )
        nvidia_future = None
        if os_family is not OperatingSystem.MACOS:
            nvidia_future = pool.submit(
                timed.run,
                "nvidia",
                lambda: _probe_nvidia(backends),
                _failed_stack(GpuVendor.NVIDIA),
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
        if nvidia_future is not None:
            results.insert(0, nvidia_future.result())
        build = build_future.result()

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
