"""The table of plausible ranges: what hardware can produce is judged, nothing else."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from conftest import RECORDED_MACHINES
from dlready.model import CpuInfo, GpuInfo, MemoryInfo, PowerSupplyInfo, Reading, ReadState, Source
from dlready.plausibility import (
    CPU_RANGES,
    GPU_RANGES,
    MEMORY_RANGES,
    POWER_SUPPLY_RANGES,
    PlausibleRange,
    screen,
    screen_compute_capability,
    screen_gpu,
    screen_snapshot,
)
from machines import replay_snapshot


@pytest.mark.parametrize(
    ("ranges", "model"),
    [
        (GPU_RANGES, GpuInfo),
        (CPU_RANGES, CpuInfo),
        (MEMORY_RANGES, MemoryInfo),
        (POWER_SUPPLY_RANGES, PowerSupplyInfo),
    ],
)
def test_every_range_names_a_numeric_reading_and_says_why(ranges: Any, model: Any) -> None:
    fields = {f.name: f for f in msgspec.structs.fields(model)}
    for name, plausible in ranges.items():
        assert name in fields, name
        assert "Reading[int]" in str(fields[name].type) or "Reading[float]" in str(
            fields[name].type
        ), name
        assert plausible.low < plausible.high
        assert len(plausible.why) > 20, name


@pytest.mark.parametrize("machine", RECORDED_MACHINES)
def test_the_recorded_machines_are_plausible(machine: str) -> None:
    snapshot = replay_snapshot(machine)
    assert screen_snapshot(snapshot) is snapshot


_TEMPERATURE = GPU_RANGES["temperature_c"]


@pytest.mark.parametrize(
    ("value", "plausible"),
    [
        (37.0, True),
        (-40, True),
        (150, True),
        (-300, False),  # below absolute zero
        (2**32 - 5, False),  # NVML's sentinel seen on a real driver
        (1e308, False),
        (float("inf"), False),
        (float("nan"), False),
    ],
)
def test_screen_temperature(value: float, plausible: bool) -> None:
    reading = Reading.read(value, Source.NVML)
    screened = screen(reading, _TEMPERATURE)
    assert (screened is reading) is plausible
    if not plausible:
        assert screened.state is ReadState.FAILED
        assert screened.source is Source.NVML
        assert (screened.reason or "").startswith("implausible reading (")


def test_the_reason_shows_the_value_with_its_unit() -> None:
    reading = screen(Reading.read(2**32 - 5, Source.NVML), _TEMPERATURE)
    assert reading.reason is not None
    assert reading.reason.startswith("implausible reading (4,294,967,291 °C): ")
    huge = screen(Reading.read(2**64 - 1, Source.NVML), GPU_RANGES["memory_total_bytes"])
    assert "implausible reading (about 10^19 bytes)" in (huge.reason or "")


def test_readings_not_taken_are_left_alone() -> None:
    failed: Reading[float] = Reading.failed(Source.NVML, "NVMLError_Unknown")
    empty: Reading[int] = Reading.read(None, Source.SYSFS)
    assert screen(failed, _TEMPERATURE) is failed
    assert screen(empty, PlausibleRange(0, 1, "", "why")) is empty


@pytest.mark.parametrize(
    ("capability", "plausible"),
    [("9.0", True), ("12.1", True), ("100.100", False), ("4294967295.4294967295", False)],
)
def test_screen_compute_capability(capability: str, plausible: bool) -> None:
    reading = Reading.read(capability, Source.NVML)
    assert (screen_compute_capability(reading) is reading) is plausible


def test_a_derived_peak_goes_with_its_implausible_inputs() -> None:
    gpu = replay_snapshot("h100-80gb-hbm3").gpus[0]
    absurd = msgspec.structs.replace(gpu, cuda_cores=Reading.read(2**32 - 1, Source.NVML))
    screened = screen_gpu(absurd)
    assert screened.cuda_cores.state is ReadState.FAILED
    assert screened.fp32_peak_tflops.state is ReadState.FAILED
    assert "derived from an implausible reading" in (screened.fp32_peak_tflops.reason or "")


@pytest.mark.parametrize(
    ("ranges", "model"),
    [
        (GPU_RANGES, GpuInfo),
        (CPU_RANGES, CpuInfo),
        (MEMORY_RANGES, MemoryInfo),
        (POWER_SUPPLY_RANGES, PowerSupplyInfo),
    ],
)
def test_every_numeric_reading_has_a_range(ranges: Any, model: Any) -> None:
    # A new numeric field must say what hardware can produce, or it would be judged unscreened.
    numeric = {
        f.name for f in msgspec.structs.fields(model) if f.type in (Reading[int], Reading[float])
    }
    assert numeric == set(ranges)


def test_a_burn_sample_drops_sentinels() -> None:
    from dlready.probes.nvidia import sample_gpu_health
    from scenarios_gpu import h100_replay

    # 345 MHz: the H100's current SM clock in its `nvidia-smi -q -x` recording.
    replay = h100_replay().with_gpu_overrides(
        {
            "nvmlDeviceGetTemperature": 2**32 - 5,
            "nvmlDeviceGetPowerUsage": 2**32 - 1,
            "clock_sm": 345,
        }
    )
    replay.init()
    sample = sample_gpu_health(replay, 0)
    assert sample.temperature_c is None
    assert sample.power_draw_w is None
    assert sample.sm_clock_mhz == 345.0
