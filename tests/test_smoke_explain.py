"""Every failure smoke can meet gets an explanation and a fix; arch support is judged right.

Error texts are the ones torch and CUDA really print (quoted from torch's sources and from
user reports); architecture lists come from the recorded H100's torch build.
"""

from __future__ import annotations

import msgspec.structs
import pytest
from msgspec.structs import replace

from conftest import load_capture
from dlready.smoke.archcompat import ArchSupport, cuda_arch_support, rocm_arch_support
from dlready.smoke.explain import (
    INSTALL_CMD_HINT,
    CudaUnavailableCause,
    ExplainContext,
    diagnose_cuda_unavailable,
    explain_error_text,
    explain_result,
)
from dlready.smoke.report import CheckResult, CheckStatus

H100_TORCH = load_capture("h100-80gb-hbm3")["torch"]
ARCH_LIST = list(H100_TORCH["arch_list"])  # sm_75 sm_80 sm_86 sm_90 sm_100 sm_120
INSTALL = "pip install torch --index-url https://download.pytorch.org/whl/cu130"


@pytest.mark.parametrize(
    ("major", "minor", "arch_list", "support"),
    [
        pytest.param(9, 0, ARCH_LIST, ArchSupport.NATIVE, id="h100-on-its-build"),
        pytest.param(8, 9, ARCH_LIST, ArchSupport.NATIVE, id="ada-served-by-sm86"),
        pytest.param(6, 1, ARCH_LIST, ArchSupport.MISSING, id="gtx1060-dropped"),
        pytest.param(7, 0, ARCH_LIST, ArchSupport.MISSING, id="v100-dropped"),
        pytest.param(8, 0, ["sm_86"], ArchSupport.MISSING, id="sm86-not-for-a100"),
        pytest.param(12, 0, ["sm_90", "compute_90"], ArchSupport.PTX, id="ptx-forward"),
        pytest.param(8, 0, ["compute_90"], ArchSupport.MISSING, id="ptx-not-backward"),
        pytest.param(9, 0, ["sm_90a"], ArchSupport.NATIVE, id="arch-specific-exact"),
        pytest.param(10, 0, ["sm_90a"], ArchSupport.MISSING, id="arch-specific-only"),
        pytest.param(10, 3, ["sm_100f"], ArchSupport.NATIVE, id="family"),
        pytest.param(9, 0, [], ArchSupport.UNKNOWN, id="empty-list"),
    ],
)
def test_cuda_arch_support(
    major: int, minor: int, arch_list: list[str], support: ArchSupport
) -> None:
    assert cuda_arch_support(major, minor, arch_list) is support


@pytest.mark.parametrize(
    ("gcn", "arch_list", "support"),
    [
        pytest.param(
            "gfx942:sramecc+:xnack-", ["gfx90a", "gfx942"], ArchSupport.NATIVE, id="mi300"
        ),
        pytest.param("gfx1100", ["gfx90a", "gfx942"], ArchSupport.MISSING, id="rdna3-missing"),
        pytest.param("gfx942", [], ArchSupport.UNKNOWN, id="unknown"),
    ],
)
def test_rocm_arch_support(gcn: str, arch_list: list[str], support: ArchSupport) -> None:
    assert rocm_arch_support(gcn, arch_list) is support


# --- why CUDA is unavailable --------------------------------------------------------------------

H100_DRIVER = ExplainContext(
    torch_version="2.11.0+cu130",
    torch_cuda="13.0",
    install_command=INSTALL,
    driver_version="580.159.04",
    cuda_driver_version="13.0",
    nvidia_gpu_present=True,
    nvidia_compute_capability="9.0",
)


@pytest.mark.parametrize(
    ("ctx", "warning", "visible", "cause", "says"),
    [
        pytest.param(
            ExplainContext(torch_version="2.13.0+cpu", nvidia_gpu_present=True),
            None,
            None,
            CudaUnavailableCause.CPU_BUILD,
            "CPU-only build",
            id="cpu-wheel",
        ),
        pytest.param(
            ExplainContext(
                torch_version="2.13.0+rocm6.4", torch_hip="6.4", nvidia_gpu_present=True
            ),
            None,
            None,
            CudaUnavailableCause.ROCM_BUILD,
            "ROCm",
            id="rocm-wheel",
        ),
        pytest.param(
            H100_DRIVER,
            None,
            "",
            CudaUnavailableCause.HIDDEN,
            "CUDA_VISIBLE_DEVICES",
            id="hidden",
        ),
        pytest.param(
            H100_DRIVER.__class__(
                **{**msgspec.structs.asdict(H100_DRIVER), "cuda_driver_version": "12.4"}
            ),
            None,
            None,
            CudaUnavailableCause.DRIVER_TOO_OLD,
            "built for CUDA 13.0",
            id="driver-older-than-build",
        ),
        pytest.param(
            H100_DRIVER,
            "CUDA initialization: The NVIDIA driver on your system is too old (found version "
            "12040). Please update your GPU driver",
            None,
            CudaUnavailableCause.DRIVER_TOO_OLD,
            "newer than driver 580.159.04",
            id="driver-warning",
        ),
        pytest.param(
            H100_DRIVER.__class__(
                **{**msgspec.structs.asdict(H100_DRIVER), "driver_version": None}
            ),
            "CUDA initialization: Found no NVIDIA driver on your system.",
            None,
            CudaUnavailableCause.NO_DRIVER,
            "driver does not answer",
            id="no-driver",
        ),
        pytest.param(
            H100_DRIVER.__class__(
                **{**msgspec.structs.asdict(H100_DRIVER), "nvidia_compute_capability": "6.1"}
            ),
            None,
            None,
            CudaUnavailableCause.ARCH_MISSING,
            "compute capability 6.1",
            id="arch-missing",
        ),
        pytest.param(
            H100_DRIVER,
            "CUDA initialization: unexpected error 999",
            None,
            CudaUnavailableCause.OTHER,
            "unexpected error 999",
            id="other",
        ),
    ],
)
def test_diagnose_cuda_unavailable(
    ctx: ExplainContext,
    warning: str | None,
    visible: str | None,
    cause: CudaUnavailableCause,
    says: str,
) -> None:
    diagnosis = diagnose_cuda_unavailable(ctx, warning, ARCH_LIST, visible)
    assert diagnosis.cause is cause
    assert says in diagnosis.explanation
    assert diagnosis.fix


@pytest.mark.parametrize(
    "cause",
    [CudaUnavailableCause.CPU_BUILD, CudaUnavailableCause.ARCH_MISSING],
)
def test_wrong_wheel_fix_is_the_install_command(cause: CudaUnavailableCause) -> None:
    ctx = ExplainContext(
        torch_version="2.13.0+cpu",
        install_command=INSTALL,
        nvidia_gpu_present=True,
        nvidia_compute_capability="6.1",
    )
    if cause is CudaUnavailableCause.ARCH_MISSING:
        ctx = H100_DRIVER.__class__(
            **{**msgspec.structs.asdict(H100_DRIVER), "nvidia_compute_capability": "6.1"}
        )
    assert INSTALL in diagnose_cuda_unavailable(ctx, None, ARCH_LIST).fix


def test_without_an_install_command_the_fix_points_to_install_cmd() -> None:
    ctx = ExplainContext(torch_version="2.13.0+cpu", nvidia_gpu_present=True)
    assert diagnose_cuda_unavailable(ctx, None).fix == INSTALL_CMD_HINT


# --- known error texts --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "says"),
    [
        pytest.param(
            "CUDA error: no kernel image is available for execution on the device\nCUDA kernel "
            "errors might be asynchronously reported at some other API call",
            "architecture is missing",
            id="no-kernel-image",
        ),
        pytest.param(
            "OutOfMemoryError CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 15.78 GiB "
            "total capacity; 14.21 GiB already allocated)",
            "ran out of memory",
            id="oom",
        ),
        pytest.param("CUDA error: invalid device ordinal", "does not exist", id="ordinal"),
        pytest.param(
            "The NVIDIA driver on your system is too old (found version 11040).",
            "driver is older",
            id="driver-too-old",
        ),
        pytest.param(
            "AssertionError Torch not compiled with CUDA enabled", "CPU-only", id="cpu-build"
        ),
        pytest.param(
            "CUDA error: CUDA-capable device(s) is/are busy or unavailable",
            "compute mode",
            id="busy",
        ),
        pytest.param(
            "CUDA error: an illegal memory access was encountered", "hardware", id="illegal-access"
        ),
        pytest.param(
            "OSError libcudnn.so.9: cannot open shared object file", "cuDNN", id="cudnn-missing"
        ),
    ],
)
def test_known_error_texts(text: str, says: str) -> None:
    known = explain_error_text(text, H100_DRIVER)
    assert known is not None
    explanation, fix = known
    assert says in explanation
    assert fix


def test_unknown_error_text() -> None:
    assert explain_error_text("something nobody has seen", H100_DRIVER) is None


# --- whole results ------------------------------------------------------------------------------


def _result(name: str, status: CheckStatus, message: str, **extra: object) -> CheckResult:
    return CheckResult(name=name, status=status, duration_s=1.0, message=message, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("result", "explanation_says", "fix_says"),
    [
        pytest.param(
            _result("device", CheckStatus.TIMEOUT, "no result within 90 s"),
            "stopped answering",
            "nvidia-smi",
            id="device-hang",
        ),
        pytest.param(
            _result("backprop.training", CheckStatus.TIMEOUT, "no result within 30 s"),
            "did not finish",
            "--timeout",
            id="cpu-hang",
        ),
        pytest.param(
            _result(
                "module.state_dict",
                CheckStatus.FAIL,
                "the worker was killed by SIGKILL during this check",
                error_type="WorkerDied",
            ),
            "out-of-memory killer",
            "dmesg",
            id="oom-killer",
        ),
        pytest.param(
            _result(
                "linear.float32",
                CheckStatus.FAIL,
                "the worker was killed by SIGSEGV during this check",
                error_type="WorkerDied",
            ),
            "crashed in native code",
            "collect_env",
            id="segfault",
        ),
        pytest.param(
            _result("linear.bfloat16", CheckStatus.FAIL, "bfloat16 x @ W + b is off by 0.3"),
            "wrong values",
            "dcgmi",
            id="wrong-values",
        ),
        pytest.param(
            _result("tensors.from_numpy", CheckStatus.FAIL, "from_numpy does not share memory"),
            "broken or mixed install",
            INSTALL,
            id="api-misbehaves",
        ),
        pytest.param(
            _result("speed.matmul.bfloat16", CheckStatus.WARN, "only 35 % of the expected"),
            "well below",
            "--burn",
            id="slow",
        ),
        pytest.param(
            _result(
                "speed.matmul.float32",
                CheckStatus.FAIL,
                "CUDA out of memory. Tried to allocate 256.00 MiB",
                error_type="OutOfMemoryError",
            ),
            "ran out of memory",
            "nvidia-smi",
            id="oom-exception",
        ),
        pytest.param(
            _result(
                "device",
                CheckStatus.FAIL,
                "this torch build has no code for sm_61",
                measured={
                    "requested": "auto",
                    "arch": "sm_61",
                    "arch_in_build": "missing",
                    "compute_capability": "6.1",
                },
            ),
            "no code for sm_61",
            INSTALL,
            id="arch-missing",
        ),
        pytest.param(
            _result(
                "device",
                CheckStatus.FAIL,
                "mps requested but torch.backends.mps.is_available() is False",
                measured={"requested": "mps"},
            ),
            "macOS",
            "--device cpu",
            id="mps-missing",
        ),
    ],
)
def test_explain_result(result: CheckResult, explanation_says: str, fix_says: str) -> None:
    ctx = ExplainContext(
        torch_version="2.11.0+cu130",
        torch_cuda="13.0",
        install_command=INSTALL,
        device_info={"device": "cuda:0"},
    )
    explained = explain_result(result, ctx)
    assert explained.explanation is not None
    assert explanation_says in explained.explanation
    assert explained.fix is not None
    assert fix_says in explained.fix


def test_passing_results_get_no_explanation() -> None:
    result = _result("linear.float32", CheckStatus.PASS, "ok")
    assert explain_result(result, H100_DRIVER) is result


CPU_ONLY = ExplainContext(torch_version="2.13.0+cpu", nvidia_gpu_present=False)


@pytest.mark.parametrize(
    ("ctx", "result", "says", "fix_says", "never"),
    [
        pytest.param(
            replace(CPU_ONLY, device_info={"requested": "auto"}),
            _result("device", CheckStatus.TIMEOUT, "no result", measured={"timeout_s": 90.0}),
            "overloaded",
            "`top`",
            ("GPU", "nvidia-smi", "driver"),
            id="device-hang-on-a-cpu-only-machine",
        ),
        pytest.param(
            replace(CPU_ONLY, device_info={"requested": "cpu", "device": "cpu"}),
            _result("speed.matmul.float16", CheckStatus.TIMEOUT, "no result"),
            "did not finish in time",
            "--timeout",
            ("GPU", "nvidia-smi", "speed.matmul.float16", "on cpu"),
            id="cpu-hang-does-not-repeat-the-name",
        ),
        pytest.param(
            replace(H100_DRIVER, device_info={"requested": "auto"}),
            _result("device", CheckStatus.TIMEOUT, "no result", measured={"timeout_s": 2.0}),
            "2 s that --timeout allowed, less than the 90 s",
            "rerun without --timeout",
            ("nvidia-smi -r",),
            id="timeout-shorter-than-the-built-in-limit",
        ),
        pytest.param(
            replace(H100_DRIVER, device_info={"requested": "auto"}),
            _result("device", CheckStatus.TIMEOUT, "no result", measured={"timeout_s": 90.0}),
            "the GPU or its driver stopped answering",
            "nvidia-smi -r",
            ("device did not finish",),
            id="device-hang-with-an-nvidia-gpu",
        ),
    ],
)
def test_a_timeout_is_explained_for_the_device_and_limit_it_had(
    ctx: ExplainContext, result: CheckResult, says: str, fix_says: str, never: tuple[str, ...]
) -> None:
    explained = explain_result(result, ctx)
    assert explained.explanation is not None
    assert explained.fix is not None
    assert says in explained.explanation
    assert fix_says in explained.fix
    for words in never:
        assert words not in explained.explanation + explained.fix
