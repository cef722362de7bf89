"""install-cmd on the GPU scenarios of issue 7: a broken NVIDIA driver never yields a CPU
wheel, words a student understands, reasons that name the deciding constraint.

Machines are the recorded H100 server with documented changes (tests/scenarios_gpu.py): NVML
failing as the real library fails, the card (10de:2330, as recorded) on the PCI bus, the
kernel module's version files as recorded in procfiles.txt.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

import pytest
from typer.testing import CliRunner

from conftest import load_procfiles
from dlready.cli import app
from dlready.exitcodes import ExitCode
from dlready.model import MachineSnapshot
from dlready.probes.hostfs import ReplayHostFiles
from dlready.probes.nvidia_module import read_kernel_module_version
from machines import replay_snapshot
from scenarios_gpu import NVML_FAILURES, library_not_found, nvidia_scenario

runner = CliRunner()
H100_BUS = "/sys/bus/pci/devices/0000:00:06.0"
H100_ON_THE_BUS = {
    f"{H100_BUS}/class": "0x030200\n",
    f"{H100_BUS}/vendor": "0x10de\n",
    f"{H100_BUS}/device": "0x2330\n",
}
NO_KERNEL_MODULE: Mapping[str, str | None] = {
    "/proc/driver/nvidia/version": None,
    "/sys/module/nvidia/version": None,
}
CU130 = "pip install torch==2.14.1 torchvision==0.29.1 --index-url https://download.pytorch.org/whl/cu130"


def _failure(scenario_id: str) -> object:
    return next(f for f in NVML_FAILURES if f.id == scenario_id).backend()


def run(
    snapshot: MachineSnapshot,
    *args: str,
    files: Mapping[str, str | None] | None = None,
    machine: str = "h100-80gb-hbm3",
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, str, str]:
    """install-cmd with detection replaying ``snapshot`` and the /proc and /sys files of the
    recorded ``machine`` (changed by ``files``) for the kernel module."""
    host_files = ReplayHostFiles.from_procfiles(load_procfiles(machine))
    if files:
        host_files = host_files.with_files(dict(files))
    monkeypatch.setattr("dlready.probes.collect.collect_snapshot", lambda: snapshot)
    monkeypatch.setattr(
        "dlready.probes.nvidia_module.probe_kernel_module",
        lambda: read_kernel_module_version(host_files),
    )
    result = runner.invoke(app, ["install-cmd", *args])
    return result.exit_code, result.stdout, result.stderr


# --- item 4: a broken NVIDIA driver never yields a CPU wheel ---------------------------------


BROKEN_DRIVERS = [
    # (id, snapshot, files for the kernel module, words of the fix, command once fixed)
    pytest.param(
        lambda: replay_snapshot("h100-80gb-hbm3", nvml=_failure("version-mismatch")),
        None,
        "Reboot",
        None,
        id="driver-library-mismatch-gpu-unidentified",
    ),
    pytest.param(
        lambda: replay_snapshot(
            "h100-80gb-hbm3", nvml=_failure("version-mismatch"), files_extra=H100_ON_THE_BUS
        ),
        None,
        "Reboot",
        CU130,
        id="driver-library-mismatch-card-on-the-bus",
    ),
    pytest.param(
        lambda: replay_snapshot(
            "h100-80gb-hbm3", nvml=_failure("no-permission"), files_extra=H100_ON_THE_BUS
        ),
        None,
        "/dev/nvidia*",
        CU130,
        id="no-permission",
    ),
    pytest.param(
        lambda: replay_snapshot("h100-80gb-hbm3", nvml=_failure("driver-not-loaded")),
        NO_KERNEL_MODULE,
        "modprobe nvidia",
        None,
        id="driver-not-loaded",
    ),
    pytest.param(
        lambda: replay_snapshot(
            "h100-80gb-hbm3", nvml=library_not_found(), files_extra=H100_ON_THE_BUS
        ),
        NO_KERNEL_MODULE,
        "install the NVIDIA driver",
        None,
        id="card-on-the-bus-without-driver",
    ),
    pytest.param(
        lambda: replay_snapshot(
            "h100-80gb-hbm3", nvml=library_not_found(), files_extra=H100_ON_THE_BUS
        ),
        None,
        "user-space libraries of version 580.159.04",
        CU130,
        id="kernel-module-loaded-library-missing",
    ),
]


@pytest.mark.parametrize(("build", "files", "fix", "once_fixed"), BROKEN_DRIVERS)
def test_broken_driver_is_fix_the_driver_first_never_a_cpu_wheel(
    build: Callable[[], MachineSnapshot],
    files: Mapping[str, str | None] | None,
    fix: str,
    once_fixed: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = run(build(), files=files, monkeypatch=monkeypatch)
    assert code == ExitCode.USAGE
    assert out == ""
    assert "fix the NVIDIA driver first" in err
    assert fix in err
    assert "/whl/cpu" not in err
    for raw in ("driver_not_loaded", "version_mismatch", "no_permission", "not_installed"):
        assert raw not in err
    lines = err.splitlines()
    if once_fixed:
        # The command that fits once the driver works: whole, on its own (shell-inert) line.
        assert f"# {once_fixed}" in lines
    else:
        assert "# once the driver works, run dlready install-cmd again" in err


def test_broken_driver_with_accelerator_cpu_is_the_cpu_build_as_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    snapshot = replay_snapshot("h100-80gb-hbm3", nvml=_failure("version-mismatch"))
    code, out, _err = run(snapshot, "--accelerator", "cpu", monkeypatch=monkeypatch)
    assert code == ExitCode.OK
    assert out.rstrip().endswith("/whl/cpu")


def test_broken_driver_json_is_an_error_envelope(monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    snapshot = replay_snapshot(
        "h100-80gb-hbm3", nvml=_failure("version-mismatch"), files_extra=H100_ON_THE_BUS
    )
    code, out, _err = run(snapshot, "--json", monkeypatch=monkeypatch)
    assert code == ExitCode.USAGE
    document = json.loads(out)
    assert document["data"] is None
    (error,) = document["errors"]
    assert error["message"].startswith("fix the NVIDIA driver first")
    assert f"# {CU130}" in error["more"]


def test_kernel_module_version_is_read_from_proc_then_sys() -> None:
    recorded = ReplayHostFiles.from_procfiles(load_procfiles("h100-80gb-hbm3"))
    assert read_kernel_module_version(recorded).value == "580.159.04"
    legacy = recorded.with_files(
        {
            "/proc/driver/nvidia/version": (
                "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 "
                "01:15:15 UTC 2023\n"
            )
        }
    )
    assert read_kernel_module_version(legacy).value == "535.104.05"
    sys_only = recorded.with_files({"/proc/driver/nvidia/version": None})
    assert read_kernel_module_version(sys_only).value == "580.159.04"
    assert not read_kernel_module_version(recorded.with_files(dict(NO_KERNEL_MODULE))).ok


def test_pci_table_names_the_recorded_cards_and_cites_its_sources() -> None:
    import json
    from importlib import resources

    from dlready.install.pci_ids import gpu_from_pci_device

    h100, h200 = gpu_from_pci_device("0x2330"), gpu_from_pci_device("2335")
    assert h100 is not None
    assert h100.compute_capability == "9.0"
    assert h200 is not None
    assert h200.compute_capability == "9.0"
    assert gpu_from_pci_device("0xffff") is None
    data = json.loads(
        resources.files("dlready").joinpath("data", "nvidia_pci_devices.json").read_text()
    )
    assert all(
        re.search(r"https://", text) for key, text in data["sources"].items() if key != "recorded"
    )


# --- item 5: what was checked, when, against which public page, and what to do ---------------

RESEARCH_WORDS = ("UNCONFIRMED", "stored corpora", "matrix.json", "shared/", "ARCH-COMPAT.md")


@pytest.mark.parametrize(
    "args",
    [
        pytest.param((), id="default"),
        pytest.param(("--explain",), id="explain"),
        pytest.param(("--torch", "2.12.1", "--os", "windows", "--driver", "581.80"), id="windows"),
        pytest.param(("--manager", "conda", "--torch", "2.5.1", "--explain"), id="conda"),
    ],
)
def test_words_cite_public_pages_and_dates_not_research_files(
    args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, _out, err = run(replay_snapshot("h100-80gb-hbm3"), *args, monkeypatch=monkeypatch)
    assert code == ExitCode.OK
    for word in RESEARCH_WORDS:
        assert word not in err, word
    assert "checked on 2026-11-27 against PyTorch's published install commands" in err
    assert "https://pytorch.org/get-started/previous-versions/" in err


# --- item 6: the reason names the constraint that decided -----------------------------------


def _cpu_vm(*args: str, monkeypatch: pytest.MonkeyPatch) -> tuple[int, str, str]:
    return run(
        replay_snapshot("cpu-only-epyc-vm"),
        *args,
        machine="cpu-only-epyc-vm",
        monkeypatch=monkeypatch,
    )


def test_variant_that_implies_cuda_is_not_explained_as_detected_cpu(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = _cpu_vm(
        "--torch", "1.12.1", "--python", "3.10", "--variant", "cu102", monkeypatch=monkeypatch
    )
    assert code == ExitCode.OK
    assert out.rstrip().endswith("/whl/cu102")
    assert "accelerator cpu (detected)" not in err
    assert "accelerator cuda (implied)" in err


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(("--accelerator", "cpu"), "CPU-only conda packages", id="cpu"),
        pytest.param(
            ("--os", "windows"), "CUDA runtime comes with pytorch-cuda", id="windows-cuda"
        ),
    ],
)
def test_conda_plans_are_explained_with_conda_reasons(
    args: tuple[str, ...], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, err = run(
        replay_snapshot("h100-80gb-hbm3"),
        "--manager",
        "conda",
        "--torch",
        "2.5.1",
        *args,
        monkeypatch=monkeypatch,
    )
    assert code == ExitCode.OK
    assert out.startswith("conda install ")
    assert expected in err
    for pip_words in ("the CPU index", "index URL", "pip install torch"):
        assert pip_words not in err


def test_gtx_1060_reason_is_its_kernels_not_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = replay_snapshot("h100-80gb-hbm3", nvml=nvidia_scenario("gtx-1060-laptop").replay())
    code, out, err = run(snapshot, monkeypatch=monkeypatch)
    assert code == ExitCode.OK
    assert out.rstrip().endswith("/whl/cu126")
    (reason,) = [line for line in err.splitlines() if line.startswith("# cu126:")]
    assert "kernels for compute capability 6.1" in reason
    assert "cu130, cu132 have none" in reason
    assert "newest CUDA that driver" not in reason


# --- item 7: no raw names in install-cmd's words ----------------------------------------------

RAW_NAMES = (
    "not_installed",
    "driver_not_loaded",
    "version_mismatch",
    "no_permission",
    "timed_out",
    "not_applicable",
    "minor-compat",
    "too-old",
    "kernels for unknown",
    "(not Linux?)",
    "[detected: nvml]",
)


def test_another_package_is_not_answered_with_did_you_mean(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    code, out, err = _cpu_vm("--packages", "torch,tensorflow", monkeypatch=monkeypatch)
    assert code == ExitCode.USAGE
    assert out == ""
    assert "tensorflow is not a PyTorch package" in err
    assert "did you mean" not in err


@pytest.mark.parametrize(
    ("build", "args"),
    [
        pytest.param(lambda: replay_snapshot("cpu-only-epyc-vm"), (), id="cpu-vm"),
        pytest.param(
            lambda: replay_snapshot("cpu-only-epyc-vm"),
            ("--torch", "1.10.0", "--python", "3.9", "--variant", "cu113", "--explain"),
            id="cu113-arch-list-unknown",
        ),
        pytest.param(lambda: replay_snapshot("h100-80gb-hbm3"), ("--explain",), id="h100"),
        pytest.param(
            lambda: replay_snapshot("h100-80gb-hbm3", nvml=_failure("driver-not-loaded")),
            (),
            id="driver-not-loaded",
        ),
        pytest.param(
            lambda: replay_snapshot("h100-80gb-hbm3", nvml=_failure("driver-not-loaded")),
            ("--accelerator", "cpu", "--explain"),
            id="driver-not-loaded-cpu-asked",
        ),
        pytest.param(
            lambda: replay_snapshot("h100-80gb-hbm3", nvml=_failure("no-permission")),
            ("--json",),
            id="no-permission-json",
        ),
        pytest.param(
            lambda: replay_snapshot(
                "h100-80gb-hbm3", nvml=nvidia_scenario("gtx-1060-laptop").replay()
            ),
            ("--explain",),
            id="gtx-1060",
        ),
    ],
)
def test_no_raw_names_in_install_cmd_words(
    build: Callable[[], MachineSnapshot], args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    _code, out, err = run(build(), *args, monkeypatch=monkeypatch)
    words = err if "--json" not in args else out
    if "--json" in args:
        import json

        document = json.loads(out)
        words = "\n".join(
            [e["message"] + " " + (e["hint"] or "") for e in document["errors"]]
            + [line for e in document["errors"] for line in e["more"]]
        )
    for raw in RAW_NAMES:
        assert raw not in words, raw
