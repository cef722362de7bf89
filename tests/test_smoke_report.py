"""From runner results to the final report: judging, exit codes and rendering (no worker)."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from rich.console import Console

from conftest import load_capture
from dlready.commands.smoke import exit_code_for
from dlready.exitcodes import ExitCode
from dlready.render.smoke_render import render_report, report_data
from dlready.smoke.judge import build_report, explain_context, nvidia_gpu_present
from dlready.smoke.peaks import load_peaks
from dlready.smoke.report import CheckResult, CheckStatus, DeviceReport, SmokeReport, TorchBuild
from machines import replay_snapshot

CPU_TORCH = TorchBuild(version="2.13.0+cpu", cuda=None, hip=None, cudnn=None, import_s=1.3)
H100_TORCH = load_capture("h100-80gb-hbm3")["torch"]
CUDA_TORCH = TorchBuild(
    version=H100_TORCH["torch"], cuda=H100_TORCH["cuda"], hip=None, cudnn=H100_TORCH["cudnn"],
    import_s=4.7,
)  # fmt: skip
INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cu130"


def _check(name: str, status: CheckStatus = CheckStatus.PASS, **extra: Any) -> CheckResult:
    return CheckResult(name=name, status=status, duration_s=0.01, message="ok", **extra)


def _cpu_fallback_device() -> DeviceReport:
    """``auto`` on a machine whose torch cannot see CUDA: the worker picked the CPU."""
    info = {
        "requested": "auto",
        "device": "cpu",
        "usable": True,
        "cuda_available": False,
        "cuda_init_warning": None,
        "name": "Intel(R) Xeon(R) Processor",
    }
    return DeviceReport(
        requested="auto",
        device="cpu",
        info=info,
        checks=(_check("device", measured=info), _check("linear.float32")),
    )


@pytest.mark.parametrize(
    ("machine", "present"),
    [
        pytest.param("h100-80gb-hbm3", True, id="h100"),
        pytest.param("h200-141gb", True, id="h200"),
        # NVML is missing and the recording holds no PCI listing: nobody can tell.
        pytest.param("cpu-only-epyc-vm", None, id="cpu-vm"),
    ],
)
def test_nvidia_gpu_present(machine: str, present: bool | None) -> None:
    assert nvidia_gpu_present(replay_snapshot(machine)) is present
    assert nvidia_gpu_present(None) is None


# The H100's PCI function as NVML recorded it: bus 0000:00:06.0, pciDeviceId 0x233010de.
H100_PCI = "/sys/bus/pci/devices/0000:00:06.0"
H100_PCI_FILES = {
    f"{H100_PCI}/class": "0x030200\n",
    f"{H100_PCI}/vendor": "0x10de\n",
    f"{H100_PCI}/device": "0x2330\n",
    f"{H100_PCI}/uevent": "PCI_ID=10DE:2330\n",
}


def test_a_gpu_whose_driver_is_not_loaded_is_still_present() -> None:
    from dlready.probes.nvml_gateway import ReplayNvml

    snapshot = replay_snapshot(
        "h100-80gb-hbm3",
        nvml=ReplayNvml.failing_init("NVMLError_DriverNotLoaded", "Driver Not Loaded"),
        files_extra=H100_PCI_FILES,
    )
    assert nvidia_gpu_present(snapshot) is True
    ctx = explain_context(snapshot, CUDA_TORCH, INSTALL)
    assert ctx.driver_version is None
    assert ctx.nvidia_gpu_present is True


def test_auto_falling_back_from_an_installed_h100_fails_and_says_why() -> None:
    snapshot = replay_snapshot("h100-80gb-hbm3")
    ctx = explain_context(snapshot, CPU_TORCH, INSTALL)
    report = build_report(
        [_cpu_fallback_device()],
        mode="quick",
        torch=CPU_TORCH,
        ctx=ctx,
        gpus=snapshot.gpus,
        table=load_peaks(),
        wall_s=2.0,
    )
    device = report.devices[0].checks[0]
    assert device.status is CheckStatus.FAIL
    assert "NVIDIA GPU is installed but torch cannot use it (it is a CPU-only build)" in (
        device.message
    )
    assert device.measured["cuda_unavailable_cause"] == "cpu_build"  # the JSON keeps the name
    assert device.explanation is not None
    assert "CPU-only build" in device.explanation
    assert device.fix is not None
    assert INSTALL in device.fix
    assert report.devices[0].info["cuda_unavailable_cause"] == "cpu_build"
    assert exit_code_for(report) is ExitCode.NOT_READY


def test_auto_on_a_machine_without_nvidia_gpu_passes_on_the_cpu() -> None:
    snapshot = replay_snapshot("cpu-only-epyc-vm")
    report = build_report(
        [_cpu_fallback_device()],
        mode="quick",
        torch=CPU_TORCH,
        ctx=explain_context(snapshot, CPU_TORCH, None),
        gpus=snapshot.gpus,
        table=load_peaks(),
        wall_s=2.0,
    )
    assert report.devices[0].checks[0].status is CheckStatus.PASS
    assert exit_code_for(report) is ExitCode.OK


def _report(*statuses: CheckStatus, usage_error: bool = False) -> SmokeReport:
    checks = tuple(_check(f"c{i}", status) for i, status in enumerate(statuses))
    device = DeviceReport(requested="cpu", device="cpu", info={}, checks=checks)
    return SmokeReport(
        mode="quick", torch=CPU_TORCH, devices=(device,), wall_s=1.0, usage_error=usage_error
    )


@pytest.mark.parametrize(
    ("statuses", "usage_error", "code"),
    [
        pytest.param((CheckStatus.PASS,), False, ExitCode.OK, id="pass"),
        pytest.param(
            (CheckStatus.PASS, CheckStatus.SKIPPED, CheckStatus.WARN), False, ExitCode.OK, id="warn"
        ),
        pytest.param((CheckStatus.PASS, CheckStatus.FAIL), False, ExitCode.NOT_READY, id="fail"),
        pytest.param((CheckStatus.TIMEOUT,), False, ExitCode.NOT_READY, id="timeout"),
        pytest.param((CheckStatus.FAIL,), True, ExitCode.USAGE, id="no-such-device"),
    ],
)
def test_exit_code(statuses: tuple[CheckStatus, ...], usage_error: bool, code: ExitCode) -> None:
    assert exit_code_for(_report(*statuses, usage_error=usage_error)) is code


def _h100_report() -> SmokeReport:
    """A CUDA run on the recorded H100 with its recorded bf16 speed and a hung check."""
    info = {
        "requested": "auto",
        "device": "cuda:0",
        "usable": True,
        "cuda_available": True,
        "cuda_device_count": 1,
        "name": "NVIDIA H100 80GB HBM3",
        "uuid": "b6012499-6918-735e-0cf1-3817ce68e703",
        "compute_capability": "9.0",
        "arch": "sm_90",
        "arch_in_build": "native",
        "total_memory_bytes": H100_TORCH["total_memory"],
    }
    snapshot = replay_snapshot("h100-80gb-hbm3")
    speed = _check(
        "speed.matmul.bfloat16",
        measured={"value": H100_TORCH["tflops_bfloat16"], "unit": "TFLOP/s"},
    )
    hung = CheckResult(
        name="backprop.training",
        status=CheckStatus.TIMEOUT,
        duration_s=0.0,
        message="no result within 30 s; the worker was killed",
    )
    skipped = tuple(
        CheckResult(name=f"speed.{n}", status=CheckStatus.SKIPPED, duration_s=0, message="same")
        for n in ("a", "b", "c")
    )
    device = DeviceReport(
        requested="auto",
        device="cuda:0",
        info=info,
        checks=(_check("device", measured=info), speed, hung, *skipped),
    )
    return build_report(
        [device],
        mode="full",
        torch=CUDA_TORCH,
        ctx=explain_context(snapshot, CUDA_TORCH, INSTALL),
        gpus=snapshot.gpus,
        table=load_peaks(),
        wall_s=12.5,
    )


def test_a_narrow_terminal_gets_one_line_per_check_not_a_folded_table() -> None:
    buffer = io.StringIO()
    render_report(_h100_report(), Console(file=buffer, width=60, no_color=True))
    text = buffer.getvalue()
    assert re.search(r"^timeout backprop\.training \(\d+\.\d\d s\): ", text, re.MULTILINE)
    # Soft-wrapped: a line longer than the terminal is one line, not a folded column.
    assert any(len(line) > 60 for line in text.splitlines())
    assert "─" not in text  # no table rule


def test_rendered_report() -> None:
    buffer = io.StringIO()
    render_report(_h100_report(), Console(file=buffer, width=120, no_color=True))
    text = buffer.getvalue()
    assert "torch 2.11.0+cu130 (CUDA 13.0) · cuDNN 9.19.0" in text
    assert (
        "device cuda:0 · NVIDIA H100 80GB HBM3 · compute capability 9.0 (this build has native "
        "code for sm_90)" in text
    )
    assert "80 % of 989.5 TFLOP/s" in text
    assert re.search(r"backprop\.training\s+timeout", text)
    assert "speed.a … speed.c" in text
    assert "3 checks: same" in text
    assert "timeout backprop.training on cuda:0: it did not finish: the GPU or its driver" in text
    assert "fix: run `nvidia-smi`" in text
    assert "6 checks: 2 pass, 3 skipped, 1 timeout · 12.5 s" in text
    assert "\x1b[" not in text


def test_report_data_is_plain_json() -> None:
    import json

    data = report_data(_h100_report())
    assert json.loads(json.dumps(data)) == data
    speed = data["devices"][0]["checks"][1]
    assert speed["expected"]["value"] == 989.5
    assert speed["expected"]["percent"] == pytest.approx(80.27, abs=0.01)
    assert data["counts"] == {"pass": 2, "warn": 0, "fail": 0, "skipped": 3, "timeout": 1}


def test_the_install_judge_sharpens_the_wrong_wheel_explanation() -> None:
    from dlready.commands.smoke import installed_torch_fit
    from dlready.probes.torch_meta import torch_install_from_version_py

    cpu_wheel = torch_install_from_version_py(
        "__version__ = '2.13.0+cpu'\ncuda = None\nhip = None\n", "/venv/site-packages/torch"
    )
    snapshot = replay_snapshot("h100-80gb-hbm3", torch=cpu_wheel)
    fit = installed_torch_fit(snapshot)
    assert fit is not None
    assert fit.status == "mismatch"
    report = build_report(
        [_cpu_fallback_device()],
        mode="quick",
        torch=CPU_TORCH,
        ctx=explain_context(snapshot, CPU_TORCH, INSTALL, fit),
        gpus=snapshot.gpus,
        table=load_peaks(),
        wall_s=2.0,
    )
    device = report.devices[0].checks[0]
    assert device.explanation is not None
    assert "(dlready install-cmd: torch 2.13.0 (cpu) is a CPU build" in device.explanation
    assert device.fix == f"install the matching build: {fit.fix_command}"
    assert "cu1" in device.fix


def test_a_device_check_hung_under_auto_on_a_cpu_only_machine_says_this_machine() -> None:
    """Before the device check answers, ``auto`` is no device: the words name this machine,
    and a CPU-only machine's hang is never blamed on a GPU or its driver."""
    snapshot = replay_snapshot("cpu-only-epyc-vm")
    hung = CheckResult(
        name="device",
        status=CheckStatus.TIMEOUT,
        duration_s=90.0,
        message="no result within 90 s; the worker was killed",
        measured={"timeout_s": 90.0},
    )
    report = build_report(
        [DeviceReport(requested="auto", device=None, info={}, checks=(hung,))],
        mode="quick",
        torch=CPU_TORCH,
        ctx=explain_context(snapshot, CPU_TORCH, None),
        gpus=snapshot.gpus,
        table=load_peaks(),
        wall_s=90.5,
    )
    buffer = io.StringIO()
    render_report(report, Console(file=buffer, width=120, no_color=True))
    text = buffer.getvalue()
    assert "timeout device on this machine: it did not finish in time" in text
    assert "auto" not in text
    for words in ("GPU", "driver", "nvidia-smi"):
        assert words not in text


def test_table_rows_end_at_their_content() -> None:
    """rich pads each cell to its column: the rows must not end in spaces (they are copied)."""
    buffer = io.StringIO()
    render_report(_h100_report(), Console(file=buffer, width=120, no_color=True))
    lines = buffer.getvalue().splitlines()
    assert any(line.startswith("device ") and line.endswith(" ok") for line in lines)
    assert [line for line in lines if line != line.rstrip()] == []


@pytest.mark.parametrize("width", range(30, 100, 7))
def test_a_number_keeps_its_unit_when_a_line_wraps(width: int) -> None:
    """On a terminal the problem lines wrap at words, but never between ``0.05`` and ``s``."""
    hung = CheckResult(
        name="speed.memory_copy",
        status=CheckStatus.TIMEOUT,
        duration_s=30.0,
        message="no result within 30 s; the worker was killed",
        explanation="copied 1,200 GB/s at 80 % of 989.5 TFLOP/s, then nothing within 0.05 s",
    )
    report = SmokeReport(
        mode="quick",
        torch=CPU_TORCH,
        devices=(DeviceReport(requested="cpu", device="cpu", info={}, checks=(hung,)),),
        wall_s=30.0,
        usage_error=False,
    )
    buffer = io.StringIO()
    render_report(report, Console(file=buffer, width=width, force_terminal=True, no_color=True))
    lines = buffer.getvalue().splitlines()
    assert "0.05" in buffer.getvalue()
    for line in lines:
        assert not re.match(r"\s*(s|GB/s|%|TFLOP/s)\b", line), (width, line)
