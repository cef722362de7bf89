"""Table-driven tests of every planner rule (docs/install-cmd.md, "Rules").

Machines are described by spec-sheet facts: compute capabilities from NVIDIA's "CUDA GPUs"
table (GTX 1060 6.1, V100 7.0, RTX 2080 Ti 7.5, A100 8.0, RTX 3090 8.6, RTX 4090 8.9,
H100/GH200 9.0, RTX 5090 12.0, Jetson Orin 8.7, Tesla K80 3.7) and released driver versions
(580.159.04 and 545.23.06 are the recorded machines' drivers; 470.57.02, 550.54.14, 560.94,
526.98, 595.45.04 and 580.65.06 are NVIDIA releases named in cuda_driver.json or public
nvidia-smi output; Jetson Orin's L4T R36.4 driver reports 540.4.0).
"""

from __future__ import annotations

from typing import Any

import pytest
from msgspec import Struct, field
from msgspec.structs import replace

from dlready.install import (
    CompatTable,
    InstallWishes,
    MachineFacts,
    PlanError,
    load_compat_table,
    plan_install,
)
from dlready.install.facts import DETECTED, GIVEN, IMPLIED, UNSUPPORTED_OS_DETAIL, Fact, unknown
from dlready.install.plan import DriverSupport


def machine(
    os: str = "linux",
    arch: str = "x86_64",
    python: str = "3.12",
    accelerator: str = "cuda",
    driver: str | None = None,
    cc: tuple[str, ...] = (),
    wsl: bool = False,
    accelerator_origin: str = GIVEN,
) -> MachineFacts:
    """A machine described by flags (origin ``given``) unless stated otherwise."""
    return MachineFacts(
        os=Fact(os, GIVEN),
        arch=Fact(arch, GIVEN),
        python=Fact(python, GIVEN),
        accelerator=Fact(accelerator, accelerator_origin),
        driver_version=Fact(driver, GIVEN) if driver else unknown("not given"),
        compute_capabilities=Fact(cc, GIVEN) if cc else unknown("not given"),
        is_wsl=Fact(wsl, DETECTED),
    )


class Rule(Struct, frozen=True):
    """One rule case: a machine, a wish, and what the plan must (not) contain."""

    facts: MachineFacts
    wishes: InstallWishes = field(default_factory=InstallWishes)
    torch: str | None = None
    variant: str | None = None
    command: str | None = None
    """The exact command line, when the case pins it."""
    contains: tuple[str, ...] = ()
    """Substrings of the command line."""
    warns: tuple[str, ...] = ()
    """Substrings that must appear in some warning."""
    no_warning: tuple[str, ...] = ()
    """Substrings that must appear in no warning."""
    notes: tuple[str, ...] = ()
    """Substrings of the research notes behind a "not confirmed" warning (``research_notes``)."""
    reasons: tuple[str, ...] = ()


NEWEST = "2.14.1"
JARGON = (
    "UNCONFIRMED",
    "stored corpora",
    "matrix.json",
    "cuda_driver.json",
    "ARCH-COMPAT.md",
    "SOURCES.md",
    "SEED.md",
    "shared/",
)
"""Research words and unshipped files that people must never be shown (issue 7, item 5)."""
CU = "https://download.pytorch.org/whl/"

PLAN_RULES = [
    # --- NVIDIA: compute capability first, then the newest CUDA the driver supports ---------
    pytest.param(
        Rule(
            machine(driver="580.159.04", cc=("9.0",)),
            torch=NEWEST,
            variant="cu130",
            command=f"pip install torch==2.14.1 torchvision==0.29.1 --index-url {CU}cu130",
            reasons=("covers compute capability 9.0", "fully supports"),
        ),
        id="h100-recorded-driver-gets-cu130",
    ),
    pytest.param(
        Rule(machine(driver="595.45.04", cc=("9.0",)), variant="cu132"),
        id="h100-driver-595-gets-newest-cu132",
    ),
    pytest.param(
        Rule(
            machine(driver="595.45.04", cc=("9.0",)), InstallWishes(torch="2.13.0"), variant="cu130"
        ),
        id="experimental-cu132-of-2.13-ranks-below-stable-cu130",
    ),
    pytest.param(
        Rule(machine(driver="580.159.04", cc=("6.1",)), variant="cu126"),
        id="gtx-1060-only-legacy-cu126-has-sm60",
    ),
    pytest.param(
        Rule(
            machine(driver="545.23.06", cc=("6.1",)),
            variant="cu126",
            warns=("minor-version compatibility", "560.28.03"),
        ),
        id="gtx-1060-laptop-driver-545-runs-cu126-by-minor-compat",
    ),
    pytest.param(
        Rule(
            machine(driver="580.159.04", cc=("7.0",)),
            InstallWishes(torch="2.11.0"),
            variant="cu126",
        ),
        id="volta-on-2.11-only-cu126-cu128-dropped-sm70",
    ),
    pytest.param(
        Rule(
            machine(driver="580.159.04", cc=("7.0",)),
            InstallWishes(torch="2.10.0"),
            variant="cu128",
        ),
        id="volta-on-2.10-cu128-still-has-sm70",
    ),
    pytest.param(
        Rule(machine(driver="580.65.06", cc=("12.0",)), variant="cu130"),
        id="rtx-5090-needs-sm120-cu130",
    ),
    pytest.param(
        Rule(
            machine(driver="570.26", cc=("12.0",)),
            InstallWishes(torch="2.6.0"),
            variant="cu124",
            warns=("only through PTX",),
        ),
        id="rtx-5090-on-2.6-only-ptx-of-cu124-warns",
    ),
    pytest.param(
        Rule(machine(driver="580.159.04", cc=("6.1", "9.0")), variant="cu126"),
        id="every-gpu-must-be-covered-gtx1060-plus-h100",
    ),
    pytest.param(
        Rule(machine(driver="580.159.04", cc=("8.9",) * 4), variant="cu130"),
        id="four-rtx-4090-ada-runs-sm86-cubins",
    ),
    pytest.param(
        Rule(
            machine(cc=("8.6",)),
            variant="cu130",
            warns=("NVIDIA driver unknown", ">= 580"),
            reasons=("default CUDA build",),
        ),
        id="driver-unknown-takes-the-release-default-cuda",
    ),
    pytest.param(
        Rule(
            machine(driver="580.159.04"),
            variant="cu130",
            warns=("compute capability unknown", "sm_75"),
        ),
        id="compute-capability-unknown-warns-with-the-arch-list",
    ),
    pytest.param(
        Rule(
            machine(driver="526.98", cc=("8.6",), wsl=True),
            InstallWishes(torch="2.6.0"),
            variant="cu118",
            reasons=("WSL2",),
        ),
        id="wsl2-uses-the-linux-wheels-with-the-windows-driver",
    ),
    pytest.param(
        Rule(
            machine(driver="526.98", cc=("8.6",)),
            InstallWishes(torch="2.8.0"),
            variant="cu128",
            warns=("minor-version compatibility",),
        ),
        id="linux-driver-526-runs-12x-by-minor-compat-stable-before-experimental-cu129",
    ),
    pytest.param(
        Rule(
            machine(driver="565.57.01", cc=("8.6",)), InstallWishes(torch="2.8.0"), variant="cu126"
        ),
        id="full-driver-support-ranks-above-a-newer-minor-compat-cuda",
    ),
    pytest.param(
        Rule(
            machine(python="3.10", driver="580.65.06", cc=("3.7",)),
            InstallWishes(torch="2.7.1", variant="cu126"),
            variant="cu126",
            warns=("probably has no kernels for compute capability 3.7", "not confirmed by"),
            notes=("UNCONFIRMED",),
        ),
        id="explicit-variant-missing-the-gpu-by-an-unconfirmed-arch-list-only-warns",
    ),
    # --- Linux aarch64 ---------------------------------------------------------------------
    pytest.param(
        Rule(
            machine(arch="aarch64", driver="580.65.06", cc=("9.0",)),
            variant="cu130",
            contains=(f"--index-url {CU}cu130",),
        ),
        id="gh200-aarch64-gets-the-sbsa-cu130-wheels",
    ),
    pytest.param(
        Rule(
            machine(arch="aarch64", driver="580.65.06", cc=("11.0",)),
            variant="cu130",
            reasons=("covers compute capability 11.0",),
        ),
        id="jetson-thor-sm110-is-named-in-the-cu130-sbsa-arch-list",
    ),
    pytest.param(
        Rule(
            machine(arch="aarch64", accelerator="cpu"),
            variant="cpu",
            contains=(f"--index-url {CU}cpu",),
            warns=("not confirmed by",),
            notes=("UNCONFIRMED",),
        ),
        id="aarch64-cpu-2.14-uses-the-cpu-index-unconfirmed",
    ),
    pytest.param(
        Rule(
            machine(arch="aarch64", accelerator="cpu"),
            InstallWishes(torch="2.10.0"),
            command="pip install torch==2.10.0 torchvision==0.25.0 torchaudio==2.10.0",
        ),
        id="aarch64-cpu-before-2.11-is-plain-pypi",
    ),
    # --- no GPU / Windows ------------------------------------------------------------------
    pytest.param(
        Rule(
            machine(accelerator="cpu"),
            variant="cpu",
            command=f"pip install torch==2.14.1 torchvision==0.29.1 --index-url {CU}cpu",
            reasons=("multi-GB cu130",),
        ),
        id="linux-without-gpu-uses-the-cpu-index-not-pypi-cuda",
    ),
    pytest.param(
        Rule(
            machine(os="windows", driver="560.94", cc=("8.6",)),
            variant="cu126",
            contains=(f"--index-url {CU}cu126",),
            reasons=("Windows: PyPI",),
        ),
        id="windows-cuda-only-through-the-index-url",
    ),
    pytest.param(
        Rule(
            machine(os="windows", accelerator="cpu"),
            variant="cpu",
            contains=(f"--index-url {CU}cpu",),
        ),
        id="windows-cpu",
    ),
    # --- the book's era ----------------------------------------------------------------------
    pytest.param(
        Rule(
            machine(os="windows", python="3.8"),
            InstallWishes(torch="1.7.1", variant="cu102"),
            command="pip install torch===1.7.1 torchvision===0.8.2 torchaudio===0.7.2 "
            "-f https://download.pytorch.org/whl/torch_stable.html",
            warns=("not confirmed by",),
            notes=("SEED.md",),
        ),
        id="book-command-1.7.1-windows-cu102",
    ),
    pytest.param(
        Rule(
            machine(os="windows", python="3.8", driver="460.89", cc=("6.1",)),
            InstallWishes(torch="1.7.1"),
            command="pip install torch==1.7.1+cu110 torchvision==0.8.2+cu110 torchaudio==0.7.2 "
            "-f https://download.pytorch.org/whl/torch_stable.html",
        ),
        id="book-era-windows-gtx1060-gets-local-version-pins",
    ),
    pytest.param(
        Rule(
            machine(python="3.8"),
            InstallWishes(torch="1.7.1", variant="cu102"),
            command="pip install torch==1.7.1 torchvision==0.8.2 torchaudio==0.7.2",
        ),
        id="book-era-linux-cu102-was-the-pypi-default",
    ),
    # --- macOS -------------------------------------------------------------------------------
    pytest.param(
        Rule(
            MachineFacts(
                os=Fact("macos", GIVEN, "--os"),
                arch=Fact("arm64", IMPLIED, "by --os macos: Apple silicon assumed"),
                python=Fact("3.12", DETECTED),
                accelerator=Fact("cpu", DETECTED),
            ),
            torch=NEWEST,
            command="pip install torch==2.14.1 torchvision==0.29.1",
            reasons=("arch arm64, implied by --os macos",),
        ),
        id="implied-arch-is-explained",
    ),
    pytest.param(
        Rule(
            machine(os="macos", arch="arm64", accelerator="mps"),
            variant="default",
            command="pip install torch==2.14.1 torchvision==0.29.1",
            reasons=("MPS",),
        ),
        id="apple-silicon-default-wheels-with-mps",
    ),
    pytest.param(
        Rule(
            machine(os="macos", python="3.11", accelerator="cpu"),
            torch="2.2.2",
            command="pip install torch==2.2.2 torchvision==0.17.2 torchaudio==2.2.2",
            warns=("last release with macOS x86_64",),
        ),
        id="intel-mac-gets-the-last-release-2.2.2-with-a-warning",
    ),
    pytest.param(
        Rule(
            machine(os="macos", arch="arm64", accelerator="cuda", accelerator_origin=DETECTED),
            variant="default",
            warns=("does not apply",),
        ),
        id="detected-cuda-does-not-apply-to-macos",
    ),
    # --- AMD -----------------------------------------------------------------------------------
    pytest.param(
        Rule(
            machine(accelerator="rocm"),
            variant="rocm7.14",
            contains=(f"--index-url {CU}rocm7.14",),
            warns=("gfx",),
        ),
        id="amd-on-linux-gets-the-rocm-wheels",
    ),
    pytest.param(
        Rule(
            machine(accelerator="rocm"),
            InstallWishes(torch="2.14.0"),
            variant="rocm7.14",
            warns=("not confirmed by",),
            notes=("meta-package",),
        ),
        id="rocm-plan-surfaces-the-rocm-unconfirmed-note",
    ),
    pytest.param(
        Rule(
            machine(os="windows", accelerator="rocm", accelerator_origin=DETECTED),
            variant="cpu",
            warns=("Linux x86_64 only",),
        ),
        id="detected-amd-on-windows-falls-back-to-cpu-with-a-warning",
    ),
    # --- managers ------------------------------------------------------------------------------
    pytest.param(
        Rule(
            machine(driver="580.159.04", cc=("9.0",)),
            InstallWishes(manager="uv"),
            command=f"uv pip install torch==2.14.1 torchvision==0.29.1 --index-url {CU}cu130",
            reasons=("uv: the pins and index of the published pip command",),
        ),
        id="uv-pip-install-with-the-published-pins",
    ),
    pytest.param(
        Rule(
            machine(python="3.8"),
            InstallWishes(torch="1.7.1", variant="cu110", manager="uv"),
            command="uv pip install torch==1.7.1+cu110 torchvision==0.8.2+cu110 torchaudio==0.7.2 "
            "-f https://download.pytorch.org/whl/torch_stable.html",
        ),
        id="uv-1.7.1-cu110-torchaudio-has-no-local-version",
    ),
    pytest.param(
        Rule(
            machine(python="3.8"),
            InstallWishes(torch="1.9.0", variant="cu111", manager="uv"),
            contains=("torchaudio==0.9.0 ", "torch==1.9.0+cu111 "),
        ),
        id="uv-1.9.0-cu111-torchaudio-has-no-local-version",
    ),
    pytest.param(
        Rule(
            machine(os="windows", python="3.8"),
            InstallWishes(torch="1.7.1", variant="cu102", manager="uv"),
            command="uv pip install torch==1.7.1 torchvision==0.8.2 torchaudio==0.7.2 "
            "-f https://download.pytorch.org/whl/torch_stable.html",
        ),
        id="uv-1.7.1-windows-cu102-default-build-has-no-local-version",
    ),
    pytest.param(
        Rule(
            machine(os="windows", python="3.8"),
            InstallWishes(torch="1.7.1", variant="cu102", pin_local_versions=True),
            command="pip install torch===1.7.1 torchvision===0.8.2 torchaudio===0.7.2 "
            "-f https://download.pytorch.org/whl/torch_stable.html --force-reinstall",
        ),
        id="replacing-a-find-links-build-without-local-versions-forces-the-reinstall",
    ),
    pytest.param(
        Rule(
            machine(python="3.11", driver="550.54.14", cc=("8.6",)),
            InstallWishes(torch="2.5.1", manager="conda"),
            command="conda install pytorch==2.5.1 torchvision==0.20.1 torchaudio==2.5.1 "
            "pytorch-cuda=12.4 -c pytorch -c nvidia",
        ),
        id="conda-2.5.1-the-last-official-conda-release",
    ),
    pytest.param(
        Rule(
            machine(python="3.8", driver="460.89", cc=("7.5",)),
            InstallWishes(torch="1.8.2", manager="conda"),
            contains=("cudatoolkit=11.1", "-c pytorch-lts -c nvidia"),
        ),
        id="conda-1.8.2-lts-channel",
    ),
    pytest.param(
        Rule(
            machine(python="3.10", driver="515.43.04", cc=("8.6",)),
            InstallWishes(torch="2.0.1", pin_local_versions=True),
            variant="cu117",
            command="pip install torch==2.0.1 torchvision==0.15.2 torchaudio==2.0.2 "
            "--force-reinstall",
        ),
        id="replacing-a-build-from-plain-pypi-forces-the-reinstall",
    ),
    pytest.param(
        Rule(
            machine(driver="580.159.04", cc=("9.0",)),
            InstallWishes(torch="2.11.0", pin_local_versions=True),
            command="pip install torch==2.11.0+cu130 torchvision==0.26.0+cu130 "
            f"torchaudio==2.11.0+cu130 --index-url {CU}cu130",
        ),
        id="replacing-a-build-from-an-index-pins-local-versions",
    ),
    # --- releases and Python -------------------------------------------------------------------
    pytest.param(
        Rule(machine(python="3.6", accelerator="cpu"), torch="1.10.2"),
        id="python-3.6-gets-the-newest-release-for-it-not-the-lts",
    ),
    pytest.param(
        Rule(
            machine(python="3.13", accelerator="cpu"),
            InstallWishes(torch="2.5.1"),
            torch="2.5.1",
            warns=("experimental",),
        ),
        id="experimental-python-of-a-pinned-release-warns",
    ),
    pytest.param(
        Rule(
            machine(accelerator="cpu"),
            InstallWishes(torch="2.5"),
            torch="2.5.1",
            reasons=("newest 2.5.x",),
        ),
        id="torch-series-means-its-newest-patch",
    ),
    pytest.param(
        Rule(
            machine(accelerator="cpu"),
            InstallWishes(torch="2"),
            torch=NEWEST,
            reasons=("--torch 2 means the newest 2.x release",),
        ),
        id="torch-major-means-its-newest-release-not-1.13.1",
    ),
    pytest.param(
        Rule(
            machine(python="3.8", accelerator="cpu"),
            InstallWishes(torch="2"),
            torch="2.4.1",
            reasons=("newest 2.x release for Python 3.8",),
        ),
        id="torch-major-means-its-newest-release-for-this-python",
    ),
    pytest.param(
        Rule(
            machine(accelerator="cpu"),
            InstallWishes(torch="2.5.1.0"),
            torch="2.5.1",
            reasons=("trailing zeros",),
        ),
        id="torch-with-trailing-zero-is-that-release-pep440",
    ),
    pytest.param(
        Rule(
            machine(python="3.11", accelerator="cpu"),
            InstallWishes(torch="2.11.0"),
            contains=("torchaudio==2.11.0",),
        ),
        id="default-packages-include-torchaudio-while-it-exists",
    ),
    pytest.param(
        Rule(
            machine(accelerator="cpu"),
            InstallWishes(torch="2.12.0"),
            contains=("torchvision==0.27.0",),
            reasons=("torchaudio left out",),
        ),
        id="default-packages-drop-torchaudio-after-2.11",
    ),
    pytest.param(
        Rule(
            machine(python="3.11", accelerator="cpu"),
            InstallWishes(torch="2.0.0", packages=("torch",)),
            command=f"pip install torch==2.0.0 --index-url {CU}cpu",
        ),
        id="packages-flag-limits-the-packages",
    ),
    # --- UNCONFIRMED data surfaces as warnings ---------------------------------------------
    pytest.param(
        Rule(
            machine(driver="580.159.04", cc=("9.0",)),
            warns=("not confirmed by", "https://pytorch.org/get-started/", "2026-11-27"),
            notes=("UNCONFIRMED",),
        ),
        id="newest-2.14.1-is-unconfirmed-and-says-so",
    ),
    pytest.param(
        Rule(
            machine(driver="580.159.04", cc=("9.0",)),
            InstallWishes(torch="2.12.1"),
            variant="cu130",
            no_warning=("not confirmed",),
        ),
        id="confirmed-2.12.1-cu130-linux-has-no-unconfirmed-warning",
    ),
    pytest.param(
        Rule(
            machine(os="windows", driver="581.80", cc=("8.9",)),
            InstallWishes(torch="2.12.1"),
            variant="cu130",
            warns=("not confirmed by NVIDIA's CUDA Toolkit release notes",),
            notes=("uv's threshold",),
        ),
        id="windows-13x-driver-floor-is-unconfirmed",
    ),
]


@pytest.mark.parametrize("rule", PLAN_RULES)
def test_plan_rule(rule: Rule) -> None:
    plan = plan_install(rule.facts, rule.wishes)
    if rule.torch:
        assert plan.torch == rule.torch
    if rule.variant:
        assert plan.variant == rule.variant, plan.candidates
    if rule.command:
        assert plan.command_line == rule.command
    for text in rule.contains:
        assert text in plan.command_line
    warnings = "\n".join(plan.warnings)
    for text in rule.warns:
        assert text in warnings, warnings
    for text in rule.no_warning:
        assert text not in warnings, warnings
    notes = "\n".join(plan.research_notes)
    for text in rule.notes:
        assert text in notes, notes
    # Words for people: no research jargon, no unshipped files (issue 7, item 5).
    for jargon in JARGON:
        assert jargon not in warnings + "\n" + "\n".join(plan.reasons), jargon
    reasons = "\n".join(plan.reasons)
    for text in rule.reasons:
        assert text in reasons, reasons


class Impossible(Struct, frozen=True):
    """A request the planner must refuse, naming the nearest valid choice."""

    facts: MachineFacts
    wishes: InstallWishes
    message: tuple[str, ...]
    nearest: tuple[str, ...]
    hints: tuple[str, ...] = ()


IMPOSSIBLE = [
    pytest.param(
        Impossible(
            machine(driver="470.57.02", cc=("6.1",)),
            InstallWishes(),
            ("no CUDA build of torch 2.14.1", "needs driver >= 525.60.13"),
            (
                "update the NVIDIA driver to >= 525.60.13",
                "--torch 2.7.1 --variant cu118",
                "--accelerator cpu",
            ),
        ),
        id="old-driver-says-what-fixes-it-not-a-silent-cpu-build",
    ),
    pytest.param(
        Impossible(
            machine(python="3.10", driver="550.54.14", cc=("3.7",)),
            InstallWishes(),
            ("no kernels for sm_37",),
            ("--torch 2.7.1 --variant cu118",),
        ),
        id="kepler-k80-needs-an-older-torch",
    ),
    pytest.param(
        Impossible(
            machine(driver="580.159.04", cc=("9.0",)),
            InstallWishes(manager="conda"),
            ("no official conda packages for torch 2.14.1", "2.5.1"),
            ("--manager pip", "--torch 2.5.1 --manager conda"),
            ("official pip command: pip install torch==2.14.1", "community conda-forge"),
        ),
        id="conda-after-2.5.1-offers-pip-and-community-conda-forge",
    ),
    pytest.param(
        Impossible(
            machine(arch="aarch64", accelerator="cpu", python="3.10"),
            InstallWishes(torch="2.5.1", manager="conda"),
            ("no official conda packages",),
            ("--manager pip",),
        ),
        id="conda-has-no-aarch64-packages",
    ),
    pytest.param(
        Impossible(
            machine(driver="526.98", cc=("8.6",), wsl=True),
            InstallWishes(torch="2.8.0"),
            ("needs driver >= 527.41",),
            ("update the NVIDIA driver to >= 527.41",),
        ),
        id="wsl2-windows-driver-below-the-windows-12x-minimum",
    ),
    pytest.param(
        Impossible(
            machine(python="3.15", accelerator="cpu"),
            InstallWishes(),
            ("Python 3.15",),
            ("--python 3.14 (", "--torch 2.14.1"),
        ),
        id="python-too-new",
    ),
    pytest.param(
        Impossible(
            machine(python="3.5", accelerator="cpu"),
            InstallWishes(),
            ("older than every release",),
            ("--python 3.6 --torch 1.10.2 (",),
        ),
        id="python-too-old",
    ),
    pytest.param(
        Impossible(
            machine(python="3.12", accelerator="cpu"),
            InstallWishes(torch="1.7.1"),
            ("supports Python 3.6–3.9, not 3.12",),
            ("Python 3.9", "--torch 2.14.1"),
        ),
        id="pinned-release-does-not-support-this-python",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cpu"),
            InstallWishes(torch="2.15.0"),
            ("not in the compatibility table",),
            ("--torch 2.14.1",),
        ),
        id="unknown-release-names-the-newest-known",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cpu"),
            InstallWishes(torch="2.5.2"),
            ("torch 2.5.2 is not in the compatibility table",),
            ("--torch 2.5.1 (the nearest older release)",),
        ),
        id="missing-patch-names-the-nearest-older-truthfully",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cpu"),
            InstallWishes(torch="2.5.1.1"),
            ("not in the compatibility table",),
            ("--torch 2.5.1 (the nearest older release)",),
        ),
        id="four-part-version-names-the-nearest-older-truthfully",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cpu"),
            InstallWishes(torch="1.15"),
            ("not in the compatibility table",),
            ("--torch 1.13.1 (the newest release before 1.15.x)",),
        ),
        id="missing-series-names-the-newest-release-before-it",
    ),
    pytest.param(
        Impossible(
            machine(driver="580.159.04", cc=("6.1",)),
            InstallWishes(variant="cu130"),
            ("--variant cu130", "no kernels for compute capability 6.1", "sm_75"),
            ("--variant cu126 (covers compute capability 6.1)",),
        ),
        id="forced-variant-missing-the-gpu-is-impossible-and-names-one-that-covers-it",
    ),
    pytest.param(
        Impossible(
            machine(driver="580.159.04", cc=("3.7",)),
            InstallWishes(variant="cu128", torch="2.8.0"),
            ("no kernels for compute capability 3.7",),
            ("--torch 2.7.1 --variant cu118",),
        ),
        id="forced-variant-no-variant-of-the-release-covers-names-an-older-torch",
    ),
    pytest.param(
        Impossible(
            machine(cc=("12.0",)),
            InstallWishes(variant="cu118"),
            ("no cu118 build",),
            ("--variant cu13",),
        ),
        id="missing-variant-hint-only-offers-variants-covering-the-gpu",
    ),
    pytest.param(
        Impossible(
            machine(arch="aarch64", driver="540.4.0", cc=("8.7",)),
            InstallWishes(),
            ("Jetson module (compute capability 8.7)", "SBSA", "sm_87"),
            ("NVIDIA's PyTorch wheels for Jetson", "JetPack", "--accelerator cpu"),
        ),
        id="jetson-orin-needs-nvidia-jetpack-wheels-not-the-sbsa-wheels",
    ),
    pytest.param(
        Impossible(
            machine(arch="aarch64", driver="540.4.0", cc=("8.7",)),
            InstallWishes(variant="cu130"),
            ("Jetson module",),
            ("NVIDIA's PyTorch wheels for Jetson",),
        ),
        id="jetson-orin-forced-sbsa-variant-is-impossible-too",
    ),
    pytest.param(
        Impossible(
            machine(cc=("8.6",), accelerator_origin=IMPLIED),
            InstallWishes(variant="rocm7.14"),
            ("--compute-capability describes an NVIDIA GPU", "rocm"),
            ("a CUDA --variant",),
        ),
        id="compute-capability-given-with-a-rocm-variant",
    ),
    pytest.param(
        Impossible(
            MachineFacts(
                os=unknown(UNSUPPORTED_OS_DETAIL),
                arch=Fact("x86_64", DETECTED),
                python=Fact("3.12", DETECTED),
                accelerator=Fact("cpu", DETECTED),
            ),
            InstallWishes(),
            ("PyTorch publishes no wheels for this operating system",),
            ("--os linux|windows|macos",),
        ),
        id="detected-unsupported-os-says-pytorch-has-no-wheels-for-it",
    ),
    pytest.param(
        Impossible(
            machine(arch="riscv64", accelerator="cpu"),
            InstallWishes(),
            ("PyTorch publishes no wheels for linux-riscv64",),
            ("supported platforms: linux-x86_64",),
        ),
        id="unsupported-arch-says-pytorch-has-no-wheels-for-it",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cpu"),
            InstallWishes(torch="1.6.0"),
            ("not in the compatibility table",),
            ("--torch 1.7.1",),
        ),
        id="too-old-release-names-the-oldest-known",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cpu"),
            InstallWishes(torch="2.5.1+cu121"),
            ("not a build",),
            ("--torch 2.5.1 --variant cu121",),
        ),
        id="local-version-in-torch-flag",
    ),
    pytest.param(
        Impossible(
            machine(driver="580.159.04", cc=("9.0",)),
            InstallWishes(variant="cu121"),
            ("no cu121 build",),
            ("--variant cu126",),
        ),
        id="unknown-variant-names-the-nearest-cuda",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cuda"),
            InstallWishes(variant="rocm7.14"),
            ("rocm build but --accelerator cuda",),
            ("--accelerator rocm",),
        ),
        id="variant-contradicts-the-given-accelerator",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cpu"),
            InstallWishes(torch="2.12.0", packages=("torch", "torchaudio")),
            ("torchaudio has no release for torch 2.12.0",),
            ("--torch 2.11.0",),
        ),
        id="torchaudio-after-its-last-release",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cpu"),
            InstallWishes(packages=("torch", "numpy")),
            ("numpy is not a PyTorch package",),
            ("torch,torchvision,torchaudio", "install numpy separately"),
        ),
        id="another-package-is-not-a-pytorch-package",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cpu"),
            InstallWishes(packages=("torch", "torchvison")),
            ("unknown package 'torchvison'",),
            ("did you mean torchvision?",),
        ),
        id="a-typo-gets-did-you-mean",
    ),
    pytest.param(
        Impossible(
            machine(accelerator="cpu"),
            InstallWishes(manager="poetry"),
            ("unknown --manager",),
            ("--manager",),
        ),
        id="unknown-manager",
    ),
    pytest.param(
        Impossible(
            machine(os="macos", python="3.11", accelerator="cpu"),
            InstallWishes(torch="2.3.0"),
            ("no wheels for macos-x86_64",),
            ("--torch 2.2.2",),
        ),
        id="intel-mac-after-2.2.2",
    ),
    pytest.param(
        Impossible(
            machine(os="macos", python="3.13", accelerator="cpu"),
            InstallWishes(),
            ("Python 3.13 on macos-x86_64",),
            ("--python 3.11 (",),
        ),
        id="intel-mac-python-3.13",
    ),
    pytest.param(
        Impossible(
            machine(os="macos", arch="arm64", accelerator="cuda"),
            InstallWishes(),
            ("CUDA wheels do not exist for macOS",),
            ("--accelerator mps",),
        ),
        id="cuda-given-on-macos",
    ),
    pytest.param(
        Impossible(
            machine(os="windows", accelerator="rocm"),
            InstallWishes(),
            ("ROCm wheels exist for Linux x86_64 only",),
            ("--os linux",),
        ),
        id="rocm-given-on-windows",
    ),
    pytest.param(
        Impossible(
            machine(python="3.8", accelerator="rocm"),
            InstallWishes(torch="1.7.1"),
            ("no ROCm build",),
            ("--torch 2.4.1", "--accelerator cpu"),
        ),
        id="rocm-before-its-first-wheels",
    ),
    pytest.param(
        Impossible(
            machine(os="windows", arch="arm64", accelerator="cpu"),
            InstallWishes(),
            ("Windows on ARM64",),
            ("--arch x86_64",),
        ),
        id="windows-arm64-is-nightly-only",
    ),
    pytest.param(
        Impossible(
            MachineFacts(
                os=unknown("x"),
                arch=Fact("x86_64", GIVEN),
                python=Fact("3.12", GIVEN),
                accelerator=Fact("cpu", GIVEN),
            ),
            InstallWishes(),
            ("os unknown",),
            ("--os linux|windows|macos",),
        ),
        id="unknown-os-asks-for-the-flag",
    ),
]


@pytest.mark.parametrize("case", IMPOSSIBLE)
def test_impossible_request(case: Impossible) -> None:
    with pytest.raises(PlanError) as info:
        plan_install(case.facts, case.wishes)
    error = info.value
    for text in case.message:
        assert text in error.message, error.message
    for text in case.nearest:
        assert text in (error.nearest_valid or ""), error.nearest_valid
    hints = "\n".join(error.hints)
    for text in case.hints:
        assert text in hints, hints


def test_plan_json_has_every_documented_key() -> None:
    plan = plan_install(machine(driver="580.159.04", cc=("9.0",)), InstallWishes())
    data: dict[str, Any] = plan.to_jsonable()
    assert data["command_line"] == plan.command_line
    assert data["packages"][0] == {
        "name": "torch",
        "version": "2.14.1",
        "local": None,
        "operator": "==",
        "spec": "torch==2.14.1",
    }
    chosen = [c for c in data["candidates"] if c["chosen"]]
    assert [c["variant"] for c in chosen] == ["cu130"]
    assert data["facts"]["driver_version"] == {
        "value": "580.159.04",
        "origin": "given",
        "detail": None,
    }
    assert data["table_checked_on"] == "2026-11-27"


def test_candidates_explain_why_the_others_lost() -> None:
    plan = plan_install(machine(driver="580.159.04", cc=("6.1",)), InstallWishes())
    verdicts = {c.variant: c for c in plan.candidates}
    assert verdicts["cu126"].chosen
    assert not verdicts["cu130"].usable
    assert "no kernels for sm_61" in verdicts["cu130"].verdict


def _table_naming_sm87(torch: str) -> CompatTable:
    """The packaged table, except that ``torch``'s linux-aarch64 cu130 arch list also names
    8.7: a hypothetical later release that builds Jetson Orin kernels into the SBSA wheel."""
    table = load_compat_table()
    releases = []
    for release in table.releases:
        if release.torch == torch:
            forms = tuple(
                replace(form, arch=replace(form.arch, arch_list="8.0;8.7;9.0;10.0;11.0;12.0+PTX"))
                if form.platform == "linux-aarch64" and form.variant == "cu130" and form.arch
                else form
                for form in release.pip
            )
            release = replace(release, pip=forms)
        releases.append(release)
    return replace(table, releases=tuple(releases))


def test_jetson_is_served_once_a_release_names_its_compute_capability() -> None:
    table = _table_naming_sm87("2.14.1")
    orin = machine(arch="aarch64", driver="580.65.06", cc=("8.7",))
    assert plan_install(orin, InstallWishes(), table=table).variant == "cu130"
    with pytest.raises(PlanError) as info:
        plan_install(orin, InstallWishes(torch="2.13.0"), table=table)
    assert (info.value.nearest_valid or "").startswith("--torch 2.14.1 --variant cu130")
    with pytest.raises(PlanError, match="Jetson"):
        plan_install(orin, InstallWishes(), table=load_compat_table())


# --- the CUDA reason says the true reason (never "the newest" of what a newer build beats) ------

_REASON_DRIVERS = ("450.80.02", "470.57.02", "510.47.03", "525.60.13", "535.104.05", "580.65.06")


@pytest.mark.parametrize(
    ("torch", "python", "driver", "reason"),
    [
        pytest.param(
            "2.0.1",
            "3.8",
            "525.60.13",
            "cu117: its arch list covers compute capability 8.6; the newest stable CUDA that "
            "driver 525.60.13 fully supports (cu118 is an experimental build)",
            id="2.0.1-cu118-experimental",
        ),
        pytest.param(
            "1.12.1",
            "3.8",
            "510.47.03",
            "cu113: its arch list covers compute capability 8.6; the newest stable CUDA that "
            "driver 510.47.03 fully supports (cu116 is an experimental build)",
            id="1.12.1-cu116-experimental",
        ),
        pytest.param(
            "2.14.1",
            "3.12",
            "580.159.04",
            "cu130: its arch list covers compute capability 8.6; the newest CUDA that driver "
            "580.159.04 fully supports (cu132 would run only through minor-version compatibility)",
            id="2.14.1-driver-decides",
        ),
    ],
)
def test_the_cuda_reason_names_the_rule_that_decided(
    torch: str, python: str, driver: str, reason: str
) -> None:
    """The choice keeps the documented order (full driver support, then stable over
    experimental, then the newest); the reason names the rule that decided."""
    plan = plan_install(
        machine(python=python, driver=driver, cc=("8.6",)), InstallWishes(torch=torch)
    )
    assert reason in plan.reasons, plan.reasons


def test_a_gpu_newer_builds_lack_gets_no_claim_about_the_driver_and_newer_builds() -> None:
    plan = plan_install(machine(driver="580.65.06", cc=("6.1",)), InstallWishes())
    assert (
        "cu126: the newest build of torch 2.14.1 with kernels for compute capability 6.1 "
        "(cu130, cu132 have none); driver 580.65.06 fully supports it"
    ) in plan.reasons


@pytest.mark.parametrize("cc", ["6.1", "7.0", "8.6", "9.0", "12.0"])
@pytest.mark.parametrize("driver", _REASON_DRIVERS)
def test_a_newest_claim_is_true_of_every_release(cc: str, driver: str) -> None:
    """For every release: "the newest CUDA that driver D fully supports" only when no newer
    stable build with code for the GPU is fully supported; "the newest stable ..." only when
    every newer one that is fully supported is experimental."""
    for release in load_compat_table().releases:
        if release.lts:
            continue
        python = release.python.min if release.python.min != "3.7" else "3.8"
        try:
            plan = plan_install(
                machine(python=python, driver=driver, cc=(cc,)), InstallWishes(torch=release.torch)
            )
        except PlanError:
            continue
        if plan.variant.startswith("cu") is False:
            continue
        (reason,) = [r for r in plan.reasons if r.startswith(f"{plan.variant}")]
        order = [c.variant for c in plan.candidates]  # newest first
        newer = order[: order.index(plan.variant)]
        beaten = [
            c
            for c in plan.candidates
            if c.variant in newer and c.usable and c.driver is DriverSupport.FULL
        ]
        if f"the newest CUDA that driver {driver} fully supports" in reason:
            assert not beaten, (release.torch, reason, beaten)
        if f"the newest stable CUDA that driver {driver} fully supports" in reason:
            assert all("experimental build" in c.verdict for c in beaten), (release.torch, reason)
        if f"the newest CUDA that driver {driver} runs" in reason:
            assert not [c for c in plan.candidates if c.variant in newer and c.usable], (
                release.torch,
                reason,
            )
