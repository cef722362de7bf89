"""Expected speed figures: the cited data file, NVML-derived figures, the PCIe rule, grading.

The machines are the recorded H100 and H200 servers: their NVML replays give the GpuInfo, and
their ``torch`` captures give the device names and the speeds measured on them.
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from conftest import load_capture
from dlready.model import GpuInfo
from dlready.probes.nvidia import probe_nvidia
from dlready.probes.nvml_gateway import ReplayNvml
from dlready.smoke.peaks import (
    FAIL_BELOW_PERCENT,
    expectation_for,
    find_peaks,
    grade_speed,
    load_peaks,
    match_gpu,
    pcie_bandwidth_gbps,
)
from dlready.smoke.report import CheckResult, CheckStatus

TABLE = load_peaks()


def _gpu(machine: str, **overrides: Any) -> GpuInfo:
    replay = ReplayNvml.from_capture(load_capture(machine)["nvml"])
    if overrides:
        replay = replay.with_gpu_overrides(overrides)
    _, gpus = probe_nvidia(replay)
    return gpus[0]


def _torch_info(machine: str) -> dict[str, Any]:
    """The ``device`` check's info as the worker would report it on that machine."""
    captured = load_capture(machine)["torch"]
    props = captured["device"]
    name = re.search(r"name='([^']+)'", props)
    uuid = re.search(r"uuid=([0-9a-f-]+)", props)
    assert name
    assert uuid
    return {
        "device": "cuda:0",
        "name": name.group(1),
        "uuid": uuid.group(1),
        "compute_capability": f"{captured['cap'][0]}.{captured['cap'][1]}",
        "cuda_device_count": 1,
    }


def _speed(name: str, value: float, status: CheckStatus = CheckStatus.PASS) -> CheckResult:
    return CheckResult(
        name=name, status=status, duration_s=0.1, message="measured", measured={"value": value}
    )


# --- the data file ------------------------------------------------------------------------------


def test_every_figure_carries_its_source() -> None:
    assert TABLE.devices
    for entry in TABLE.devices:
        assert entry.source_url.startswith("https://"), entry.id
        assert entry.source_document, entry.id
        assert entry.memory_bandwidth_gbps is not None, entry.id
        assert entry.memory_bandwidth_gbps > 0, entry.id
        assert entry.dense_tflops["float32"], entry.id
        for key, value in entry.dense_tflops.items():
            assert key in ("float32", "tf32", "float16", "bfloat16")
            # A missing figure must be explained in the notes, never silently absent.
            assert (value is None and entry.notes) or (value is not None and value > 0), (
                entry.id,
                key,
            )
    assert TABLE.pcie_source.endswith(">")


def test_names_are_unique_across_entries() -> None:
    names = [name.lower() for entry in TABLE.devices for name in entry.names]
    assert len(names) == len(set(names))


@pytest.mark.parametrize(
    ("name", "entry_id"),
    [
        pytest.param("NVIDIA H100 80GB HBM3", "h100-sxm5-80gb", id="h100"),
        pytest.param("NVIDIA H200", "h200-sxm-141gb", id="h200"),
        pytest.param("GeForce RTX 2080 Ti", "rtx-2080-ti", id="2080ti-old-driver-name"),
        pytest.param("NVIDIA  GeForce RTX 2080 Ti", "rtx-2080-ti", id="2080ti-spaces"),
        pytest.param("Tesla T4", "tesla-t4", id="t4"),
        pytest.param("NVIDIA GeForce GTX 1060 3GB", None, id="1060-3gb-is-another-card"),
        pytest.param("NVIDIA A100-SXM4-40GB MIG 1g.5gb", None, id="mig-slice"),
        pytest.param(None, None, id="no-name"),
    ],
)
def test_find_peaks_matches_exact_device_names(name: str | None, entry_id: str | None) -> None:
    found = find_peaks(TABLE, name)
    assert (found.id if found else None) == entry_id


@pytest.mark.parametrize(
    ("generation", "width", "gbps"),
    [
        pytest.param(5, 16, 63.015, id="gen5-x16"),  # 32 GT/s x 128/130 x 16 / 8
        pytest.param(4, 16, 31.508, id="gen4-x16"),
        pytest.param(3, 16, 15.754, id="gen3-x16"),
        pytest.param(3, 4, 3.938, id="gen3-x4"),
        pytest.param(1, 1, 0.25, id="gen1-x1"),  # 2.5 GT/s x 8/10 / 8
    ],
)
def test_pcie_rule(generation: int, width: int, gbps: float) -> None:
    assert pcie_bandwidth_gbps(TABLE, generation, width) == pytest.approx(gbps, abs=1e-3)


def test_pcie_rule_unknown_generation() -> None:
    assert pcie_bandwidth_gbps(TABLE, 9, 16) is None


# --- expectations on the recorded machines ------------------------------------------------------


@pytest.mark.parametrize("machine", ["h100-80gb-hbm3", "h200-141gb"])
def test_match_gpu_by_uuid(machine: str) -> None:
    gpu = _gpu(machine)
    assert match_gpu(_torch_info(machine), (gpu,)) is gpu


# (check, capture key of the measured speed, lowest percent a healthy card of the recording
# reached). The percentages are those of the real H100/H200 measurements against the sheets.
RECORDED_SPEEDS = [
    ("speed.matmul.bfloat16", "tflops_bfloat16"),
    ("speed.matmul.float16", "tflops_float16"),
    ("speed.matmul.tf32", "tflops_tf32"),
    ("speed.matmul.float32", "tflops_float32"),
    ("speed.memory_copy", "d2d_GBps_rw"),
    ("speed.h2d", "h2d_pinned_GBps"),
    ("speed.d2h", "d2h_pinned_GBps"),
]


@pytest.mark.parametrize("machine", ["h100-80gb-hbm3", "h200-141gb"])
@pytest.mark.parametrize(("check", "key"), RECORDED_SPEEDS)
def test_recorded_healthy_speeds_pass_between_70_and_100_percent(
    machine: str, check: str, key: str
) -> None:
    measured = float(load_capture(machine)["torch"][key])
    expectation = expectation_for(check, _torch_info(machine), _gpu(machine), TABLE)
    assert expectation is not None
    assert expectation.value is not None
    graded = grade_speed(_speed(check, measured), expectation)
    assert graded.status is CheckStatus.PASS
    assert graded.expected is not None
    assert graded.expected.percent is not None
    assert 70 <= graded.expected.percent <= 100


def test_h100_bf16_is_80_percent_of_the_datasheet() -> None:
    expectation = expectation_for(
        "speed.matmul.bfloat16", _torch_info("h100-80gb-hbm3"), None, TABLE
    )
    assert expectation is not None
    assert expectation.value == 989.5
    assert "datasheet" in expectation.source
    graded = grade_speed(_speed("speed.matmul.bfloat16", 794.3), expectation)
    assert graded.expected is not None
    assert graded.expected.percent == pytest.approx(80.27, abs=0.01)


def test_unknown_nvidia_gpu_falls_back_to_nvml_figures() -> None:
    info = {**_torch_info("h100-80gb-hbm3"), "name": "NVIDIA H100 Engineering Sample"}
    gpu = _gpu("h100-80gb-hbm3")
    fp32 = expectation_for("speed.matmul.float32", info, gpu, TABLE)
    memory = expectation_for("speed.memory_copy", info, gpu, TABLE)
    bf16 = expectation_for("speed.matmul.bfloat16", info, gpu, TABLE)
    assert fp32 is not None
    assert fp32.value == pytest.approx(66.91, abs=0.01)
    assert "NVML" in fp32.source
    assert memory is not None
    assert memory.value == pytest.approx(3352.3, abs=0.1)
    assert bf16 is not None
    assert bf16.value is None
    assert bf16.source.startswith("unknown:")


def test_pcie_expectation_follows_the_link_nvml_reports() -> None:
    # The same H100 in a Gen3 slot (a real failure mode: the link trains down).
    gpu = _gpu("h100-80gb-hbm3", nvmlDeviceGetMaxPcieLinkGeneration=3)
    expectation = expectation_for("speed.h2d", _torch_info("h100-80gb-hbm3"), gpu, TABLE)
    assert expectation is not None
    assert expectation.value == pytest.approx(15.754, abs=1e-3)
    assert "Gen3 x16" in expectation.source


def test_pcie_expectation_unknown_without_nvml() -> None:
    expectation = expectation_for("speed.h2d", _torch_info("h100-80gb-hbm3"), None, TABLE)
    assert expectation is not None
    assert expectation.value is None


@pytest.mark.parametrize("device", ["cpu", "mps"])
@pytest.mark.parametrize("check", ["speed.matmul.float32", "speed.memory_copy"])
def test_no_peak_is_invented_for_cpu_or_mps(device: str, check: str) -> None:
    expectation = expectation_for(check, {"device": device, "name": "AMD EPYC"}, None, TABLE)
    assert expectation is not None
    assert expectation.value is None
    assert expectation.source.startswith("unknown:")


def test_null_figure_says_why() -> None:
    info = {"device": "cuda:0", "name": "NVIDIA GeForce RTX 2080 Ti"}
    expectation = expectation_for("speed.matmul.bfloat16", info, None, TABLE)
    assert expectation is not None
    assert expectation.value is None
    assert "7.5" in expectation.source


def test_not_a_speed_check_has_no_expectation() -> None:
    assert expectation_for("linear.float32", {"device": "cuda:0"}, None, TABLE) is None


# --- grading ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("check", "percent", "status"),
    [
        pytest.param("speed.matmul.bfloat16", 80.3, CheckStatus.PASS, id="h100-like"),
        pytest.param("speed.matmul.bfloat16", 35.0, CheckStatus.WARN, id="matmul-slow"),
        pytest.param("speed.memory_copy", 45.0, CheckStatus.WARN, id="copy-slow"),
        pytest.param("speed.h2d", 25.0, CheckStatus.WARN, id="pcie-link-x4"),
        pytest.param("speed.matmul.float32", FAIL_BELOW_PERCENT - 1, CheckStatus.FAIL, id="broken"),
    ],
)
def test_grade_speed(check: str, percent: float, status: CheckStatus) -> None:
    expectation = expectation_for(
        check, _torch_info("h100-80gb-hbm3"), _gpu("h100-80gb-hbm3"), TABLE
    )
    assert expectation is not None
    assert expectation.value is not None
    graded = grade_speed(_speed(check, expectation.value * percent / 100), expectation)
    assert graded.status is status
    if status is not CheckStatus.PASS:
        assert "%" in graded.message


def test_grading_leaves_failures_and_unknowns_alone() -> None:
    expectation = expectation_for(
        "speed.matmul.bfloat16", _torch_info("h100-80gb-hbm3"), None, TABLE
    )
    failed = _speed("speed.matmul.bfloat16", 1.0, CheckStatus.FAIL)
    assert grade_speed(failed, expectation).status is CheckStatus.FAIL
    unknown = expectation_for("speed.matmul.float32", {"device": "cpu"}, None, TABLE)
    graded = grade_speed(_speed("speed.matmul.float32", 0.2), unknown)
    assert graded.status is CheckStatus.PASS
    assert graded.expected is not None
    assert graded.expected.percent is None
