"""Turn what the runner found into the final :class:`SmokeReport` (pure: no torch, no I/O).

Three steps per device: attach expected speed figures and grade them (``peaks``), turn an
"auto fell back to the CPU although an NVIDIA GPU is installed" run into a failure that says
why (``explain.diagnose_cuda_unavailable``), and explain every failure (``explain``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from msgspec.structs import replace

from dlready.model import GpuInfo, GpuVendor, MachineSnapshot
from dlready.probes.pci import nvidia_devices_on_bus
from dlready.smoke.explain import (
    ExplainContext,
    cause_words,
    diagnose_cuda_unavailable,
    explain_result,
)
from dlready.smoke.peaks import PeaksTable, expectation_for, grade_speed, match_gpu
from dlready.smoke.report import (
    CheckResult,
    CheckStatus,
    DeviceReport,
    SmokeReport,
    TorchBuild,
)

if TYPE_CHECKING:
    from dlready.install.torch_fit import TorchFit


def nvidia_gpu_present(snapshot: MachineSnapshot | None) -> bool | None:
    """True when NVML counts an NVIDIA GPU or one sits on the PCI bus; None when unknown."""
    if snapshot is None:
        return None
    stack = snapshot.stack(GpuVendor.NVIDIA)
    if stack is not None and stack.device_count.ok and (stack.device_count.value or 0) > 0:
        return True
    if any(gpu.vendor is GpuVendor.NVIDIA for gpu in snapshot.gpus):
        return True
    pci = snapshot.pci_display_devices
    if pci.ok:
        return bool(nvidia_devices_on_bus(pci))
    if stack is not None and stack.device_count.ok:
        return False
    return None


def explain_context(
    snapshot: MachineSnapshot | None,
    torch: TorchBuild | None,
    install_command: str | None,
    torch_fit: TorchFit | None = None,
) -> ExplainContext:
    """What the explanations may use, from the snapshot and the worker's torch build.

    ``torch_fit`` is ``dlready.install.judge_installed_torch(snapshot)`` (a ``TorchFit``) when
    it could be computed: its problems sharpen the wrong-wheel explanations and its
    ``fix_command`` becomes the fix.
    """
    fit_problems: tuple[str, ...] = ()
    fit_fix: str | None = None
    if torch_fit is not None and torch_fit.status == "mismatch":
        fit_problems = tuple(str(p) for p in torch_fit.problems)
        fit_fix = torch_fit.fix_command or None
    driver = cuda_driver = capability = None
    if snapshot is not None:
        stack = snapshot.stack(GpuVendor.NVIDIA)
        if stack is not None:
            driver = stack.driver_version.value if stack.driver_version.ok else None
            cuda_driver = stack.cuda_driver_version.value if stack.cuda_driver_version.ok else None
        capability = next(
            (
                str(gpu.compute_capability.value)
                for gpu in snapshot.gpus
                if gpu.vendor is GpuVendor.NVIDIA and gpu.compute_capability.ok
            ),
            None,
        )
    return ExplainContext(
        torch_version=torch.version if torch else None,
        torch_cuda=torch.cuda if torch else None,
        torch_hip=torch.hip if torch else None,
        install_command=install_command,
        driver_version=driver,
        cuda_driver_version=cuda_driver,
        nvidia_gpu_present=nvidia_gpu_present(snapshot),
        nvidia_compute_capability=capability,
        torch_fit_problems=fit_problems,
        torch_fit_fix=fit_fix,
    )


def judge_device_check(result: CheckResult, ctx: ExplainContext) -> CheckResult:
    """Fail (and explain) a device check that could not reach the GPU the user has or wants.

    - ``auto`` or ``cuda`` on a machine with an NVIDIA GPU that torch cannot use: a failure
      that names the cause (CPU build, driver too old, ...) and the fix.
    - ``cuda`` on a machine with no NVIDIA GPU at all: a usage error (exit code 2).
    """
    info = result.measured
    requested = str(info.get("requested") or "")
    cuda_unavailable = info.get("cuda_available") is False
    if requested.startswith("cuda") and cuda_unavailable and ctx.nvidia_gpu_present is False:
        return replace(
            result,
            status=CheckStatus.FAIL,
            measured={**info, "usage_error": True},
            explanation="this machine has no NVIDIA GPU: none on the PCI bus and none in NVML",
            fix="leave --device out (auto picks the best device that exists) or use --device cpu",
        )
    wants_gpu = requested == "auto" or requested.startswith("cuda")
    if not (wants_gpu and ctx.nvidia_gpu_present and cuda_unavailable):
        return result
    diagnosis = diagnose_cuda_unavailable(
        ctx,
        info.get("cuda_init_warning"),
        list(info.get("arch_list") or []),
        info.get("cuda_visible_devices"),
    )
    measured = {**info, "cuda_unavailable_cause": str(diagnosis.cause)}
    if result.status is CheckStatus.PASS:
        message = (
            f"an NVIDIA GPU is installed but torch cannot use it ({cause_words(diagnosis.cause)}); the "
            f"checks ran on {info.get('device')} instead"
        )
    else:
        message = result.message
    return replace(
        result,
        status=CheckStatus.FAIL,
        message=message,
        measured=measured,
        explanation=diagnosis.explanation,
        fix=diagnosis.fix,
    )


def _device_report(
    device: DeviceReport,
    ctx: ExplainContext,
    gpus: tuple[GpuInfo, ...],
    table: PeaksTable,
) -> DeviceReport:
    info: dict[str, Any] = dict(device.info)
    gpu = match_gpu(info, gpus) if str(info.get("device") or "").startswith("cuda") else None
    # The requested device, for a check that ran before the device was known (its hang).
    device_ctx = replace(ctx, device_info={"requested": device.requested, **info})
    checks = []
    for result in device.checks:
        if result.name == "device":
            result = judge_device_check(result, device_ctx)
            info = dict(result.measured)
        result = grade_speed(result, expectation_for(result.name, info, gpu, table))
        checks.append(explain_result(result, device_ctx))
    return replace(device, info=info, checks=tuple(checks))


def build_report(
    devices: list[DeviceReport],
    *,
    mode: str,
    torch: TorchBuild | None,
    ctx: ExplainContext,
    gpus: tuple[GpuInfo, ...],
    table: PeaksTable,
    wall_s: float,
    notes: tuple[str, ...] = (),
) -> SmokeReport:
    """The final report: expectations graded and every failure explained."""
    judged = tuple(_device_report(device, ctx, gpus, table) for device in devices)
    usage_error = any(bool(device.info.get("usage_error")) for device in judged)
    return SmokeReport(
        mode=mode,
        torch=torch,
        devices=judged,
        wall_s=wall_s,
        usage_error=usage_error,
        notes=notes,
    )
