"""What hardware can produce: readings outside these ranges are not judged.

A broken driver, a sensor fault or a hand-edited report can hand dlready values no machine
produces: NVML's "no value" sentinels (2^32-1, 2^32-5, 2^64-1), a negative VRAM size, a
temperature below absolute zero, a cgroup quota of -1 CPUs. Judged as real, they give a margin
of "-4,294,967,197 °C" or a 5 MW power need. Such a reading becomes *failed* with the reason
"implausible reading (value)", which every verdict shows as unknown.

The ranges are wide on purpose (several times today's largest hardware), so that only values
that cannot be real are screened. The same table is applied when probing
(:func:`screen_snapshot` in ``probes/collect.py``) and when reading a saved report back
(``snapshot_file.py``), so a live reading and a re-judged one are treated alike.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import msgspec
from msgspec import Struct

from dlready.model import (
    CpuInfo,
    DriverStack,
    GpuInfo,
    MachineSnapshot,
    MemoryInfo,
    PowerSupplyInfo,
    Reading,
    ReadState,
    Source,
)


class PlausibleRange(Struct, frozen=True):
    """The closed interval a reading must fall in, its unit as shown, and why."""

    low: float
    high: float
    unit: str
    why: str


_TIB = 2**40
_PIB = 2**50
_GPU_TEMPERATURE = PlausibleRange(
    -40,
    150,
    "°C",
    "chips are rated from -40 °C (industrial parts) and shut down long before 150 °C",
)
_GPU_POWER = PlausibleRange(
    0, 5_000, "W", "the largest GPU modules today are rated about 1,200 W (NVIDIA B200)"
)
_CPU_COUNT = PlausibleRange(
    1, 65_536, "CPUs", "Linux supports at most 8,192 CPUs per machine (NR_CPUS with MAXSMP)"
)
_CPU_CLOCK = PlausibleRange(
    1, 10_000, "MHz", "the overclocking world record for a CPU is about 9,100 MHz"
)
_RAM = PlausibleRange(
    0, _PIB, "bytes", "the largest single machines hold a few dozen TiB of RAM, not a PiB"
)

GPU_RANGES: Mapping[str, PlausibleRange] = {
    "memory_total_bytes": PlausibleRange(
        0, _TIB, "bytes", "the largest GPUs today carry 288 GB (AMD MI355X, NVIDIA B300)"
    ),
    "memory_free_bytes": PlausibleRange(
        0, _TIB, "bytes", "free memory cannot exceed the largest GPU memory (288 GB today)"
    ),
    "cuda_cores": PlausibleRange(
        1, 200_000, "cores", "the largest GPUs today have about 20,000 CUDA cores"
    ),
    "max_sm_clock_mhz": PlausibleRange(
        1, 10_000, "MHz", "GPU core clocks top out near 3,000 MHz, even overclocked"
    ),
    "max_memory_clock_mhz": PlausibleRange(
        1, 50_000, "MHz", "GDDR7 at 32 Gbps is reported as about 16,000 MHz"
    ),
    "memory_bus_width_bits": PlausibleRange(
        1, 16_384, "bits", "eight HBM3e stacks give the widest bus today: 8,192 bits"
    ),
    "fp32_peak_tflops": PlausibleRange(
        0, 1_000, "TFLOP/s", "the fastest GPU today peaks at about 80 FP32 TFLOP/s"
    ),
    "power_limit_enforced_w": _GPU_POWER,
    "power_limit_default_w": _GPU_POWER,
    "power_limit_min_w": _GPU_POWER,
    "power_limit_max_w": _GPU_POWER,
    "power_draw_w": _GPU_POWER,
    "temperature_c": _GPU_TEMPERATURE,
    "temperature_slowdown_c": _GPU_TEMPERATURE,
    "temperature_shutdown_c": _GPU_TEMPERATURE,
    "fan_speed_percent": PlausibleRange(
        0, 200, "%", "NVML documents that the fan speed may exceed 100% in certain cases"
    ),
    "pcie_generation_current": PlausibleRange(
        1, 8, "", "PCIe generations run from 1 to 7 (PCI-SIG, 2025)"
    ),
    "pcie_generation_max": PlausibleRange(
        1, 8, "", "PCIe generations run from 1 to 7 (PCI-SIG, 2025)"
    ),
    "pcie_width_current": PlausibleRange(1, 32, "lanes", "a PCIe link has at most 32 lanes"),
    "pcie_width_max": PlausibleRange(1, 32, "lanes", "a PCIe link has at most 32 lanes"),
}

CPU_RANGES: Mapping[str, PlausibleRange] = {
    "physical_cores": _CPU_COUNT,
    "logical_cpus": _CPU_COUNT,
    "affinity_cpus": _CPU_COUNT,
    "cgroup_cpu_limit_cpus": PlausibleRange(
        0.001,
        1_000_000,
        "CPUs",
        "the kernel's smallest quota is 1 ms per 1 s period (0.001 CPUs); a negative quota "
        "is not a limit",
    ),
    "usable_cpus": PlausibleRange(
        0.001, 65_536, "CPUs", "between the smallest cgroup quota and the largest machine"
    ),
    "base_clock_mhz": _CPU_CLOCK,
    "max_clock_mhz": _CPU_CLOCK,
    "package_temperature_c": _GPU_TEMPERATURE,
}

MEMORY_RANGES: Mapping[str, PlausibleRange] = {
    "total_bytes": msgspec.structs.replace(_RAM, low=1),
    "available_bytes": _RAM,
    "swap_total_bytes": _RAM,
    "cgroup_limit_bytes": _RAM,
    "effective_total_bytes": msgspec.structs.replace(_RAM, low=1),
}

POWER_SUPPLY_RANGES: Mapping[str, PlausibleRange] = {
    "declared_capacity_w": PlausibleRange(
        1, 100_000, "W", "the largest server power supplies are rated about 5,000 W"
    ),
    "dmi_capacity_w": PlausibleRange(
        1, 100_000, "W", "the largest server power supplies are rated about 5,000 W"
    ),
}

DEVICE_COUNT = PlausibleRange(
    0, 65_536, "GPUs", "one machine holds a few dozen GPUs at most; NVML's sentinels are 2^32-1"
)
"""GPUs one driver may count; also bounds the NVIDIA probe's loop over them."""

_CAPABILITY_FORM = re.compile(r"\d{1,2}\.\d{1,2}")
_CAPABILITY_WHY = "CUDA compute capabilities run from 1.0 to 12.x"


def describe(value: float, unit: str = "") -> str:
    """A value as it appears in an "implausible reading (...)" reason."""
    if isinstance(value, int) and not isinstance(value, bool):
        text = f"{value:,}" if abs(value) < 10**15 else f"about 10^{int(math.log10(abs(value)))}"
    else:
        text = f"{value:,.6g}" if abs(value) < 1e15 else f"{value:.3g}"
    return f"{text} {unit}".strip()


def implausible(reading: Reading[Any], why: str, shown: str) -> Reading[Any]:
    """The failed reading that replaces an implausible one (same source)."""
    return Reading.failed(reading.source, f"implausible reading ({shown}): {why}")


def screen(reading: Reading[Any], plausible: PlausibleRange) -> Reading[Any]:
    """``reading`` itself when its value is plausible (or absent), else a failed reading."""
    value = reading.value
    if reading.state is not ReadState.READ or value is None or isinstance(value, bool):
        return reading
    if not isinstance(value, (int, float)):
        return reading
    if isinstance(value, float) and not math.isfinite(value):
        return implausible(reading, plausible.why, str(value))
    if plausible.low <= value <= plausible.high:
        return reading
    return implausible(reading, plausible.why, describe(value, plausible.unit))


def plausible_or_none(value: float | None, plausible: PlausibleRange) -> float | None:
    """``value`` when it lies in the range, else None (for samples that carry no reason)."""
    if value is None or not math.isfinite(value) or not plausible.low <= value <= plausible.high:
        return None
    return value


def screen_compute_capability(reading: Reading[str]) -> Reading[str]:
    """A compute capability must look like ``MAJOR.MINOR`` with numbers CUDA uses."""
    value = reading.value
    if reading.state is not ReadState.READ or value is None:
        return reading
    if _CAPABILITY_FORM.fullmatch(value) and not value.startswith("0"):
        return reading
    shown = value if len(value) <= 24 else value[:21] + "..."
    return implausible(reading, _CAPABILITY_WHY, shown)


def _screen_fields(obj: Any, ranges: Mapping[str, PlausibleRange]) -> dict[str, Any]:
    """The fields of ``obj`` whose readings change under ``ranges``."""
    changes = {}
    for name, plausible in ranges.items():
        reading = getattr(obj, name)
        screened = screen(reading, plausible)
        if screened is not reading:
            changes[name] = screened
    return changes


def screen_gpu(gpu: GpuInfo) -> GpuInfo:
    """``gpu`` with every implausible reading replaced; readings derived from one are too."""
    changes = _screen_fields(gpu, GPU_RANGES)
    capability = screen_compute_capability(gpu.compute_capability)
    if capability is not gpu.compute_capability:
        changes["compute_capability"] = capability
    derived_from = [changes[name] for name in ("cuda_cores", "max_sm_clock_mhz") if name in changes]
    if derived_from and gpu.fp32_peak_tflops.source is Source.DERIVED:
        changes["fp32_peak_tflops"] = Reading.failed(
            Source.DERIVED, f"derived from an {derived_from[0].reason}"
        )
    return msgspec.structs.replace(gpu, **changes) if changes else gpu


def _screen_stack(stack: DriverStack) -> DriverStack:
    count = screen(stack.device_count, DEVICE_COUNT)
    return (
        stack if count is stack.device_count else msgspec.structs.replace(stack, device_count=count)
    )


def screen_snapshot(snapshot: MachineSnapshot) -> MachineSnapshot:
    """``snapshot`` with every implausible reading replaced by a failed one that says so."""
    cpu_changes = _screen_fields(snapshot.cpu, CPU_RANGES)
    memory_changes = _screen_fields(snapshot.memory, MEMORY_RANGES)
    psu_changes = _screen_fields(snapshot.power_supply, POWER_SUPPLY_RANGES)
    gpus = tuple(screen_gpu(gpu) for gpu in snapshot.gpus)
    stacks = tuple(_screen_stack(stack) for stack in snapshot.driver_stacks)
    unchanged = (
        not (cpu_changes or memory_changes or psu_changes)
        and all(new is old for new, old in zip(gpus, snapshot.gpus, strict=True))
        and all(new is old for new, old in zip(stacks, snapshot.driver_stacks, strict=True))
    )
    if unchanged:
        return snapshot
    cpu: CpuInfo = msgspec.structs.replace(snapshot.cpu, **cpu_changes)
    memory: MemoryInfo = msgspec.structs.replace(snapshot.memory, **memory_changes)
    power_supply: PowerSupplyInfo = msgspec.structs.replace(snapshot.power_supply, **psu_changes)
    return msgspec.structs.replace(
        snapshot,
        cpu=cpu,
        memory=memory,
        power_supply=power_supply,
        gpus=gpus,
        driver_stacks=stacks,
    )
