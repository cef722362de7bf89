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
from scenarios_gpu import NVML_FAILURES, library_not_found

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
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[int, str, str]:
    """install-cmd with detection replaying ``snapshot`` and the H100's /proc and /sys files
    (changed by ``files``) for the kernel module."""
    host_files = ReplayHostFiles.from_procfiles(load_procfiles("h100-80gb-hbm3"))
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
    assert CU130 in error["hints"]


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
