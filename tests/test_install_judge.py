"""Does the installed torch fit the machine? Table-driven over recorded machines.

The installed torch comes from the text of ``torch/version.py`` as each build writes it
(``__version__ = '2.11.0+cu130'``, ``cuda = '13.0'``); the recorded machines had 2.11.0+cu130.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from msgspec import Struct

from dlready.install import explain_no_command, judge_installed_torch, recommended_command_line
from dlready.model import MachineSnapshot, TorchInstall
from dlready.probes.torch_meta import torch_install_from_version_py
from machines import replay_snapshot
from scenarios_gpu import (
    NVML_FAILURES,
    RX_7900_XTX_DESKTOP_FILES,
    library_not_found,
    nvidia_scenario,
    old_driver_2080_ti,
)

SITE = "/usr/lib/python3/site-packages/torch"


def torch_build(version: str, cuda: str | None = None, hip: str | None = None) -> TorchInstall:
    """A torch install as its ``torch/version.py`` describes it."""
    text = f"__version__ = '{version}'\ncuda = {cuda!r}\nhip = {hip!r}\n"
    return torch_install_from_version_py(text, SITE)


CU130_2_11 = torch_build("2.11.0+cu130", cuda="13.0")
CPU_2_11 = torch_build("2.11.0+cpu")


def h100(torch: TorchInstall | None = None) -> Callable[[], MachineSnapshot]:
    return lambda: replay_snapshot("h100-80gb-hbm3", torch=torch)


def nvidia(scenario: str, torch: TorchInstall) -> Callable[[], MachineSnapshot]:
    return lambda: replay_snapshot(
        "h100-80gb-hbm3", nvml=nvidia_scenario(scenario).replay(), torch=torch
    )


def cpu_vm(torch: TorchInstall | None = None) -> Callable[[], MachineSnapshot]:
    return lambda: replay_snapshot("cpu-only-epyc-vm", torch=torch)


def amd_desktop(torch: TorchInstall) -> Callable[[], MachineSnapshot]:
    return lambda: replay_snapshot(
        "cpu-only-epyc-vm",
        nvml=library_not_found(),
        files_extra=dict(RX_7900_XTX_DESKTOP_FILES),
        torch=torch,
    )


class Case(Struct, frozen=True):
    build: Callable[[], MachineSnapshot]
    status: str
    problems: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    fix: str | None = None
    """The exact fix command, or "" for "no fix command"."""


CU = "https://download.pytorch.org/whl/"

CASES = [
    pytest.param(Case(h100(), "fits", fix=""), id="h100-as-recorded-2.11.0+cu130-fits"),
    pytest.param(
        Case(h100(torch_build("2.11.0", cuda="13.0")), "fits"),
        id="pypi-build-without-local-version-read-from-cuda-version",
    ),
    pytest.param(
        Case(
            h100(CPU_2_11),
            "mismatch",
            problems=("CPU build on a machine with an NVIDIA GPU",),
            fix="pip install torch==2.11.0+cu130 torchvision==0.26.0+cu130 "
            f"torchaudio==2.11.0+cu130 --index-url {CU}cu130",
        ),
        id="cpu-build-on-nvidia-fix-keeps-the-version-with-local-pins",
    ),
    pytest.param(
        Case(
            nvidia("gtx-1060-laptop", CU130_2_11),
            "mismatch",
            problems=("needs NVIDIA driver >= 580", "compute capability 6.1) is not in the arch"),
            fix="pip install torch==2.11.0+cu126 torchvision==0.26.0+cu126 "
            f"torchaudio==2.11.0+cu126 --index-url {CU}cu126",
        ),
        id="gtx-1060-with-cu130-driver-too-old-and-sm61-missing",
    ),
    pytest.param(
        Case(
            nvidia("gtx-1060-laptop", torch_build("2.11.0+cu126", cuda="12.6")),
            "fits",
            warnings=("minor-version compatibility",),
        ),
        id="gtx-1060-with-cu126-fits-by-minor-compat",
    ),
    pytest.param(
        Case(nvidia("rtx-2080-ti-desktop", CU130_2_11), "fits"),
        id="rtx-2080-ti-sm75-in-cu130",
    ),
    pytest.param(
        Case(
            lambda: replay_snapshot("h100-80gb-hbm3", nvml=old_driver_2080_ti(), torch=CU130_2_11),
            "mismatch",
            problems=("needs NVIDIA driver >= 580", "no install command fits either"),
            fix="",
        ),
        id="driver-455-fits-no-current-build-and-says-so",
    ),
    pytest.param(
        Case(
            h100(torch_build("2.6.0+cu118", cuda="11.8")),
            "fits",
            warnings=("not confirmed by",),
        ),
        id="arch-list-marked-unconfirmed-warns",
    ),
    pytest.param(
        Case(
            h100(torch_build("2.9.1+rocm6.4", hip="6.4.43482")),
            "mismatch",
            problems=("ROCm build on a machine with an NVIDIA GPU",),
        ),
        id="rocm-build-on-nvidia",
    ),
    pytest.param(
        Case(
            h100(torch_build("2.15.0+cu130", cuda="13.0")),
            "unknown",
            problems=("not in the compatibility table",),
        ),
        id="release-newer-than-the-table-is-unknown-not-fits",
    ),
    pytest.param(
        Case(
            cpu_vm(),
            "not_installed",
            problems=("not installed",),
            fix=f"pip install torch==2.14.1 torchvision==0.29.1 --index-url {CU}cpu",
        ),
        id="not-installed-gets-the-recommended-command",
    ),
    pytest.param(Case(cpu_vm(torch_build("2.13.0+cpu")), "fits"), id="cpu-build-on-cpu-vm"),
    pytest.param(
        Case(cpu_vm(CU130_2_11), "fits", warnings=("runs on the CPU only",)),
        id="cuda-build-without-gpu-works-but-warns",
    ),
    pytest.param(
        Case(
            cpu_vm(torch_build("2.9.1+rocm6.4", hip="6.4.43482")),
            "mismatch",
            problems=("no AMD GPU",),
        ),
        id="rocm-build-without-amd-gpu",
    ),
    pytest.param(
        Case(amd_desktop(torch_build("2.9.1+rocm6.4", hip="6.4.43482")), "fits", warnings=("gfx",)),
        id="rocm-build-on-amd",
    ),
    pytest.param(
        Case(
            amd_desktop(CPU_2_11),
            "mismatch",
            problems=("ROCm build exists",),
            fix="pip install torch==2.11.0+rocm7.2 torchvision==0.26.0+rocm7.2 "
            f"torchaudio==2.11.0+rocm7.2 --index-url {CU}rocm7.2",
        ),
        id="cpu-build-on-linux-amd",
    ),
    pytest.param(
        Case(
            amd_desktop(CU130_2_11), "mismatch", problems=("CUDA build on a machine with an AMD",)
        ),
        id="cuda-build-on-amd",
    ),
    pytest.param(
        Case(
            lambda: replay_snapshot(
                "h100-80gb-hbm3",
                nvml=next(f for f in NVML_FAILURES if f.id == "driver-not-loaded").backend(),
                torch=CU130_2_11,
            ),
            "unknown",
            problems=("driver stack could not be read",),
        ),
        id="cuda-build-with-a-broken-driver-is-unknown",
    ),
]


# The recorded H100 server (torch 2.11.0+cu130) where PyTorch publishes no such wheel: on a
# FreeBSD host (NVIDIA ships a FreeBSD driver with NVML), on an IBM POWER host (ppc64le), and
# under Python 3.8, older than the 3.10 torch 2.11.0 needs; that torch was built from source.
NO_WHEEL_CASES = [
    pytest.param(
        {"system": "FreeBSD"},
        "PyTorch publishes no wheels for this operating system",
        id="freebsd",
    ),
    pytest.param(
        {"machine": "ppc64le"}, "PyTorch publishes no wheels for linux-ppc64le", id="ppc64le"
    ),
    pytest.param(
        {"python_version": "3.8.10"},
        "PyTorch publishes no torch 2.11.0 wheels for Python 3.8",
        id="python-outside-the-release-range",
    ),
]


@pytest.mark.parametrize(("host", "reason"), NO_WHEEL_CASES)
def test_no_published_wheel_is_named_as_the_reason_not_a_missing_arch_list(
    host: dict[str, str], reason: str
) -> None:
    fit = judge_installed_torch(replay_snapshot("h100-80gb-hbm3", host_overrides=host))
    assert fit.status == "unknown", fit
    problems = "\n".join(fit.problems)
    assert reason in problems, problems
    assert "is not in the table" not in problems


@pytest.mark.parametrize(
    ("build", "reason"),
    [
        pytest.param(h100(), None, id="h100-has-a-command"),
        pytest.param(
            lambda: replay_snapshot(
                "h100-80gb-hbm3", host_overrides={"python_version": "3.15.0a1"}
            ),
            "PyTorch publishes no stable wheels for Python 3.15",
            id="python-3.15-alpha",
        ),
        pytest.param(
            lambda: replay_snapshot("h100-80gb-hbm3", host_overrides={"system": "FreeBSD"}),
            "PyTorch publishes no wheels for this operating system",
            id="freebsd",
        ),
        pytest.param(
            lambda: replay_snapshot("h100-80gb-hbm3", nvml=old_driver_2080_ti()),
            "update the NVIDIA driver to >= 525.60.13",
            id="driver-455-too-old",
        ),
    ],
)
def test_explain_no_command_says_why_there_is_none(
    build: Callable[[], MachineSnapshot], reason: str | None
) -> None:
    snapshot = build()
    explanation = explain_no_command(snapshot)
    command = recommended_command_line(snapshot)
    if reason is None:
        assert explanation is None
        assert command is not None
    else:
        assert command is None
        assert explanation is not None
        assert reason in explanation, explanation


@pytest.mark.parametrize("case", CASES)
def test_judge_installed_torch(case: Case) -> None:
    fit = judge_installed_torch(case.build())
    assert fit.status == case.status, fit
    problems = "\n".join(fit.problems)
    for text in case.problems:
        assert text in problems, problems
    warnings = "\n".join(fit.warnings)
    for text in case.warnings:
        assert text in warnings, warnings
    if case.fix == "":
        assert fit.fix_command is None
    elif case.fix is not None:
        assert fit.fix_command == case.fix


def test_variant_and_its_source_are_reported() -> None:
    fit = judge_installed_torch(h100(torch_build("2.11.0", cuda="13.0"))())
    assert (fit.version, fit.variant) == ("2.11.0", "cu130")
    assert fit.to_jsonable()["status"] == "fits"


@pytest.mark.parametrize(
    ("build", "command"),
    [
        pytest.param(
            h100(),
            f"pip install torch==2.14.1 torchvision==0.29.1 --index-url {CU}cu130",
            id="h100",
        ),
        pytest.param(
            nvidia("gtx-1060-laptop", CU130_2_11),
            f"pip install torch==2.14.1 torchvision==0.29.1 --index-url {CU}cu126",
            id="gtx-1060-laptop",
        ),
        pytest.param(
            cpu_vm(),
            f"pip install torch==2.14.1 torchvision==0.29.1 --index-url {CU}cpu",
            id="cpu-vm",
        ),
        pytest.param(
            lambda: replay_snapshot("h100-80gb-hbm3", nvml=old_driver_2080_ti()),
            None,
            id="no-fit-is-none",
        ),
    ],
)
def test_recommended_command_line(
    build: Callable[[], MachineSnapshot], command: str | None
) -> None:
    assert recommended_command_line(build()) == command


@pytest.mark.parametrize(
    ("version", "cuda", "hip", "expected"),
    [
        ("2.5.1+cu121", "12.1", None, "cu121"),
        ("2.5.1+CPU", None, None, "cpu"),
        ("2.4.0+rocm6.1", None, "6.1.40091-a8dbc0c19", "rocm6.1"),
        ("2.9.0", "12.8", None, "cu128"),
        ("2.9.0", "12.6.3", None, "cu126"),  # a three-part CUDA version is still cu126
        ("2.9.0", None, "6.4.43482-0f2d60242", "rocm6.4"),
        ("2.9.0+xpu", None, None, "xpu"),
        ("2.9.0", None, None, None),
        (None, None, None, None),
    ],
)
def test_one_build_variant_rule(
    version: str | None, cuda: str | None, hip: str | None, expected: str | None
) -> None:
    """The probe and the judge derive the build with one function."""
    from dlready.probes.torch_meta import build_variant

    assert build_variant(version, cuda, hip) == expected
