"""``--burn``: the cooling verdict, the sampler thread, NVML access, and the runner's burn path.

Samples are built from the recorded H100: its idle reading (37 °C, 73.4 W, clock-event reason
``gpu_idle``), its enforced power limit (700 W), its max SM clock (1980 MHz) and its slowdown
threshold (89 °C). Loaded readings stay within those recorded limits.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import pytest

from conftest import load_capture
from dlready.probes.nvidia import GpuHealthSample
from dlready.probes.nvml_gateway import ReplayNvml, recorded_error
from dlready.smoke import burn
from dlready.smoke.burn import (
    BackgroundSampler,
    NvmlSampling,
    TimedSample,
    burn_verdict,
    open_nvml_sampling,
    throughput_drop,
)
from dlready.smoke.report import CheckStatus
from dlready.smoke.runner import Runner, SmokeOptions

H100 = load_capture("h100-80gb-hbm3")["nvml"]
H100_GPU = H100["gpus"][0]
IDLE_C = float(H100_GPU["nvmlDeviceGetTemperature"])  # 37
IDLE_W = H100_GPU["nvmlDeviceGetPowerUsage"] / 1000  # 73.398
LIMIT_W = H100_GPU["nvmlDeviceGetEnforcedPowerLimit"] / 1000  # 700
MAX_SM_MHZ = float(H100_GPU["max_clock_sm"])  # 1980
SLOWDOWN_C = float(H100_GPU["temp_threshold_slowdown"])  # 89
UUID = H100_GPU["nvmlDeviceGetUUID"]


def _samples(
    temperatures: list[float], reasons: tuple[str, ...] = (), power_w: float = LIMIT_W
) -> list[TimedSample]:
    return [
        TimedSample(
            t_s=float(i),
            temperature_c=t,
            power_draw_w=IDLE_W if i == 0 else power_w,
            sm_clock_mhz=MAX_SM_MHZ,
            clock_event_reasons=("gpu_idle",) if i == 0 else reasons,
        )
        for i, t in enumerate(temperatures)
    ]


STEADY = [{"t_s": float(i), "tflops": 790.0} for i in range(9)]
FADING = [{"t_s": float(i), "tflops": 790.0 - 40 * i} for i in range(9)]


@pytest.mark.parametrize(
    ("samples", "intervals", "status", "says"),
    [
        pytest.param(
            _samples([IDLE_C, 55, 62, 66]), STEADY, CheckStatus.PASS, "cooling holds", id="cool"
        ),
        pytest.param(
            _samples([IDLE_C, 60, 70, 74], ("sw_power_cap",)),
            STEADY,
            CheckStatus.PASS,
            "power cap",
            id="power-capped",
        ),
        pytest.param(
            _samples([IDLE_C, 75, 82, 86]), STEADY, CheckStatus.WARN, "within 5", id="hot"
        ),
        pytest.param(
            _samples([IDLE_C, 80, 87, 88], ("sw_thermal_slowdown",)),
            STEADY,
            CheckStatus.FAIL,
            "thermal slowdown",
            id="thermal",
        ),
        pytest.param(
            _samples([IDLE_C, 60, 65, 66], ("hw_power_brake_slowdown",)),
            STEADY,
            CheckStatus.FAIL,
            "power supply",
            id="power-brake",
        ),
        pytest.param(
            _samples([IDLE_C, 60, 65, 66], ("hw_slowdown",)),
            STEADY,
            CheckStatus.FAIL,
            "hardware slowdown",
            id="hw-slowdown",
        ),
        pytest.param(
            _samples([IDLE_C, 60, 65, 66]), FADING, CheckStatus.WARN, "throughput fell", id="fading"
        ),
        pytest.param([], STEADY, CheckStatus.WARN, "no samples", id="no-samples"),
    ],
)
def test_burn_verdict(
    samples: list[TimedSample], intervals: list[dict[str, Any]], status: CheckStatus, says: str
) -> None:
    verdict = burn_verdict(samples, intervals, SLOWDOWN_C)
    assert verdict.status is status
    assert says in verdict.message


def test_verdict_summary_keeps_the_figures() -> None:
    verdict = burn_verdict(_samples([IDLE_C, 60, 66], ("sw_power_cap",)), STEADY, SLOWDOWN_C)
    summary = verdict.summary
    assert summary["max_temperature_c"] == 66
    assert summary["max_power_draw_w"] == LIMIT_W
    assert summary["clock_event_reasons_seen"] == ["gpu_idle", "sw_power_cap"]
    assert summary["slowdown_temperature_c"] == SLOWDOWN_C


@pytest.mark.parametrize(
    ("rates", "drop"),
    [
        pytest.param([790.0] * 6, 0.0, id="steady"),
        pytest.param([800.0, 800.0, 700.0, 700.0, 600.0, 600.0], 0.25, id="falling"),
        pytest.param([800.0, 700.0], None, id="too-short"),
    ],
)
def test_throughput_drop(rates: list[float], drop: float | None) -> None:
    result = throughput_drop([{"tflops": rate} for rate in rates])
    assert result == (pytest.approx(drop) if drop is not None else None)


# --- the sampler thread -------------------------------------------------------------------------


def test_sampler_collects_samples_and_errors() -> None:
    calls = iter(range(1000))

    def sample() -> GpuHealthSample:
        if next(calls) == 1:
            raise RuntimeError("NVMLError_Unknown")
        return GpuHealthSample(IDLE_C, IDLE_W, MAX_SM_MHZ, ("gpu_idle",))

    sampler = BackgroundSampler(sample, interval_s=0.01)
    sampler.start()
    threading.Event().wait(0.2)
    samples = sampler.stop()
    assert len(samples) >= 3
    assert samples[0].temperature_c == IDLE_C
    assert samples[0].clock_event_reasons == ("gpu_idle",)
    assert sampler.errors == ["RuntimeError: NVMLError_Unknown"]
    assert not sampler.stalled


def test_a_hung_sampler_does_not_hang_the_report() -> None:
    release = threading.Event()

    def sample() -> GpuHealthSample:
        release.wait(30)
        return GpuHealthSample(None, None, None, None)

    sampler = BackgroundSampler(sample, interval_s=0.01, join_timeout_s=0.2)
    sampler.start()
    assert sampler.stop() == []
    assert sampler.stalled
    release.set()


# --- NVML access --------------------------------------------------------------------------------


def test_no_nvml_is_a_reason_not_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    failing = ReplayNvml.failing_init("NVMLError_LibraryNotFound", "NVML Shared Library Not Found")
    monkeypatch.setattr(burn, "RealNvml", lambda: failing)
    reason = open_nvml_sampling("b6012499-6918-735e-0cf1-3817ce68e703", 0)
    assert isinstance(reason, str)
    assert "NVML Shared Library Not Found" in reason


def test_nvml_sampling_of_the_recorded_h100(monkeypatch: pytest.MonkeyPatch) -> None:
    replay = ReplayNvml.from_capture(H100).with_gpu_overrides({"clock_sm": 1755})
    monkeypatch.setattr(burn, "RealNvml", lambda: replay)
    sampling = open_nvml_sampling(UUID.removeprefix("GPU-"), 0, isolate=False)
    assert isinstance(sampling, NvmlSampling)
    sample = sampling.sampler()
    sampling.close()
    assert sample.temperature_c == IDLE_C
    assert sample.power_draw_w == pytest.approx(IDLE_W)
    assert sample.sm_clock_mhz == 1755
    assert sample.clock_event_reasons == ("gpu_idle",)
    assert sampling.slowdown_temperature_c == SLOWDOWN_C
    assert replay.shutdown_count == 1


def test_nvml_sampling_in_a_child_process_gives_the_same_readings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replay = ReplayNvml.from_capture(H100).with_gpu_overrides({"clock_sm": 1755})
    monkeypatch.setattr(burn, "RealNvml", lambda: replay)
    isolated = open_nvml_sampling(UUID.removeprefix("GPU-"), 0)
    in_process = open_nvml_sampling(UUID.removeprefix("GPU-"), 0, isolate=False)
    assert isinstance(isolated, NvmlSampling)
    assert isinstance(in_process, NvmlSampling)
    try:
        assert isolated.sampler() == in_process.sampler()
        assert isolated.slowdown_temperature_c == in_process.slowdown_temperature_c == SLOWDOWN_C
    finally:
        isolated.close()
        in_process.close()


@pytest.mark.parametrize("isolate", [True, False])
def test_a_hung_nvml_init_is_abandoned_within_the_limit(
    monkeypatch: pytest.MonkeyPatch, isolate: bool
) -> None:
    import time

    from scenarios_gpu import HangingNvml

    hanging = HangingNvml()
    monkeypatch.setattr(burn, "RealNvml", lambda: hanging)
    started = time.monotonic()
    try:
        reason = open_nvml_sampling(UUID.removeprefix("GPU-"), 0, timeout_s=0.3, isolate=isolate)
    finally:
        hanging.release()
    assert time.monotonic() - started < 2
    assert isinstance(reason, str)
    assert "did not answer within 0.3 s" in reason


def test_nvml_sampling_reports_a_gpu_nvml_cannot_find(monkeypatch: pytest.MonkeyPatch) -> None:
    replay = ReplayNvml.from_capture(H100).with_gpu_overrides(
        {"nvmlDeviceGetUUID": recorded_error("NVMLError_GpuIsLost", "GPU is lost")}
    )
    monkeypatch.setattr(burn, "RealNvml", lambda: replay)
    reason = open_nvml_sampling("b6012499", 0)
    assert isinstance(reason, str)
    assert "GPU is lost" in reason


# --- the runner's burn path, end to end with a stand-in GPU -------------------------------------


def _env(hook: str) -> dict[str, str]:
    env = dict(os.environ)
    tests = str(Path(__file__).parent)
    env["PYTHONPATH"] = os.pathsep.join([tests, env.get("PYTHONPATH", "")])
    env["DLREADY_SMOKE_TEST_HOOK"] = f"smoke_hooks:{hook}"
    return env


def _recorded_sampling(reasons: tuple[str, ...]) -> NvmlSampling:
    temperatures = iter([IDLE_C, 58.0, 63.0, 66.0, 67.0, 67.0, 67.0, 67.0])
    closed: list[bool] = []

    def sample() -> GpuHealthSample:
        return GpuHealthSample(next(temperatures, 67.0), LIMIT_W, MAX_SM_MHZ, reasons)

    return NvmlSampling(
        sampler=sample, close=lambda: closed.append(True), slowdown_temperature_c=SLOWDOWN_C
    )


@pytest.mark.parametrize(
    ("reasons", "status"),
    [
        pytest.param(("sw_power_cap",), CheckStatus.PASS, id="healthy"),
        pytest.param(("hw_thermal_slowdown",), CheckStatus.FAIL, id="overheating"),
    ],
)
def test_runner_burn_with_injected_sampler(reasons: tuple[str, ...], status: CheckStatus) -> None:
    runner = Runner(
        SmokeOptions(device="auto", burn_s=1.0),
        env=_env("fake_gpu_for_burn"),
        open_burn_sampling=lambda uuid, index: _recorded_sampling(reasons),
        sample_interval_s=0.05,
    )
    try:
        outcome = runner.run()
    finally:
        runner.close()
    burn = outcome.devices[0].checks[-1]
    assert burn.name == "burn"
    assert burn.status is status
    assert burn.measured["health"]["samples"] >= 3
    assert burn.measured["health"]["max_power_draw_w"] == LIMIT_W
    assert burn.measured["intervals"]


def test_runner_burn_without_nvml_is_skipped_with_the_reason() -> None:
    runner = Runner(
        SmokeOptions(device="auto", burn_s=1.0),
        env=_env("fake_gpu_for_burn"),
        open_burn_sampling=lambda uuid, index: (
            "NVMLError_LibraryNotFound: NVML Shared Library Not Found"
        ),
    )
    try:
        outcome = runner.run()
    finally:
        runner.close()
    burn = outcome.devices[0].checks[-1]
    assert burn.status is CheckStatus.SKIPPED
    assert burn.message.startswith("NVML not available (NVMLError_LibraryNotFound")


def test_burn_on_the_cpu_is_skipped() -> None:
    runner = Runner(SmokeOptions(device="cpu", burn_s=1.0))
    try:
        outcome = runner.run()
    finally:
        runner.close()
    burn = outcome.devices[0].checks[-1]
    assert burn.status is CheckStatus.SKIPPED
    assert "NVIDIA GPU" in burn.message
