"""Expected speed figures and the grading of measured ones (pure: no torch, no hardware).

Where an expected figure comes from, in order:

1. ``data/device_peaks.json``: NVIDIA spec-sheet figures for known GPUs, matched by the exact
   device name torch reports (each entry names its document).
2. NVML, for NVIDIA GPUs missing from the table: float32 peak = CUDA cores x 2 x max SM clock;
   memory bandwidth = 2 x max memory clock x bus width (both reproduce the H100 datasheet from
   the H100 capture: 16896 x 2 x 1.98 GHz = 66.9 TFLOP/s; 2 x 2619 MHz x 5120 bit = 3.35 TB/s).
3. The PCIe rule (generation x width from NVML) for host <-> device copies.

Anything else is "unknown", with the reason: a CPU's peak depends on clocks, SIMD width and
core count under load, so none is invented.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from dlready.model import GpuInfo
from dlready.package_data import read_data_text
from dlready.smoke.report import CheckResult, CheckStatus, Expectation

DATA_FILE = "device_peaks.json"

WARN_BELOW_PERCENT: dict[str, float] = {"matmul": 40.0, "memory_copy": 50.0, "transfer": 50.0}
"""A healthy device reaches more than this share of its peak in each measure (docs/smoke.md).

Lenient on purpose: quick mode uses smaller matrices (an H100 reaches ~59 % of its 8192³
bf16 rate at 2048³), consumer cards and power caps vary, and DCGM's own per-SKU gates sit at
0.75 x a *measured* good value, not at the spec peak.
"""
FAIL_BELOW_PERCENT = 10.0
"""Under a tenth of the peak no healthy device of that model runs: something is broken."""


class DevicePeaks(Struct, frozen=True):
    """Spec-sheet figures for one GPU model."""

    id: str
    names: tuple[str, ...]
    dense_tflops: dict[str, float | None]
    memory_bandwidth_gbps: float | None
    source_document: str
    source_url: str
    notes: str = ""

    @property
    def source(self) -> str:
        """Document and address, as printed in the report."""
        return f"{self.source_document} <{self.source_url}>"


class PcieGeneration(Struct, frozen=True):
    """Line rate of one PCIe generation."""

    gt_per_s: float
    efficiency: float
    encoding: str


class PeaksTable(Struct, frozen=True):
    """The whole data file."""

    devices: tuple[DevicePeaks, ...]
    pcie: dict[int, PcieGeneration]
    pcie_source: str


def normalise_name(name: str) -> str:
    """Compare device names without case, repeated spaces or the ``NVIDIA`` prefix."""
    words = name.lower().split()
    if words and words[0] == "nvidia":
        words = words[1:]
    return " ".join(words)


def parse_peaks(data: dict[str, Any]) -> PeaksTable:
    """Build the table from the JSON document (raises KeyError/TypeError if malformed)."""
    devices = tuple(
        DevicePeaks(
            id=str(entry["id"]),
            names=tuple(str(n) for n in entry["names"]),
            dense_tflops={
                str(k): (None if v is None else float(v)) for k, v in entry["dense_tflops"].items()
            },
            memory_bandwidth_gbps=(
                None
                if entry.get("memory_bandwidth_gbps") is None
                else float(entry["memory_bandwidth_gbps"])
            ),
            source_document=str(entry["source"]["document"]),
            source_url=str(entry["source"]["url"]),
            notes=str(entry.get("notes", "")),
        )
        for entry in data["devices"]
    )
    pcie = {
        int(generation): PcieGeneration(
            gt_per_s=float(value["gt_per_s"]),
            efficiency=float(value["efficiency"]),
            encoding=str(value["encoding"]),
        )
        for generation, value in data["pcie"]["generations"].items()
    }
    source = data["pcie"]["source"]
    return PeaksTable(
        devices=devices, pcie=pcie, pcie_source=f"{source['document']} <{source['url']}>"
    )


@lru_cache(maxsize=1)
def load_peaks() -> PeaksTable:
    """The packaged ``dlready/data/device_peaks.json``."""
    text = read_data_text(DATA_FILE)
    return parse_peaks(json.loads(text))


def find_peaks(table: PeaksTable, device_name: str | None) -> DevicePeaks | None:
    """The entry whose names include ``device_name`` exactly (after normalising)."""
    if not device_name:
        return None
    wanted = normalise_name(device_name)
    for entry in table.devices:
        if any(normalise_name(name) == wanted for name in entry.names):
            return entry
    return None


def pcie_bandwidth_gbps(table: PeaksTable, generation: int, width: int) -> float | None:
    """Line rate per direction of a PCIe link, in GB/s; None for an unknown generation."""
    spec = table.pcie.get(generation)
    if spec is None or width <= 0:
        return None
    return spec.gt_per_s * spec.efficiency * width / 8.0


def match_gpu(info: dict[str, Any], gpus: tuple[GpuInfo, ...]) -> GpuInfo | None:
    """The NVML record of the torch device in ``info`` (by UUID, then PCI bus id, then alone)."""
    nvidia = [gpu for gpu in gpus if str(gpu.vendor) == "nvidia" and gpu.error is None]
    uuid = str(info.get("uuid") or "").lower().removeprefix("gpu-")
    if uuid:
        for gpu in nvidia:
            if gpu.uuid.ok and str(gpu.uuid.value).lower().removeprefix("gpu-") == uuid:
                return gpu
    if len(nvidia) == 1 and info.get("cuda_device_count") == 1:
        return nvidia[0]
    return None


def _unknown(unit: str, reason: str) -> Expectation:
    return Expectation(value=None, unit=unit, source=f"unknown: {reason}")


def expectation_for(
    check_name: str,
    info: dict[str, Any],
    gpu: GpuInfo | None,
    table: PeaksTable,
) -> Expectation | None:
    """The expected figure of one speed check on the device described by ``info``.

    Returns None for checks that are not speed measurements.
    """
    if not check_name.startswith("speed."):
        return None
    is_matmul = check_name.startswith("speed.matmul.")
    unit = "TFLOP/s" if is_matmul else "GB/s"
    device = str(info.get("device") or "")
    name = info.get("name")
    if not device.startswith("cuda"):
        kind = "a CPU" if device == "cpu" else "this device"
        return _unknown(
            unit,
            f"no dependable peak for {kind} (clocks, SIMD width and core count vary under load)",
        )
    if info.get("hip") or str(info.get("arch") or "").startswith("gfx"):
        return _unknown(unit, "no AMD figures in device_peaks.json")
    peaks = find_peaks(table, str(name) if name else None)
    if is_matmul:
        key = check_name.removeprefix("speed.matmul.")
        if peaks is not None and key in peaks.dense_tflops:
            value = peaks.dense_tflops[key]
            if value is None:
                return _unknown(unit, f"{peaks.id} has no {key} hardware path ({peaks.notes})")
            return Expectation(value, unit, f"{peaks.source_document} <{peaks.source_url}>")
        if key == "float32" and gpu is not None and gpu.cuda_cores.ok and gpu.max_sm_clock_mhz.ok:
            cores = float(gpu.cuda_cores.value or 0)
            clock_mhz = float(gpu.max_sm_clock_mhz.value or 0)
            return Expectation(
                cores * 2 * clock_mhz / 1e6,
                unit,
                f"NVML: {cores:.0f} CUDA cores x 2 x {clock_mhz:.0f} MHz max SM clock",
            )
        return _unknown(unit, f"no {key} figure for {name!r} in device_peaks.json")
    if check_name == "speed.memory_copy":
        if peaks is not None and peaks.memory_bandwidth_gbps is not None:
            return Expectation(
                peaks.memory_bandwidth_gbps, unit, f"{peaks.source_document} <{peaks.source_url}>"
            )
        if gpu is not None and gpu.max_memory_clock_mhz.ok and gpu.memory_bus_width_bits.ok:
            clock_mhz = float(gpu.max_memory_clock_mhz.value or 0)
            bits = int(gpu.memory_bus_width_bits.value or 0)
            return Expectation(
                2 * clock_mhz * 1e6 * bits / 8 / 1e9,
                unit,
                f"NVML: 2 x {clock_mhz:.0f} MHz max memory clock x {bits}-bit bus",
            )
        return _unknown(unit, f"no memory bandwidth for {name!r} (device_peaks.json or NVML)")
    # speed.h2d / speed.d2h
    if gpu is None or not (gpu.pcie_generation_max.ok and gpu.pcie_width_max.ok):
        return _unknown(unit, "the PCIe link of this GPU is unknown (NVML did not report it)")
    generation = int(gpu.pcie_generation_max.value or 0)
    width = int(gpu.pcie_width_max.value or 0)
    line_rate = pcie_bandwidth_gbps(table, generation, width)
    if line_rate is None:
        return _unknown(unit, f"PCIe generation {generation} is not in device_peaks.json")
    source = f"PCIe Gen{generation} x{width} line rate ({table.pcie_source})"
    current = gpu.pcie_generation_current.value, gpu.pcie_width_current.value
    if None not in current and current != (generation, width):
        source += f"; the link idled at Gen{current[0]} x{current[1]} when probed"
    return Expectation(line_rate, unit, source)


def measure_kind(check_name: str) -> str:
    """``matmul``, ``memory_copy`` or ``transfer``."""
    if check_name.startswith("speed.matmul."):
        return "matmul"
    if check_name == "speed.memory_copy":
        return "memory_copy"
    return "transfer"


def grade_speed(result: CheckResult, expectation: Expectation | None) -> CheckResult:
    """Attach the expectation and its percentage; warn or fail when far below it.

    Only a passing measurement is graded: a wrong result already failed, a skip stays a skip.
    """
    if expectation is None:
        return result
    measured = result.measured.get("value")
    if result.status is not CheckStatus.PASS or not isinstance(measured, (int, float)):
        return replace(result, expected=expectation)
    if expectation.value is None or expectation.value <= 0 or not math.isfinite(measured):
        return replace(result, expected=expectation)
    percent = 100.0 * measured / expectation.value
    graded = replace(expectation, percent=percent)
    kind = measure_kind(result.name)
    if percent < FAIL_BELOW_PERCENT:
        return replace(
            result,
            expected=graded,
            status=CheckStatus.FAIL,
            message=f"{result.message}: {percent:.0f} % of the expected {expectation.value:g} "
            f"{expectation.unit}, under {FAIL_BELOW_PERCENT:g} %",
        )
    if percent < WARN_BELOW_PERCENT[kind]:
        return replace(
            result,
            expected=graded,
            status=CheckStatus.WARN,
            message=f"{result.message}: only {percent:.0f} % of the expected "
            f"{expectation.value:g} {expectation.unit}",
        )
    return replace(result, expected=graded)
