"""Whole machines judged end to end: named scenarios built in the image of the real recordings.

Each scenario takes a recorded machine (tests/fixtures) and changes only what its id says:
the GPUs come from ``scenarios_gpu`` (spec-sheet values, each with its source), the rest of the
host stays as recorded. "Physical" means the recording's ``hypervisor`` CPU flag is removed,
as on bare metal, so the power supply is judged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from msgspec import Struct, field

from conftest import load_procfiles
from dlready.model import GpuVendor, MachineSnapshot
from dlready.probes.host_gateway import PsutilCpu, PsutilMemory
from dlready.spec.profile import load_builtin_profile
from dlready.spec.verdict import CheckReport, FailOn, Status, judge
from machines import replay_snapshot
from scenarios_gpu import (
    APPLE_M2_SYSCTL,
    NVML_FAILURES,
    RX_7900_XTX_DESKTOP_FILES,
    HangingNvml,
    library_not_found,
    nvidia_scenario,
)

GIB = 1024**3
BELOW, MIN, REC, UNKNOWN = (
    Status.BELOW_MINIMUM,
    Status.MEETS_MINIMUM,
    Status.MEETS_RECOMMENDED,
    Status.UNKNOWN,
)


def _bare_metal_cpuinfo(machine: str) -> dict[str, str]:
    """The recorded /proc/cpuinfo without the ``hypervisor`` flag."""
    text = load_procfiles(machine)
    start = text.index("== /proc/cpuinfo\n") + len("== /proc/cpuinfo\n")
    end = text.index("\n== /", start)
    return {"/proc/cpuinfo": text[start:end].replace(" hypervisor", "") + "\n"}


class MachineScenario(Struct, frozen=True):
    id: str
    build: Callable[[], MachineSnapshot]
    profile: str
    expected: Mapping[str, Status]
    """Part subject (or component name) -> expected status."""
    advice: Mapping[str, str] = field(default_factory=dict)
    """Part subject -> a phrase its advice or notes must contain."""
    exits_1: bool = False


def _subjects(report: CheckReport) -> dict[str, Any]:
    return {c.subject: c for c in report.components} | {c.component: c for c in report.components}


def _nvidia(scenario_id: str, **kwargs: Any) -> Callable[[], MachineSnapshot]:
    return lambda: replay_snapshot(
        "h100-80gb-hbm3",
        nvml=nvidia_scenario(scenario_id).replay(),
        files_extra=_bare_metal_cpuinfo("h100-80gb-hbm3"),
        **kwargs,
    )


def _amd_desktop() -> MachineSnapshot:
    return replay_snapshot(
        "cpu-only-epyc-vm", nvml=library_not_found(), files_extra=dict(RX_7900_XTX_DESKTOP_FILES)
    )


def _apple_m2() -> MachineSnapshot:
    # An M2 MacBook Air with 16 GB: no /proc; psutil and py-cpuinfo describe the CPU.
    from dlready.probes.collect import ProbeBackends, collect_snapshot
    from dlready.probes.host_gateway import ReplayHost
    from dlready.probes.hostfs import ReplayHostFiles
    from machines import recorded_torch

    host = ReplayHost(
        system="Darwin",
        machine="arm64",
        python_version="3.12.4",
        psutil_cpu=PsutilCpu(logical_cpus=8, physical_cores=8, current_mhz=None, max_mhz=None),
        psutil_memory=PsutilMemory(16 * GIB, 9 * GIB, 0),
        cpuinfo={"brand_raw": "Apple M2", "arch": "ARM_8", "flags": []},
    )
    backends = ProbeBackends(
        files=ReplayHostFiles({}),
        host=host,
        sysctl=dict(APPLE_M2_SYSCTL).get,
        torch=lambda: recorded_torch("cpu-only-epyc-vm"),
    )
    return collect_snapshot(backends=backends)


def _container_8gib() -> MachineSnapshot:
    # The H200 server (cgroup v2) running the check inside an 8 GiB container.
    path = "/sys/fs/cgroup/process_api/4e0a37cd3fd09b08c8d58828ed523afe/memory.max"
    return replay_snapshot("h200-141gb", files_extra={path: f"{8 * GIB}\n"})


def _nvidia_on_bus_without_driver() -> MachineSnapshot:
    # The H100 server with its driver uninstalled: NVML is missing, the card is still on the
    # bus (bus id and device id 0x2330 from its NVML recording).
    return replay_snapshot(
        "h100-80gb-hbm3",
        nvml=library_not_found(),
        files_extra={
            "/sys/bus/pci/devices/0000:00:06.0/class": "0x030200\n",
            "/sys/bus/pci/devices/0000:00:06.0/vendor": "0x10de\n",
            "/sys/bus/pci/devices/0000:00:06.0/device": "0x2330\n",
        },
    )


SCENARIOS = [
    MachineScenario(
        "gtx-1060-laptop/book-2020",
        _nvidia("gtx-1060-laptop"),
        "book-2020",
        {"GPU 0: NVIDIA GeForce GTX 1060 with Max-Q Design": BELOW},
        {"GPU 0: NVIDIA GeForce GTX 1060 with Max-Q Design": "2020 advice no longer holds"},
        exits_1=True,
    ),
    MachineScenario(
        "rtx-2080-ti/book-2020",
        _nvidia("rtx-2080-ti-desktop", psu_watts=850),
        "book-2020",
        {"GPU 0: NVIDIA GeForce RTX 2080 Ti": REC, "psu": REC, "memory": REC},
    ),
    MachineScenario(
        "rtx-2080-ti/current",
        _nvidia("rtx-2080-ti-desktop", psu_watts=850),
        "current",
        {"GPU 0: NVIDIA GeForce RTX 2080 Ti": MIN},
    ),
    MachineScenario(
        "4x-rtx-4090-on-1200w/book-2020",
        _nvidia("4x-rtx-4090", psu_watts=1200),
        "book-2020",
        {
            "GPU 0: NVIDIA GeForce RTX 4090": REC,
            "GPU 3: NVIDIA GeForce RTX 4090": REC,
            "psu": BELOW,
        },
        {"psu": "too small: this machine needs at least 2,574 W"},
        exits_1=True,
    ),
    MachineScenario(
        "4x-rtx-4090-on-2800w/current",
        _nvidia("4x-rtx-4090", psu_watts=2800),
        "current",
        {"psu": MIN},
        {"psu": "3,003 W leaves headroom"},
    ),
    MachineScenario(
        "rtx-2080-ti-in-x4-slot/book-2020",
        _nvidia("rtx-2080-ti-in-x4-slot"),
        "book-2020",
        {"GPU 0: NVIDIA GeForce RTX 2080 Ti": BELOW},
        {"GPU 0: NVIDIA GeForce RTX 2080 Ti": "x4 PCIe lanes"},
        exits_1=True,
    ),
    MachineScenario(
        "amd-rx-7900-xtx/book-2020",
        _amd_desktop,
        "book-2020",
        # Judged by its VRAM; compute capability (an NVIDIA measure) is listed as not judged.
        {"GPU 0: AMD Radeon RX 7900 XTX / 7900 XT / 7900 GRE": REC},
        {"GPU 0: AMD Radeon RX 7900 XTX / 7900 XT / 7900 GRE": "NVIDIA measure"},
        exits_1=True,  # the recorded VM has 2 CPUs
    ),
    MachineScenario(
        "apple-m2/book-2020",
        _apple_m2,
        "book-2020",
        {"GPU 0: Apple M2": REC, "psu": UNKNOWN, "memory": MIN},
        {"psu": "built-in supply"},
    ),
    MachineScenario(
        "container-8gib/book-2020",
        _container_8gib,
        "book-2020",
        {"memory": BELOW},
        {"memory": "cgroup memory limit: 8.0 GiB"},
        exits_1=True,
    ),
    MachineScenario(
        "nvidia-card-without-driver/book-2020",
        _nvidia_on_bus_without_driver,
        "book-2020",
        # A card the driver cannot use is not ready: below minimum, with the fix.
        {"gpu": BELOW},
        {"gpu": "NVIDIA GPU is on the PCI bus (0000:00:06.0 (device 0x2330))"},
        exits_1=True,
    ),
    MachineScenario(
        "cpu-only-vm/book-2020",
        lambda: replay_snapshot("cpu-only-epyc-vm"),
        "book-2020",
        {"gpu": BELOW, "cpu": BELOW, "memory": MIN},
        {"gpu": "No GPU found"},
        exits_1=True,
    ),
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_machine_scenario(scenario: MachineScenario) -> None:
    snapshot = scenario.build()
    report = judge(snapshot, load_builtin_profile(scenario.profile))
    parts = _subjects(report)
    for subject, status in scenario.expected.items():
        assert subject in parts, f"no part {subject!r} in {sorted(parts)}"
        assert parts[subject].status is status, (subject, parts[subject])
    for subject, phrase in scenario.advice.items():
        part = parts[subject]
        assert phrase in " ".join([part.advice, *part.notes]), (subject, part.advice, part.notes)
    assert report.fails(FailOn.MINIMUM) is scenario.exits_1


@pytest.mark.parametrize(
    "failure", [f for f in NVML_FAILURES if f.gpu_count == 0], ids=lambda f: f.id
)
def test_nvml_failure_without_gpus_is_a_finding(failure: Any) -> None:
    snapshot = replay_snapshot("h100-80gb-hbm3", nvml=failure.backend())
    report = judge(snapshot, load_builtin_profile("book-2020"))
    gpu = _subjects(report)["gpu"]
    stack = snapshot.stack(GpuVendor.NVIDIA)
    assert stack is not None
    assert str(stack.state) == failure.expected_state
    # No driver and nothing on the PCI bus: no GPU. A driver that does not answer leaves a GPU
    # that cannot be used: below minimum too, with the driver's own reason and fix.
    assert gpu.status is BELOW
    assert report.fails(FailOn.MINIMUM)
    if failure.expected_state != "not_installed":
        assert stack.reason is not None
        assert stack.reason in gpu.advice
        assert str(stack.state) not in gpu.advice  # words, not the state's name


@pytest.mark.parametrize(
    "failure", [f for f in NVML_FAILURES if f.lost_gpu_indices], ids=lambda f: f.id
)
def test_a_lost_gpu_is_present_and_broken(failure: Any) -> None:
    # A GPU NVML lost (GPU_IS_LOST, Xid 79) or cannot open is below minimum with its fix, and
    # the check exits 1 although every other part is fine; the other GPUs are judged as usual.
    snapshot = replay_snapshot("h100-80gb-hbm3", nvml=failure.backend())
    report = judge(snapshot, load_builtin_profile("book-2020"))
    gpu_parts = [c for c in report.components if c.component == "gpu"]
    assert len(gpu_parts) == failure.gpu_count
    for index, part in enumerate(gpu_parts):
        if index in failure.lost_gpu_indices:
            assert part.status is BELOW
            # A GPU the user may not open works: the words say so (no "does not work").
            opening = (
                "your user has no permission to use it"
                if failure.id == "gpu-handle-no-permission"
                else "installed but does not work"
            )
            assert opening in part.advice
            assert failure.gpu_error_contains in part.advice
            assert part.advice.count(failure.gpu_error_contains) == 1  # the fix, once
        else:
            assert part.status is REC
    assert report.status is BELOW
    assert report.fails(FailOn.MINIMUM)


def test_hung_nvml_is_abandoned_and_the_report_still_prints() -> None:
    import time

    from dlready.probes.collect import collect_snapshot
    from machines import replay_backends

    hanging = HangingNvml()
    backends = replay_backends("h100-80gb-hbm3", nvml=hanging)
    backends.nvml_timeout_s = 0.3
    started = time.perf_counter()
    try:
        snapshot = collect_snapshot(backends=backends)
    finally:
        hanging.release()
    assert time.perf_counter() - started < 3
    stack = snapshot.stack(GpuVendor.NVIDIA)
    assert stack is not None
    assert str(stack.state) == "timed_out"
    report = judge(snapshot, load_builtin_profile("book-2020"))
    assert _subjects(report)["gpu"].status is BELOW  # a wedged driver: the GPU is unusable
    assert _subjects(report)["memory"].status is REC


def test_integrated_gpu_beside_a_discrete_card_is_listed_not_judged() -> None:
    report = judge(_amd_desktop(), load_builtin_profile("book-2020"))
    gpu_subjects = [c.subject for c in report.components if c.component == "gpu"]
    assert gpu_subjects == ["GPU 0: AMD Radeon RX 7900 XTX / 7900 XT / 7900 GRE"]
    assert any("GPU 1: AMD GPU (device 0x164e): integrated" in note for note in report.notes)
