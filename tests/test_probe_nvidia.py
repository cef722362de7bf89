"""The NVIDIA probe against the real recordings, the named GPU scenarios and NVML failures."""

from __future__ import annotations

import csv
import io
import sys
import time
import types
import xml.etree.ElementTree as ET
from typing import Any

import msgspec.structs
import pynvml
import pytest

import scenarios_gpu
from conftest import FIXTURES, load_capture
from dlready.model import GpuInfo, ReadState, Source, StackState
from dlready.probes import nvml_gateway
from dlready.probes.nvidia import (
    GpuHealthSample,
    cuda_version_text,
    decode_clock_event_reasons,
    probe_nvidia,
    sample_gpu_health,
)
from dlready.probes.nvml_gateway import (
    NvmlCallError,
    RealNvml,
    ReplayGapError,
    ReplayNvml,
)
from scenarios_gpu import (
    MIB,
    NVIDIA_SCENARIOS,
    NVML_FAILURES,
    HangingNvml,
    NvidiaCard,
    NvidiaScenario,
    NvmlFailureScenario,
    nvml_error,
)

GPU_MACHINES = ("h100-80gb-hbm3", "h200-141gb")


def replay_of(machine: str) -> ReplayNvml:
    return ReplayNvml.from_capture(load_capture(machine)["nvml"])


# --- the gateway's NVML constants are pynvml's ----------------------------------------------


def test_clock_event_reason_bits_are_pynvmls() -> None:
    for name, constant, bit in nvml_gateway.CLOCK_EVENT_REASONS:
        assert getattr(pynvml, constant) == bit, name


def test_every_pynvml_clock_event_reason_has_a_name() -> None:
    assert sum(bit for *_, bit in nvml_gateway.CLOCK_EVENT_REASONS) == (
        pynvml.nvmlClocksEventReasonAll
    )


@pytest.mark.parametrize(
    ("ours", "pynvml_name"),
    [
        ("NVML_TEMPERATURE_GPU", "NVML_TEMPERATURE_GPU"),
        ("NVML_TEMPERATURE_THRESHOLD_SHUTDOWN", "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN"),
        ("NVML_TEMPERATURE_THRESHOLD_SLOWDOWN", "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN"),
        ("NVML_TEMPERATURE_THRESHOLD_GPU_MAX", "NVML_TEMPERATURE_THRESHOLD_GPU_MAX"),
        ("NVML_CLOCK_GRAPHICS", "NVML_CLOCK_GRAPHICS"),
        ("NVML_CLOCK_SM", "NVML_CLOCK_SM"),
        ("NVML_CLOCK_MEM", "NVML_CLOCK_MEM"),
        ("NVML_FEATURE_ENABLED", "NVML_FEATURE_ENABLED"),
    ],
)
def test_enum_values_are_pynvmls(ours: str, pynvml_name: str) -> None:
    assert getattr(nvml_gateway, ours) == getattr(pynvml, pynvml_name)


@pytest.mark.parametrize(
    ("code", "name"), sorted(nvml_gateway.ARCHITECTURE_NAMES.items()), ids=lambda v: str(v)
)
def test_architecture_codes_are_pynvmls(code: int, name: str) -> None:
    constant = "NVML_DEVICE_ARCH_" + name.split()[0].upper()
    assert getattr(pynvml, constant) == code


# --- pure helpers -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bitmask", "names"),
    [
        pytest.param(0, (), id="none"),
        pytest.param(pynvml.nvmlClocksEventReasonGpuIdle, ("gpu_idle",), id="idle"),
        pytest.param(
            pynvml.nvmlClocksEventReasonSwPowerCap | pynvml.nvmlClocksEventReasonHwSlowdown,
            ("sw_power_cap", "hw_slowdown"),
            id="power-cap-and-hw-slowdown",
        ),
        pytest.param(
            pynvml.nvmlClocksEventReasonSwThermalSlowdown
            | pynvml.nvmlClocksEventReasonHwThermalSlowdown,
            ("sw_thermal_slowdown", "hw_thermal_slowdown"),
            id="thermal",
        ),
        pytest.param(
            pynvml.nvmlClocksEventReasonHwPowerBrakeSlowdown
            | pynvml.nvmlClocksEventReasonSyncBoost
            | pynvml.nvmlClocksEventReasonDisplayClockSetting
            | pynvml.nvmlClocksEventReasonApplicationsClocksSetting,
            (
                "applications_clocks_setting",
                "sync_boost",
                "hw_power_brake_slowdown",
                "display_clock_setting",
            ),
            id="others",
        ),
        pytest.param(
            pynvml.nvmlClocksThrottleReasonBoardLimit | pynvml.nvmlClocksEventReasonGpuIdle,
            ("gpu_idle", "unknown_0x200"),
            id="bit-without-an-event-name-kept",
        ),
    ],
)
def test_decode_clock_event_reasons(bitmask: int, names: tuple[str, ...]) -> None:
    assert decode_clock_event_reasons(bitmask) == names


@pytest.mark.parametrize(
    ("version", "text"),
    [(13000, "13.0"), (12030, "12.3"), (12090, "12.9"), (11010, "11.1"), (10020, "10.2")],
)
def test_cuda_version_text(version: int, text: str) -> None:
    assert cuda_version_text(version) == text


# --- recorded machines, field by field against nvidia-smi -------------------------------------


def query_csv_rows(machine: str) -> list[dict[str, str]]:
    """``nvidia-smi --query-gpu=... --format=csv`` rows, keyed by the header's field names."""
    text = (FIXTURES / machine / "query.csv").read_text()
    reader = csv.reader(io.StringIO(text), skipinitialspace=True)
    header = [cell.split(" [")[0] for cell in next(reader)]
    return [dict(zip(header, row, strict=True)) for row in reader if row]


def strip_unit(text: str) -> float:
    return float(text.split()[0])


@pytest.mark.parametrize("machine", GPU_MACHINES)
def test_replay_matches_nvidia_smi_query_field_by_field(machine: str) -> None:
    stack, gpus = probe_nvidia(replay_of(machine))
    rows = query_csv_rows(machine)
    assert len(gpus) == len(rows) == stack.device_count.value
    for gpu, row in zip(gpus, rows, strict=True):
        assert gpu.index == int(row["index"])
        assert gpu.name.value == row["name"]
        assert gpu.uuid.value == row["uuid"]
        assert gpu.memory_total_bytes.value == strip_unit(row["memory.total"]) * MIB
        assert stack.driver_version.value == row["driver_version"]
        assert gpu.power_limit_enforced_w.value == strip_unit(row["enforced.power.limit"])
        assert gpu.power_limit_enforced_w.value == strip_unit(row["power.limit"])
        assert gpu.power_limit_default_w.value == strip_unit(row["power.default_limit"])
        assert gpu.power_limit_min_w.value == strip_unit(row["power.min_limit"])
        assert gpu.power_limit_max_w.value == strip_unit(row["power.max_limit"])
        assert gpu.temperature_c.value == strip_unit(row["temperature.gpu"])
        assert gpu.max_sm_clock_mhz.value == strip_unit(row["clocks.max.sm"])
        assert gpu.max_memory_clock_mhz.value == strip_unit(row["clocks.max.memory"])
        assert gpu.compute_capability.value == row["compute_cap"]
        assert gpu.pcie_generation_max.value == int(row["pcie.link.gen.max"])
        assert gpu.pcie_width_max.value == int(row["pcie.link.width.max"])
        assert gpu.mig_mode_enabled.value == (row["mig.mode.current"] == "Enabled")
        assert gpu.persistence_mode_enabled.value == (row["persistence_mode"] == "Enabled")


@pytest.mark.parametrize("machine", GPU_MACHINES)
def test_replay_matches_nvidia_smi_xml(machine: str) -> None:
    """Fields query.csv lacks, against ``nvidia-smi -q -x`` recorded on the same machine."""
    root = ET.parse(FIXTURES / machine / "nvidia-smi-q.xml").getroot()
    stack, (gpu,) = probe_nvidia(replay_of(machine))
    node = root.find("gpu")
    assert node is not None

    def text(path: str) -> str:
        found = root.find(path) if path.startswith("./") else node.find(path)
        assert found is not None, path
        assert found.text is not None, path
        return found.text

    assert stack.cuda_driver_version.value == text("./cuda_version")
    assert gpu.pci_bus_id.value == node.get("id")
    assert gpu.architecture.value == text("product_architecture")
    assert gpu.ecc_mode_enabled.value == (text("ecc_mode/current_ecc") == "Enabled")
    assert gpu.pcie_generation_current.value == int(
        text("pci/pci_gpu_link_info/pcie_gen/current_link_gen")
    )
    assert gpu.pcie_width_current.value == int(
        text("pci/pci_gpu_link_info/link_widths/current_link_width").rstrip("x")
    )
    # Driver 580's nvidia-smi prints thresholds relative to the "T.Limit" temperature (the
    # headroom to the maximum operating temperature): threshold = temp + tlimit - relative.
    temperature = strip_unit(text("temperature/gpu_temp"))
    headroom = strip_unit(text("temperature/gpu_temp_tlimit"))
    slowdown = (
        temperature + headroom - strip_unit(text("temperature/gpu_temp_slow_tlimit_threshold"))
    )
    shutdown = (
        temperature + headroom - strip_unit(text("temperature/gpu_temp_max_tlimit_threshold"))
    )
    assert gpu.temperature_slowdown_c.value == slowdown
    assert gpu.temperature_shutdown_c.value == shutdown
    # (Power draw is a moment's reading and differs between the two recordings.)
    assert gpu.memory_free_bytes.value == pytest.approx(
        strip_unit(text("fb_memory_usage/free")) * MIB, abs=MIB
    )
    active = {
        child.tag.removeprefix("clocks_event_reason_")
        for child in node.find("clocks_event_reasons") or []
        if child.text == "Active"
    }
    assert set(gpu.clock_event_reasons.value or ()) == active


@pytest.mark.parametrize("machine", GPU_MACHINES)
def test_recorded_machine_reads_everything_but_the_fan(machine: str) -> None:
    stack, (gpu,) = probe_nvidia(replay_of(machine))
    assert stack.state is StackState.OK
    assert stack.reason is None
    assert gpu.error is None
    not_read = {
        name: reading.state
        for name, reading in msgspec.structs.asdict(gpu).items()
        if hasattr(reading, "state") and reading.state is not ReadState.READ
    }
    # The H100/H200 boards are passively cooled: NVML has no fan to report.
    assert not_read == {"fan_speed_percent": ReadState.UNSUPPORTED}
    assert "NVMLError_NotSupported" in (gpu.fan_speed_percent.reason or "")


def test_h100_derived_values() -> None:
    stack, (gpu,) = probe_nvidia(replay_of("h100-80gb-hbm3"))
    assert stack.cuda_driver_version.value == "13.0"
    assert stack.library_version.value == "13.580.159.04"
    assert gpu.architecture.value == "Hopper"
    assert gpu.cuda_cores.value == 16896
    assert gpu.memory_bus_width_bits.value == 5120
    # 2 x 16896 cores x 1980 MHz = 66.9 TFLOPS (NVIDIA's H100 SXM datasheet: 67 TFLOPS FP32).
    assert gpu.fp32_peak_tflops.value == pytest.approx(66.91, abs=0.01)
    assert gpu.fp32_peak_tflops.source is Source.DERIVED
    assert gpu.power_draw_w.value == pytest.approx(73.398)
    assert gpu.clock_event_reasons.value == ("gpu_idle",)
    assert gpu.ecc_mode_enabled.value is True


def test_probe_calls_what_real_nvml_was_asked_and_shuts_down() -> None:
    replay = replay_of("h100-80gb-hbm3")
    probe_nvidia(replay)
    assert replay.calls[0] == ("nvmlInit",)
    assert replay.calls[-1] == ("nvmlShutdown",)
    assert replay.shutdown_count == 1
    called = {call[0] for call in replay.calls}
    assert "nvmlDeviceGetCurrentClocksThrottleReasons" not in called  # only as a fallback
    assert "nvmlDeviceGetHandleByIndex" in called


# --- named GPU scenarios (spec-sheet values, see scenarios_gpu.py) ----------------------------


def expected_gpu_values(card: NvidiaCard) -> dict[str, Any]:
    """What the probe must report for a card, from its documented spec values."""
    total = card.memory_total_mib * MIB
    low, high = card.power_limit_range_w or (None, None)
    return {
        "name": card.nvml_name,
        "architecture": card.architecture,
        "memory_total_bytes": total,
        "memory_free_bytes": total - card.memory_used_mib * MIB,
        "compute_capability": "{}.{}".format(*card.compute_capability),
        "cuda_cores": card.cuda_cores,
        "max_sm_clock_mhz": card.max_sm_clock_mhz,
        "max_memory_clock_mhz": card.max_memory_clock_mhz,
        "memory_bus_width_bits": card.memory_bus_width_bits,
        "fp32_peak_tflops": round(2 * card.cuda_cores * card.max_sm_clock_mhz / 1e6, 2),
        "power_limit_enforced_w": card.power_limit_w,
        "power_limit_default_w": card.power_limit_w,
        "power_limit_min_w": low,
        "power_limit_max_w": high,
        "temperature_slowdown_c": card.temperature_slowdown_c,
        "temperature_shutdown_c": card.temperature_shutdown_c,
        "fan_speed_percent": card.fan_speed_percent,
        "pcie_generation_max": card.pcie_generation,
        "pcie_width_max": card.pcie_width,
        "persistence_mode_enabled": card.persistence_enabled,
        "mig_mode_enabled": None,
        "ecc_mode_enabled": None,
    }


@pytest.mark.parametrize("scenario", NVIDIA_SCENARIOS, ids=lambda s: s.id)
def test_named_nvidia_scenarios(scenario: NvidiaScenario) -> None:
    stack, gpus = probe_nvidia(scenario.replay())
    assert stack.state is StackState.OK
    assert stack.device_count.value == len(scenario.cards)
    assert [gpu.index for gpu in gpus] == list(range(len(scenario.cards)))
    assert len({gpu.uuid.value for gpu in gpus}) == len(gpus)
    for gpu, card, bus_id in zip(gpus, scenario.cards, scenario.bus_ids, strict=True):
        assert gpu.error is None
        assert gpu.pci_bus_id.value == bus_id
        actual = {name: getattr(gpu, name).value for name in expected_gpu_values(card)}
        assert actual == expected_gpu_values(card)
        for name, value in expected_gpu_values(card).items():
            if value is None:  # NotSupported on this card: unsupported with a reason
                assert getattr(gpu, name).state is ReadState.UNSUPPORTED, name
                assert getattr(gpu, name).reason, name


def test_gtx_1060_laptop_reports_its_driver() -> None:
    stack, (gpu,) = probe_nvidia(scenarios_gpu.nvidia_scenario("gtx-1060-laptop").replay())
    assert stack.driver_version.value == "545.23.06"
    assert stack.cuda_driver_version.value == "12.3"
    assert gpu.power_draw_w.value == 3.0
    assert gpu.temperature_c.value == 46.0
    # 2 x 1280 x 1341 MHz = 3.43 TFLOPS, TechPowerUp's FP32 figure for the GTX 1060 Max-Q.
    assert gpu.fp32_peak_tflops.value == pytest.approx(3.43, abs=0.01)


def test_x4_slot_is_visible_in_the_link_width() -> None:
    _, (gpu,) = probe_nvidia(scenarios_gpu.nvidia_scenario("rtx-2080-ti-in-x4-slot").replay())
    assert (gpu.pcie_width_current.value, gpu.pcie_width_max.value) == (4, 16)


def test_old_driver_without_core_count_or_event_reasons() -> None:
    replay = scenarios_gpu.old_driver_2080_ti()
    stack, (gpu,) = probe_nvidia(replay)
    assert stack.cuda_driver_version.value == "11.1"
    assert gpu.name.value == "GeForce RTX 2080 Ti"
    assert gpu.cuda_cores.state is ReadState.UNSUPPORTED
    assert "FunctionNotFound" in (gpu.cuda_cores.reason or "")
    assert gpu.fp32_peak_tflops.state is ReadState.UNSUPPORTED
    assert "CUDA core count" in (gpu.fp32_peak_tflops.reason or "")
    # The older name of the same call still answers.
    assert gpu.clock_event_reasons.value == ("gpu_idle",)
    assert ("nvmlDeviceGetCurrentClocksThrottleReasons", 0) in replay.calls


# --- NVML failures ----------------------------------------------------------------------------


@pytest.mark.parametrize("scenario", NVML_FAILURES, ids=lambda s: s.id)
def test_nvml_failures(scenario: NvmlFailureScenario) -> None:
    replay = scenario.backend()
    stack, gpus = probe_nvidia(replay)
    assert stack.state == scenario.expected_state
    assert scenario.reason_contains in (stack.reason or "")
    if scenario.hint_contains:
        assert scenario.hint_contains in (stack.hint or "")
    assert len(gpus) == scenario.gpu_count
    assert tuple(gpu.index for gpu in gpus if gpu.error) == scenario.lost_gpu_indices
    for gpu in gpus:
        if gpu.error:
            assert scenario.gpu_error_contains in gpu.error
        else:  # the healthy GPUs are fully reported
            assert gpu.name.ok
            assert gpu.memory_total_bytes.ok
            assert gpu.power_limit_enforced_w.ok
    init_failed = replay.calls == [("nvmlInit",)]
    assert replay.shutdown_count == (0 if init_failed else 1)


def test_lost_gpu_midway_keeps_what_was_read_and_skips_the_rest() -> None:
    (scenario,) = [s for s in NVML_FAILURES if s.id == "gpu-lost-midway"]
    _, gpus = probe_nvidia(scenario.backend())
    lost = gpus[3]
    assert lost.name.value == "NVIDIA GeForce RTX 4090"
    assert lost.power_draw_w.state is ReadState.FAILED
    assert "NVMLError_GpuIsLost" in (lost.power_draw_w.reason or "")
    assert lost.temperature_c.state is ReadState.FAILED
    assert "skipped" in (lost.temperature_c.reason or "")


def test_gpu_lost_on_handle_has_no_readings() -> None:
    (scenario,) = [s for s in NVML_FAILURES if s.id == "gpu-lost-handle"]
    _, gpus = probe_nvidia(scenario.backend())
    assert isinstance(gpus[2], GpuInfo)
    assert "NVMLError_GpuIsLost" in (gpus[2].error or "")
    assert gpus[2].name.ok is False


def test_hung_nvml_times_out() -> None:
    backend = HangingNvml()
    try:
        started = time.perf_counter()
        stack, gpus = probe_nvidia(backend, timeout_s=0.2)
        elapsed_s = time.perf_counter() - started
    finally:
        backend.release()
    assert stack.state is StackState.TIMED_OUT
    assert "0.2 s" in (stack.reason or "")
    assert gpus == ()
    assert elapsed_s < 2.0  # generous: the point is "returns", not a speed target
    assert "nvmlShutdown" not in backend.calls


def test_not_supported_and_failed_fields_keep_their_reason() -> None:
    replay = scenarios_gpu.h100_replay().with_gpu_overrides(
        {
            "nvmlDeviceGetPowerUsage": nvml_error("NOT_SUPPORTED"),
            "temp_threshold_slowdown": nvml_error("NO_PERMISSION"),
            "nvmlDeviceGetMemoryInfo": nvml_error("INSUFFICIENT_POWER"),
        }
    )
    stack, (gpu,) = probe_nvidia(replay)
    assert stack.state is StackState.OK
    assert gpu.error is None
    assert gpu.power_draw_w.state is ReadState.UNSUPPORTED
    assert "nvmlDeviceGetPowerUsage" in (gpu.power_draw_w.reason or "")
    assert gpu.temperature_slowdown_c.state is ReadState.FAILED
    assert "NVMLError_NoPermission" in (gpu.temperature_slowdown_c.reason or "")
    for reading in (gpu.memory_total_bytes, gpu.memory_free_bytes):
        assert reading.state is ReadState.FAILED
        assert "NVMLError_InsufficientPower" in (reading.reason or "")
    assert gpu.temperature_shutdown_c.value == 95.0


def test_malformed_value_is_a_failed_reading_not_a_crash() -> None:
    replay = scenarios_gpu.h100_replay().with_gpu_overrides(
        {"nvmlDeviceGetCudaComputeCapability": [9]}
    )
    _, (gpu,) = probe_nvidia(replay)
    assert gpu.compute_capability.state is ReadState.FAILED
    assert gpu.name.ok


def test_no_gpu_with_driver_loaded() -> None:
    stack, gpus = probe_nvidia(scenarios_gpu.h100_replay().with_gpu_count(0))
    assert stack.state is StackState.OK
    assert stack.device_count.value == 0
    assert "no GPU" in (stack.reason or "")
    assert gpus == ()


def test_probe_bug_degrades_to_failed_stack() -> None:
    """A call the replay cannot answer raises inside the worker: reported, not raised."""

    class Broken(ReplayNvml):
        def call(self, function_name: str, *args: Any) -> Any:
            if function_name == "nvmlDeviceGetName":
                raise ReplayGapError("not recorded")
            return super().call(function_name, *args)

    stack, gpus = probe_nvidia(Broken(load_capture("h100-80gb-hbm3")["nvml"]))
    assert stack.state is StackState.FAILED
    assert "internal error" in (stack.reason or "")
    assert gpus == ()


# --- the replay itself --------------------------------------------------------------------------


def test_replay_refuses_calls_the_recording_cannot_answer() -> None:
    replay = scenarios_gpu.h100_replay()
    replay.init()
    with pytest.raises(ReplayGapError):
        replay.call("nvmlDeviceGetClockInfo", 0, nvml_gateway.NVML_CLOCK_SM)
    with pytest.raises(ReplayGapError):
        replay.call("nvmlDeviceGetTemperature", 0)  # the sensor argument is required
    with pytest.raises(ReplayGapError):
        replay.call("nvmlDeviceGetMaxClockInfo", 0, 99)
    with pytest.raises(NvmlCallError) as raised:
        replay.call("nvmlDeviceGetName", 5)
    assert raised.value.error_class == "NVMLError_InvalidArgument"


def test_replay_requires_init() -> None:
    with pytest.raises(NvmlCallError) as raised:
        scenarios_gpu.h100_replay().call("nvmlDeviceGetCount")
    assert raised.value.error_class == "NVMLError_Uninitialized"


def test_replay_maps_capture_keys_to_calls_with_enum_arguments() -> None:
    replay = scenarios_gpu.h100_replay()
    replay.init()
    assert replay.call("nvmlDeviceGetTemperatureThreshold", 0, 1) == 89  # slowdown
    assert replay.call("nvmlDeviceGetTemperatureThreshold", 0, 0) == 95  # shutdown
    assert replay.call("nvmlDeviceGetTemperatureThreshold", 0, 3) == 87  # GPU max
    assert replay.call("nvmlDeviceGetMaxClockInfo", 0, 2) == 2619  # memory
    assert replay.call("nvmlDeviceGetMaxClockInfo", 0, 0) == 1980  # graphics
    assert replay.call("nvmlSystemGetCudaDriverVersion") == 13000


# --- the real backend (on this machine, whatever it has) ---------------------------------------


def test_real_nvml_probe_never_raises_and_names_a_state() -> None:
    stack, gpus = probe_nvidia(RealNvml(), timeout_s=10.0)
    assert stack.state in set(StackState)
    if stack.state is StackState.NOT_INSTALLED:
        assert gpus == ()
        assert "NVMLError_LibraryNotFound" in (stack.reason or "")
    if stack.state is StackState.OK:
        assert len(gpus) == stack.device_count.value


def test_real_nvml_without_pynvml_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    stack, gpus = probe_nvidia(RealNvml())
    assert stack.state is StackState.FAILED
    assert "pynvml" in (stack.reason or "")
    assert "nvidia-ml-py" in (stack.hint or "")
    assert gpus == ()


def test_real_nvml_call_before_init_is_an_nvml_error() -> None:
    with pytest.raises(NvmlCallError) as raised:
        RealNvml().call("nvmlDeviceGetCount")
    assert raised.value.error_class == "NVMLError_Uninitialized"


# --- smoke --burn sampler -----------------------------------------------------------------------


def test_sample_gpu_health_on_the_h100() -> None:
    # Current SM clock from `nvidia-smi -q -x` on the same machine (clocks/sm_clock 345 MHz).
    root = ET.parse(FIXTURES / "h100-80gb-hbm3" / "nvidia-smi-q.xml").getroot()
    sm_clock_mhz = strip_unit(root.findtext("gpu/clocks/sm_clock") or "")
    replay = scenarios_gpu.h100_replay().with_gpu_overrides({"clock_sm": int(sm_clock_mhz)})
    replay.init()
    sample = sample_gpu_health(replay, 0)
    assert sample == GpuHealthSample(
        temperature_c=37.0,
        power_draw_w=73.398,
        sm_clock_mhz=345.0,
        clock_event_reasons=("gpu_idle",),
    )


def test_sample_gpu_health_unreadable_fields_are_none() -> None:
    replay = scenarios_gpu.h100_replay().with_gpu_overrides(
        {
            "clock_sm": nvml_error("NOT_SUPPORTED"),
            "nvmlDeviceGetPowerUsage": nvml_error("GPU_IS_LOST"),
            "nvmlDeviceGetTemperature": nvml_error("UNKNOWN"),
            "nvmlDeviceGetCurrentClocksEventReasons": nvml_error("NOT_SUPPORTED"),
        }
    )
    replay.init()
    assert sample_gpu_health(replay, 0) == GpuHealthSample(None, None, None, None)


# --- RealNvml over a pynvml whose answers are the H100 recording --------------------------------


def fake_pynvml_from_capture(capture: dict[str, Any]) -> types.ModuleType:
    """A stand-in ``pynvml`` module: the real package's types, the recorded answers.

    Structures come back as pynvml's ctypes structures and pairs as tuples, as the real
    package returns them, so this exercises RealNvml's conversion to plain values.
    """
    codes = {cls.__name__: code for code, cls in pynvml.NVMLError._valClassMapping.items()}
    module = types.ModuleType("pynvml")
    module.NVMLError = pynvml.NVMLError  # type: ignore[attr-defined]

    def native(value: Any) -> Any:
        if isinstance(value, dict) and "error" in value:
            raise pynvml.NVMLError(codes[value["error"]])
        if isinstance(value, dict) and "busId" in value:
            pci = pynvml.nvmlPciInfo_t()
            for key, item in value.items():
                setattr(pci, key, item.encode() if isinstance(item, str) else item)
            return pci
        if isinstance(value, dict) and "total" in value:
            return pynvml.c_nvmlMemory_t(**value)
        return tuple(value) if isinstance(value, list) else value

    system = {
        "nvmlSystemGetDriverVersion": capture["driver"],
        "nvmlSystemGetCudaDriverVersion": capture["cuda_driver"],
        "nvmlSystemGetNVMLVersion": capture["nvml_version"],
        "nvmlDeviceGetCount": capture["count"],
    }
    for name, value in system.items():
        setattr(module, name, lambda value=value: native(value))
    module.nvmlInit = lambda: None  # type: ignore[attr-defined]
    module.nvmlShutdown = lambda: None  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda index: ("handle", index)  # type: ignore[attr-defined]
    by_call: dict[tuple[str, tuple[Any, ...]], str] = {
        call: key for key, call in nvml_gateway.CAPTURE_CALLS_WITH_ARGS.items()
    }
    names = set(capture["gpus"][0]) | {f for f, _ in by_call}
    for name in names - set(nvml_gateway.CAPTURE_CALLS_WITH_ARGS) | {"nvmlDeviceGetTemperature"}:

        def device_call(handle: tuple[str, int], *args: Any, name: str = name) -> Any:
            gpu = capture["gpus"][handle[1]]
            return native(gpu[by_call.get((name, args), name)])

        setattr(module, name, device_call)
    return module


def test_real_backend_gives_the_same_readings_as_the_replay(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    capture = load_capture("h100-80gb-hbm3")["nvml"]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml_from_capture(capture))
    real = probe_nvidia(RealNvml())
    monkeypatch.undo()
    assert real == probe_nvidia(ReplayNvml.from_capture(capture))
    assert real[1][0].pci_bus_id.value == "00000000:00:06.0"


def test_real_backend_maps_errors_and_missing_functions(monkeypatch: pytest.MonkeyPatch) -> None:
    capture = load_capture("h100-80gb-hbm3")["nvml"]
    monkeypatch.setitem(sys.modules, "pynvml", fake_pynvml_from_capture(capture))
    backend = RealNvml()
    backend.init()
    with pytest.raises(NvmlCallError) as raised:
        backend.call("nvmlDeviceGetFanSpeed", 0)
    assert (raised.value.error_class, raised.value.message) == (
        "NVMLError_NotSupported",
        "Not Supported",
    )
    with pytest.raises(NvmlCallError) as raised:
        backend.call("nvmlDeviceGetSomethingNew", 0)
    assert raised.value.error_class == "NVMLError_FunctionNotFound"
    assert (
        backend.call("nvmlDeviceGetMemoryInfo", 0) == capture["gpus"][0]["nvmlDeviceGetMemoryInfo"]
    )
    assert backend.call("nvmlDeviceGetCudaComputeCapability", 0) == [9, 0]
    backend.shutdown()


def test_sample_gpu_health_on_an_old_driver_uses_the_throttle_reasons() -> None:
    # Under load the card runs at (at least) its rated boost clock.
    boost_mhz = scenarios_gpu.RTX_2080_TI.max_sm_clock_mhz
    replay = scenarios_gpu.old_driver_2080_ti().with_gpu_overrides({"clock_sm": boost_mhz})
    replay.init()
    sample = sample_gpu_health(replay, 0)
    assert sample.clock_event_reasons == ("gpu_idle",)
    assert sample.power_draw_w == 57.0
    assert sample.sm_clock_mhz == 1545.0
    assert ("nvmlDeviceGetCurrentClocksThrottleReasons", 0) in replay.calls
