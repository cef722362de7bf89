"""Failure -> explanation + fix, for every way ``dlready smoke`` can fail (pure).

Inputs are the failed :class:`CheckResult` (its message, exception class, measurements) and an
:class:`ExplainContext` with what the parent knows about the machine. Nothing here imports
torch or touches hardware, so every explanation is tested from a table of real error texts.
"""

from __future__ import annotations

import re
import signal
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from dlready.model import StrEnum
from dlready.probes.isolated import signal_in_words
from dlready.smoke import catalog
from dlready.smoke.archcompat import ArchSupport, cuda_arch_support
from dlready.smoke.report import CheckResult, CheckStatus

INSTALL_CMD_HINT = "run `dlready install-cmd` and run the command it prints"


class ExplainContext(Struct, frozen=True):
    """What the parent knows when it explains a failure."""

    torch_version: str | None = None
    torch_cuda: str | None = None
    """CUDA version the wheel was built with (``torch.version.cuda``); None for CPU/ROCm builds."""
    torch_hip: str | None = None
    install_command: str | None = None
    """The line ``dlready install-cmd`` prints for this machine, when it could be computed."""
    driver_version: str | None = None
    cuda_driver_version: str | None = None
    """Highest CUDA version the installed driver supports (NVML), e.g. ``13.0``."""
    nvidia_gpu_present: bool | None = None
    nvidia_compute_capability: str | None = None
    """From NVML, e.g. ``9.0``: lets a CPU-only torch still be judged against the GPU."""
    device_info: dict[str, Any] | None = None
    timeout_s: float | None = None
    torch_fit_problems: tuple[str, ...] = ()
    """What ``dlready.install.judge_installed_torch`` found wrong with the installed torch."""
    torch_fit_fix: str | None = None
    """The command that judge gives to fix it (preferred over ``install_command``)."""

    @property
    def install_fix(self) -> str:
        """The fix that installs the right wheel."""
        command = self.torch_fit_fix or self.install_command
        if command:
            return f"install the matching build: {command}"
        return INSTALL_CMD_HINT

    def with_judge(self, explanation: str) -> str:
        """An explanation followed by what the install judge found, when it found something."""
        if not self.torch_fit_problems:
            return explanation
        return f"{explanation} (dlready install-cmd: {'; '.join(self.torch_fit_problems)})"


class CudaUnavailableCause(StrEnum):
    """Why torch cannot use an NVIDIA GPU that is installed."""

    CPU_BUILD = "cpu_build"
    ROCM_BUILD = "rocm_build"
    DRIVER_TOO_OLD = "driver_too_old"
    NO_DRIVER = "no_driver"
    ARCH_MISSING = "arch_missing"
    HIDDEN = "hidden"
    OTHER = "other"


_CAUSE_WORDS = {
    CudaUnavailableCause.CPU_BUILD: "it is a CPU-only build",
    CudaUnavailableCause.ROCM_BUILD: "it is a ROCm (AMD) build",
    CudaUnavailableCause.DRIVER_TOO_OLD: "the driver is older than the build needs",
    CudaUnavailableCause.NO_DRIVER: "the driver does not answer",
    CudaUnavailableCause.ARCH_MISSING: "the build has no code for this GPU",
    CudaUnavailableCause.HIDDEN: "CUDA_VISIBLE_DEVICES hides it",
    CudaUnavailableCause.OTHER: "see the explanation",
}


def cause_words(cause: CudaUnavailableCause) -> str:
    """The cause in a few words (the JSON keeps its name)."""
    return _CAUSE_WORDS[cause]


class Diagnosis(Struct, frozen=True):
    """One cause, in words, with its fix."""

    cause: CudaUnavailableCause
    explanation: str
    fix: str


def _version_tuple(text: str | None) -> tuple[int, ...] | None:
    if not text:
        return None
    parts = re.findall(r"\d+", text)
    return tuple(int(p) for p in parts[:2]) if parts else None


def diagnose_cuda_unavailable(
    ctx: ExplainContext,
    init_warning: str | None,
    arch_list: list[str] | None = None,
    cuda_visible_devices: str | None = None,
) -> Diagnosis:
    """Say which of the known causes keeps torch from an NVIDIA GPU that is present.

    Args:
        ctx: the machine as the parent probed it.
        init_warning: the warning ``torch.cuda.is_available()`` raised, if any.
        arch_list: ``torch.cuda.get_arch_list()`` when it was readable.
        cuda_visible_devices: the ``CUDA_VISIBLE_DEVICES`` value the worker saw.
    """
    warning = init_warning or ""
    if ctx.torch_hip:
        return Diagnosis(
            CudaUnavailableCause.ROCM_BUILD,
            ctx.with_judge(
                f"the installed torch {ctx.torch_version} is a ROCm (AMD) build; it cannot "
                "drive an NVIDIA GPU"
            ),
            ctx.install_fix,
        )
    if not ctx.torch_cuda:
        return Diagnosis(
            CudaUnavailableCause.CPU_BUILD,
            ctx.with_judge(
                f"the installed torch {ctx.torch_version or ''} is a CPU-only build "
                "(torch.version.cuda is None), so it cannot use the NVIDIA GPU"
            ),
            ctx.install_fix,
        )
    if cuda_visible_devices is not None and cuda_visible_devices.strip() in ("", "-1", "none"):
        return Diagnosis(
            CudaUnavailableCause.HIDDEN,
            f"CUDA_VISIBLE_DEVICES={cuda_visible_devices!r} hides every GPU from this process",
            "unset CUDA_VISIBLE_DEVICES (or list the GPU indices to use)",
        )
    lowered = warning.lower()
    built = _version_tuple(ctx.torch_cuda)
    supported = _version_tuple(ctx.cuda_driver_version)
    if (
        "too old" in lowered
        or "driver version is insufficient" in lowered
        or (built is not None and supported is not None and supported < built)
    ):
        driver = f"driver {ctx.driver_version}" if ctx.driver_version else "the NVIDIA driver"
        tops = f" (it supports CUDA up to {ctx.cuda_driver_version})" if supported else ""
        return Diagnosis(
            CudaUnavailableCause.DRIVER_TOO_OLD,
            ctx.with_judge(
                f"torch {ctx.torch_version} was built for CUDA {ctx.torch_cuda}, newer than "
                f"{driver} supports{tops}"
            ),
            f"update the NVIDIA driver, or {ctx.install_fix}",
        )
    if (
        "found no nvidia driver" in lowered
        or "no cuda gpus are available" in lowered
        or (ctx.driver_version is None and ctx.nvidia_gpu_present)
    ):
        return Diagnosis(
            CudaUnavailableCause.NO_DRIVER,
            "an NVIDIA GPU is on the PCI bus but its driver does not answer (not installed, "
            "not loaded, or blocked in this container)",
            "install or load the NVIDIA driver (`nvidia-smi` must work), then rerun; in a "
            "container run it with `--gpus all`",
        )
    if ctx.nvidia_compute_capability and arch_list:
        cc = _version_tuple(ctx.nvidia_compute_capability)
        if (
            cc
            and len(cc) == 2
            and cuda_arch_support(cc[0], cc[1], arch_list) is (ArchSupport.MISSING)
        ):
            return Diagnosis(
                CudaUnavailableCause.ARCH_MISSING,
                ctx.with_judge(
                    f"this torch build carries no code for compute capability "
                    f"{ctx.nvidia_compute_capability} (it has {' '.join(arch_list)})"
                ),
                ctx.install_fix,
            )
    detail = f": {warning}" if warning else ""
    return Diagnosis(
        CudaUnavailableCause.OTHER,
        f"torch.cuda.is_available() is False although an NVIDIA GPU is present{detail}",
        "check that `nvidia-smi` works and that this user can open /dev/nvidia*; "
        f"then {INSTALL_CMD_HINT}",
    )


# Known error texts -> (explanation, fix). The first match wins; `{install}` is filled in.
_PATTERNS: tuple[tuple[re.Pattern[str], str, str], ...] = (
    (
        re.compile(r"no kernel image is available|not compatible with the current pytorch", re.I),
        "the GPU's architecture is missing from this torch build: its kernels cannot run here",
        "{install}",
    ),
    (
        re.compile(r"out of memory|OutOfMemoryError|CUBLAS_STATUS_ALLOC_FAILED", re.I),
        "the device ran out of memory: other processes hold it, or it is smaller than the test",
        "see which processes use the GPU with `nvidia-smi` and stop them; `dlready smoke "
        "--quick` uses smaller buffers",
    ),
    (
        re.compile(r"invalid device ordinal|does not exist", re.I),
        "the requested device does not exist on this machine",
        "pick one that exists (see `nvidia-smi -L`), or leave --device out to pick automatically",
    ),
    (
        re.compile(r"driver version is insufficient|driver on your system is too old", re.I),
        "the NVIDIA driver is older than the CUDA version this torch was built for",
        "update the NVIDIA driver, or {install}",
    ),
    (
        re.compile(r"Torch not compiled with CUDA enabled|CPU-only build", re.I),
        "the installed torch is a CPU-only build",
        "{install}",
    ),
    (
        re.compile(r"busy or unavailable|all CUDA-capable devices are busy", re.I),
        "the GPU refuses new work: its compute mode is exclusive or prohibited, or another "
        "process holds it",
        "check `nvidia-smi -q -d COMPUTE` and the processes `nvidia-smi` lists",
    ),
    (
        re.compile(
            r"illegal memory access|unspecified launch failure|uncorrectable ECC|"
            r"CUDA error: unknown error|launch timed out",
            re.I,
        ),
        "the GPU failed while running a kernel: a hardware, driver or memory (ECC) fault",
        "look for Xid errors with `dmesg | grep -i xid` and ECC counts with `nvidia-smi -q -d "
        "ECC`; a reset (`nvidia-smi -r`) or reboot may clear it; `dcgmi diag -r 3` tests deeper",
    ),
    (
        re.compile(r"cuDNN|CUDNN_STATUS|libcudnn|libcublas|libnvrtc|undefined symbol", re.I),
        "a CUDA library (cuDNN/cuBLAS/NVRTC) failed to load or initialise: usually mixed or "
        "partial installs of the nvidia-* wheels",
        "reinstall torch in a clean virtual environment: {install}",
    ),
    (
        re.compile(r"MPS backend|mps.*not available|MPS.*macOS", re.I),
        "the Apple MPS backend is not available (it needs macOS 12.3+ on Apple silicon or an "
        "AMD GPU, and an arm64 Python)",
        "run natively (not under Rosetta) on a supported Mac, or use --device cpu",
    ),
)

_NUMERIC_PREFIXES = ("linear.", "amp.", "speed.matmul.", "burn", "autograd.", "backprop.")


def explain_error_text(text: str, ctx: ExplainContext) -> tuple[str, str] | None:
    """Explanation and fix for a known error text, or None."""
    for pattern, explanation, fix in _PATTERNS:
        if pattern.search(text):
            return explanation, fix.format(install=ctx.install_fix)
    return None


def explain_timeout(result: CheckResult, ctx: ExplainContext) -> tuple[str, str]:
    """A hung check: what usually hangs on this device, and what to look at.

    The words follow the device: only a GPU (one that ran the check, or that ``auto`` or
    ``cuda`` would have picked) is blamed on the GPU and its driver. A limit set by ``--timeout``
    below the check's built-in one is said first: the check may only have needed longer.
    """
    info = ctx.device_info or {}
    device = str(info.get("device") or "")
    requested = str(info.get("requested") or "")
    limit_s = result.measured.get("timeout_s")
    built_in_s = _built_in_timeout_s(result.name)
    if isinstance(limit_s, (int, float)) and built_in_s is not None and limit_s < built_in_s:
        return (
            f"it did not finish within the {limit_s:g} s that --timeout allowed, less than the "
            f"{built_in_s:g} s it is given by default: it may only have needed longer",
            "rerun without --timeout, or with a longer one",
        )
    on_gpu = device.startswith("cuda") or (
        not device
        and result.name == "device"
        and (requested.startswith("cuda") or (requested == "auto" and ctx.nvidia_gpu_present))
    )
    if on_gpu:
        return (
            "it did not finish: the GPU or its driver stopped answering "
            "(torch.cuda.is_available() can hang forever on a sick GPU while nvidia-smi still "
            "looks fine; a cold multi-GPU host without persistence mode can also be very slow)",
            "run `nvidia-smi`; if it hangs too, the GPU needs a reset (`nvidia-smi -r`) or a "
            "reboot; check `dmesg | grep -i xid`; enable persistence mode (`nvidia-smi -pm 1`); "
            "`--timeout` allows a slower start",
        )
    return (
        "it did not finish in time: the machine may be overloaded, or a library deadlocked",
        "rerun with a longer `--timeout`; check the load with `top`",
    )


def _built_in_timeout_s(name: str) -> float | None:
    """The shortest limit the check gets without --timeout, or None for an unknown name."""
    try:
        spec = catalog.spec_for(name)
    except KeyError:
        return None
    return min(spec.timeout_quick_s, spec.timeout_full_s)


def explain_worker_death(result: CheckResult) -> tuple[str, str]:
    """The worker process died in the middle of a check."""
    text = result.message
    signal_name = str(result.measured.get("signal") or "")
    if signal_name == "SIGKILL" or "SIGKILL" in text:
        return (
            "the worker was killed (SIGKILL): usually the kernel's out-of-memory killer",
            "check `dmesg | grep -i -e oom -e killed`; free host memory and rerun",
        )
    number = getattr(signal.Signals, signal_name, None) if signal_name else None
    crash = (
        f"{signal_name}, {signal_in_words(number)}" if number else "a segmentation fault or abort"
    )
    if signal_name in ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"):
        return (
            f"the worker was stopped from outside ({signal_name}: something sent it a signal to "
            "stop), not by a fault in torch or the device",
            "rerun `dlready smoke`; if it happens again, look for a job scheduler or watchdog "
            "that stops long-running processes",
        )
    return (
        f"the worker crashed in native code ({crash}): usually mismatched "
        "CUDA libraries, a driver problem, or a broken torch install",
        "run `python -m torch.utils.collect_env` and reinstall torch in a clean environment; "
        f"{INSTALL_CMD_HINT}",
    )


def explain_device_failure(result: CheckResult, ctx: ExplainContext) -> tuple[str, str] | None:
    """The device check failed without an exception: the device is missing or unusable."""
    info = result.measured
    requested = str(info.get("requested") or "")
    if requested == "mps":
        return (
            "Apple's MPS backend is not available here: it needs macOS 12.3+ on Apple silicon "
            "(or an AMD GPU) and an arm64 build of torch",
            "leave --device out (auto picks the best device that exists) or use --device cpu",
        )
    if info.get("arch_in_build") == "missing":
        return (
            ctx.with_judge(
                f"this torch build carries no code for {info.get('arch')} (compute capability "
                f'{info.get("compute_capability")}); every kernel would fail with "no kernel '
                'image is available"'
            ),
            ctx.install_fix,
        )
    if requested.startswith("cuda") and info.get("cuda_available") is False:
        diagnosis = diagnose_cuda_unavailable(
            ctx,
            info.get("cuda_init_warning"),
            list(info.get("arch_list") or []),
            info.get("cuda_visible_devices"),
        )
        return diagnosis.explanation, diagnosis.fix
    return None


def explain_result(result: CheckResult, ctx: ExplainContext) -> CheckResult:
    """Fill ``explanation`` and ``fix`` for a failed, timed-out or slow check."""
    if result.status not in (CheckStatus.FAIL, CheckStatus.TIMEOUT, CheckStatus.WARN):
        return result
    if result.explanation:
        return result
    if result.status is CheckStatus.TIMEOUT:
        explanation, fix = explain_timeout(result, ctx)
    elif result.error_type == "WorkerDied":
        explanation, fix = explain_worker_death(result)
    elif result.status is CheckStatus.WARN:
        explanation, fix = (
            "the device runs well below what this model should reach: a lowered power limit, "
            "thermal throttling, other processes on the GPU, or (for host copies) a PCIe link "
            "running below its generation or width",
            "check `nvidia-smi -q -d POWER,CLOCK,PERFORMANCE` and the processes `nvidia-smi` "
            "lists; `dlready smoke --burn 60` watches throttling under load",
        )
    else:
        text = " ".join(
            str(part)
            for part in (result.error_type, result.message, result.measured.get("exception"))
            if part
        )
        known = explain_error_text(text, ctx)
        if known is None and result.name == "device" and result.error_type is None:
            known = explain_device_failure(result, ctx)
        if known is not None:
            explanation, fix = known
        elif result.name.startswith("speed.") and "%" in result.message:
            explanation, fix = (
                "the device runs at a small fraction of its expected speed: it is broken, "
                "stuck at low clocks, or severely throttled",
                "check `nvidia-smi -q -d PERFORMANCE,CLOCK` for clock event reasons; reseat or "
                "service the card if it persists",
            )
        elif result.error_type is None and result.name.startswith(_NUMERIC_PREFIXES):
            explanation, fix = (
                "the device computed wrong values: a faulty GPU (memory or compute errors), an "
                "unstable overclock or undervolt, or a broken math library",
                "run `dlready smoke --full --burn 60`; check `nvidia-smi -q -d ECC` and "
                "`dmesg | grep -i xid`; `dcgmi diag -r 3` tests deeper",
            )
        elif result.error_type is None:
            explanation, fix = (
                "PyTorch itself does not behave as documented: a broken or mixed install "
                "(several torch copies, a partial upgrade)",
                f"reinstall torch in a clean virtual environment; {ctx.install_fix}",
            )
        else:
            explanation, fix = (
                f"the check raised {result.error_type}",
                f"rerun with `--json` for the full message; {INSTALL_CMD_HINT} if the install "
                "is suspect",
            )
    return replace(result, explanation=explanation, fix=fix)
