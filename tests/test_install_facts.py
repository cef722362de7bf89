"""Machine facts for the planner: from recorded machines, and flags that win over detection."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from msgspec import Struct

from dlready.install import (
    FactOverrides,
    MachineFacts,
    PlanError,
    apply_overrides,
    facts_from_overrides,
    facts_from_snapshot,
    validate_overrides,
)
from dlready.install.facts import DETECTED, GIVEN, IMPLIED
from dlready.model import MachineSnapshot
from machines import replay_snapshot
from scenarios_gpu import (
    NVML_FAILURES,
    RX_7900_XTX_DESKTOP_FILES,
    library_not_found,
    nvidia_scenario,
    old_driver_2080_ti,
)

H100_BUS = "/sys/bus/pci/devices/0000:00:06.0"


def _nvidia_without_driver() -> MachineSnapshot:
    # The H100 server with its driver removed; the card (10de:2330) stays on the PCI bus.
    return replay_snapshot(
        "h100-80gb-hbm3",
        nvml=library_not_found(),
        files_extra={
            f"{H100_BUS}/class": "0x030200\n",
            f"{H100_BUS}/vendor": "0x10de\n",
            f"{H100_BUS}/device": "0x2330\n",
        },
    )


def _driver_not_loaded() -> MachineSnapshot:
    failure = next(f for f in NVML_FAILURES if f.id == "driver-not-loaded")
    return replay_snapshot("h100-80gb-hbm3", nvml=failure.backend())


class Detected(Struct, frozen=True):
    build: Callable[[], MachineSnapshot]
    platform: str
    python: str
    accelerator: str
    driver: str | None
    capabilities: tuple[str, ...] | None
    note: str | None = None
    fault: str | None = None
    """Part of the problem of :class:`NvidiaFault` (a GPU with a broken driver)."""


DETECTED_MACHINES = [
    pytest.param(
        Detected(
            lambda: replay_snapshot("h100-80gb-hbm3"),
            "linux-x86_64",
            "3.12",
            "cuda",
            "580.159.04",
            ("9.0",),
        ),
        id="h100-recorded",
    ),
    pytest.param(
        Detected(
            lambda: replay_snapshot("h200-141gb"),
            "linux-x86_64",
            "3.12",
            "cuda",
            "580.159.04",
            ("9.0",),
        ),
        id="h200-recorded",
    ),
    pytest.param(
        Detected(
            lambda: replay_snapshot("cpu-only-epyc-vm"), "linux-x86_64", "3.11", "cpu", None, None
        ),
        id="cpu-only-vm-recorded",
    ),
    pytest.param(
        Detected(
            lambda: replay_snapshot(
                "h100-80gb-hbm3", nvml=nvidia_scenario("gtx-1060-laptop").replay()
            ),
            "linux-x86_64",
            "3.12",
            "cuda",
            "545.23.06",
            ("6.1",),
        ),
        id="gtx-1060-laptop",
    ),
    pytest.param(
        Detected(
            lambda: replay_snapshot("h100-80gb-hbm3", nvml=nvidia_scenario("4x-rtx-4090").replay()),
            "linux-x86_64",
            "3.12",
            "cuda",
            "580.159.04",
            ("8.9", "8.9", "8.9", "8.9"),
        ),
        id="four-rtx-4090-every-gpu-listed",
    ),
    pytest.param(
        Detected(
            lambda: replay_snapshot("h100-80gb-hbm3", nvml=old_driver_2080_ti()),
            "linux-x86_64",
            "3.12",
            "cuda",
            "455.32.00",
            ("7.5",),
        ),
        id="rtx-2080-ti-old-driver",
    ),
    pytest.param(
        Detected(
            lambda: replay_snapshot(
                "cpu-only-epyc-vm",
                nvml=library_not_found(),
                files_extra=dict(RX_7900_XTX_DESKTOP_FILES),
            ),
            "linux-x86_64",
            "3.11",
            "rocm",
            None,
            None,
        ),
        id="amd-rx-7900-xtx-desktop",
    ),
    pytest.param(
        Detected(
            _nvidia_without_driver,
            "linux-x86_64",
            "3.12",
            "cuda",
            None,
            None,
            fault="no working NVIDIA driver is installed",
        ),
        id="nvidia-on-the-bus-without-driver-is-still-cuda",
    ),
    pytest.param(
        Detected(
            _driver_not_loaded,
            "linux-x86_64",
            "3.12",
            "cpu",
            None,
            None,
            fault="kernel module is not loaded",
        ),
        id="driver-not-loaded-is-a-fault",
    ),
]


@pytest.mark.parametrize("case", DETECTED_MACHINES)
def test_facts_from_recorded_machines(case: Detected) -> None:
    facts = facts_from_snapshot(case.build())
    assert facts.platform == case.platform
    assert facts.python.value == case.python
    assert facts.accelerator.value == case.accelerator
    assert facts.accelerator.origin == DETECTED
    assert facts.driver_version.value == case.driver
    assert facts.compute_capabilities.value == case.capabilities
    assert facts.is_wsl.value is False
    if case.note:
        assert any(case.note in note for note in facts.notes), facts.notes
    else:
        assert facts.notes == ()
    if case.fault:
        assert facts.nvidia_fault is not None
        assert case.fault in facts.nvidia_fault.problem
        assert "driver_not_loaded" not in facts.nvidia_fault.problem
    else:
        assert facts.nvidia_fault is None


def test_gpu_names_follow_the_capabilities() -> None:
    facts = facts_from_snapshot(replay_snapshot("h100-80gb-hbm3"))
    assert facts.gpu_names == ("NVIDIA H100 80GB HBM3",)
    assert facts.compute_capabilities.detail == "NVML"


def _h100() -> MachineFacts:
    return facts_from_snapshot(replay_snapshot("h100-80gb-hbm3"))


@pytest.mark.parametrize(
    ("overrides", "field", "value", "origin"),
    [
        pytest.param(FactOverrides(os="windows"), "os", "windows", GIVEN, id="os"),
        pytest.param(FactOverrides(arch="arm64"), "arch", "arm64", GIVEN, id="arch"),
        pytest.param(FactOverrides(python="3.10"), "python", "3.10", GIVEN, id="python"),
        pytest.param(
            FactOverrides(driver="550.54.14"), "driver_version", "550.54.14", GIVEN, id="driver"
        ),
        pytest.param(
            FactOverrides(compute_capabilities=("8.6", "8.6")),
            "compute_capabilities",
            ("8.6", "8.6"),
            GIVEN,
            id="compute-capabilities-replace-detected",
        ),
        pytest.param(
            FactOverrides(accelerator="cpu"), "accelerator", "cpu", GIVEN, id="accelerator"
        ),
    ],
)
def test_a_given_flag_wins_over_detection(
    overrides: FactOverrides, field: str, value: object, origin: str
) -> None:
    facts = apply_overrides(_h100(), validate_overrides(overrides))
    fact = getattr(facts, field)
    assert (fact.value, fact.origin) == (value, origin)
    assert facts.driver_version.value == (overrides.driver or "580.159.04"), (
        "flags not given keep their detected value"
    )


def test_driver_flag_on_a_cpu_machine_implies_cuda() -> None:
    cpu = facts_from_snapshot(replay_snapshot("cpu-only-epyc-vm"))
    facts = apply_overrides(cpu, validate_overrides(FactOverrides(driver="580.65.06")))
    assert (facts.accelerator.value, facts.accelerator.origin) == ("cuda", IMPLIED)
    assert facts.accelerator.detail == "by --driver"


@pytest.mark.parametrize(
    ("overrides", "message", "nearest"),
    [
        pytest.param(
            FactOverrides(os="freebsd"),
            "PyTorch publishes no wheels for --os 'freebsd'",
            "supported: --os linux, windows or macos",
            id="os-without-wheels-lists-the-supported-not-a-lookalike",
        ),
        pytest.param(FactOverrides(os="linx"), "unknown --os 'linx'", "--os linux (", id="os-typo"),
        pytest.param(FactOverrides(os="Darwin"), None, None, id="os-alias-darwin-is-macos"),
        pytest.param(
            FactOverrides(arch="riscv64"),
            "PyTorch publishes no wheels for --arch 'riscv64'",
            "supported: --arch x86_64, aarch64 or arm64",
            id="arch-without-wheels-lists-the-supported-not-a-lookalike",
        ),
        pytest.param(
            FactOverrides(arch="armv7l"),
            "PyTorch publishes no wheels for --arch 'armv7l'",
            "supported: --arch",
            id="arch-32-bit-arm",
        ),
        pytest.param(
            FactOverrides(arch="aarch_64"), "unknown --arch", "--arch aarch64 (", id="arch-typo"
        ),
        pytest.param(FactOverrides(arch="AMD64"), None, None, id="arch-alias-amd64"),
        pytest.param(
            FactOverrides(python="3"), "not a Python version", "--python X.Y", id="python"
        ),
        pytest.param(
            FactOverrides(accelerator="gpu"),
            "unknown --accelerator",
            "--accelerator",
            id="accelerator",
        ),
        pytest.param(
            FactOverrides(driver="latest"),
            "not an NVIDIA driver version",
            "--driver like",
            id="driver",
        ),
        pytest.param(
            FactOverrides(compute_capabilities=("8",)),
            "not a compute capability",
            "--compute-capability X.Y",
            id="compute-capability",
        ),
        pytest.param(
            FactOverrides(compute_capabilities=("sm_86", "8.9,9.0")),
            None,
            None,
            id="compute-capability-sm-and-comma-forms",
        ),
        pytest.param(
            FactOverrides(compute_capabilities=("",)),
            "--compute-capability '' has an empty value",
            "--compute-capability X.Y, e.g. 8.6",
            id="compute-capability-empty-is-not-ignored",
        ),
        pytest.param(
            FactOverrides(compute_capabilities=("8.6,",)),
            "has an empty value",
            "--compute-capability X.Y",
            id="compute-capability-trailing-comma",
        ),
        pytest.param(
            FactOverrides(compute_capabilities=("0.0",)),
            "outside the known range (1.0 to 15.9)",
            "--compute-capability X.Y, e.g. 8.6",
            id="compute-capability-0.0",
        ),
        pytest.param(
            FactOverrides(compute_capabilities=("99.9",)),
            "outside the known range",
            "--compute-capability X.Y",
            id="compute-capability-99.9",
        ),
        pytest.param(
            FactOverrides(compute_capabilities=("8.10",)),
            "outside the known range",
            "--compute-capability X.Y",
            id="compute-capability-two-digit-minor",
        ),
        pytest.param(
            FactOverrides(accelerator="rocm", compute_capabilities=("8.6",)),
            "--compute-capability describes an NVIDIA GPU, but --accelerator rocm was given",
            "--accelerator cuda, or drop --compute-capability",
            id="compute-capability-with-rocm",
        ),
        pytest.param(
            FactOverrides(accelerator="mps", compute_capabilities=("8.6",)),
            "but --accelerator mps was given",
            "--accelerator cuda",
            id="compute-capability-with-mps",
        ),
        pytest.param(
            FactOverrides(accelerator="cpu", driver="580.65.06", compute_capabilities=("8.6",)),
            "--driver and --compute-capability describe an NVIDIA GPU",
            "drop --driver and --compute-capability",
            id="driver-and-compute-capability-with-cpu",
        ),
    ],
)
def test_flag_validation(
    overrides: FactOverrides, message: str | None, nearest: str | None
) -> None:
    if message is None:
        validated = validate_overrides(overrides)
        if overrides.os:
            assert validated.os == "macos"
        if overrides.arch:
            assert validated.arch == "x86_64"
        if overrides.compute_capabilities:
            assert validated.compute_capabilities == ("8.6", "8.9", "9.0")
        return
    with pytest.raises(PlanError) as info:
        validate_overrides(overrides)
    assert message in info.value.message
    assert nearest
    assert nearest in (info.value.nearest_valid or "")


@pytest.mark.parametrize(
    ("overrides", "covers"),
    [
        pytest.param(
            FactOverrides(os="linux", arch="x86_64", python="3.12", accelerator="cpu"),
            True,
            id="cpu-all-basics",
        ),
        pytest.param(
            FactOverrides(os="linux", arch="x86_64", python="3.12", accelerator="cuda"),
            False,
            id="cuda-needs-a-driver-too",
        ),
        pytest.param(
            FactOverrides(
                os="linux", arch="x86_64", python="3.12", accelerator="cuda", driver="580.65.06"
            ),
            True,
            id="cuda-with-driver",
        ),
        pytest.param(
            FactOverrides(os="linux", arch="x86_64", accelerator="cpu"), False, id="python-missing"
        ),
    ],
)
def test_detection_is_skipped_only_when_flags_say_everything(
    overrides: FactOverrides, covers: bool
) -> None:
    assert overrides.covers_detection is covers


def test_facts_from_overrides_mark_everything_given() -> None:
    facts = facts_from_overrides(
        validate_overrides(
            FactOverrides(os="windows", arch="x86_64", python="3.8", accelerator="cpu")
        )
    )
    assert facts.platform == "windows-x86_64"
    assert {facts.os.origin, facts.arch.origin, facts.python.origin} == {GIVEN}
    assert facts.driver_version.origin == "unknown"


@pytest.mark.parametrize(
    ("os", "arch", "platform"),
    [
        ("linux", "arm64", "linux-aarch64"),
        ("macos", "aarch64", "macos-arm64"),
        ("windows", "x86_64", "windows-x86_64"),
        ("windows", "arm64", "windows-arm64"),
    ],
)
def test_platform_names(os: str, arch: str, platform: str) -> None:
    facts = facts_from_overrides(
        validate_overrides(FactOverrides(os=os, arch=arch, python="3.12", accelerator="cpu"))
    )
    assert facts.platform == platform


@pytest.mark.parametrize(
    "capability",
    [
        pytest.param("1.0", id="tesla-first-1.0"),
        pytest.param("3.7", id="k80"),
        pytest.param("12.1", id="gb10"),
        pytest.param("sm_120", id="sm-form"),
    ],
)
def test_known_compute_capabilities_are_accepted(capability: str) -> None:
    validated = validate_overrides(FactOverrides(compute_capabilities=(capability,)))
    assert len(validated.compute_capabilities) == 1


def _cpu_vm() -> MachineFacts:
    return facts_from_snapshot(replay_snapshot("cpu-only-epyc-vm"))


@pytest.mark.parametrize(
    ("overrides", "arch", "origin", "detail"),
    [
        pytest.param(
            FactOverrides(os="macos"),
            "arm64",
            IMPLIED,
            "Apple silicon assumed, --arch x86_64 for an Intel Mac",
            id="macos-from-linux-means-apple-silicon-not-this-cpu",
        ),
        pytest.param(
            FactOverrides(os="windows"),
            "x86_64",
            IMPLIED,
            "by --os windows",
            id="windows-from-linux-assumes-x86_64",
        ),
        pytest.param(
            FactOverrides(os="macos", arch="x86_64"),
            "x86_64",
            GIVEN,
            "--arch",
            id="arch-flag-wins-intel-mac",
        ),
        pytest.param(
            FactOverrides(os="linux"), "x86_64", DETECTED, "platform", id="same-os-keeps-this-cpu"
        ),
    ],
)
def test_another_os_does_not_take_this_machines_cpu(
    overrides: FactOverrides, arch: str, origin: str, detail: str
) -> None:
    facts = apply_overrides(_cpu_vm(), validate_overrides(overrides))
    assert (facts.arch.value, facts.arch.origin) == (arch, origin)
    assert detail in (facts.arch.detail or "")


def test_a_gpu_without_a_name_is_not_named_twice() -> None:
    """Issue 7 item 7: "GPU 1 (GPU 1)" when NVML could not read the name."""
    failure = next(f for f in NVML_FAILURES if f.id == "gpu-unknown-on-name")
    facts = facts_from_snapshot(replay_snapshot("h100-80gb-hbm3", nvml=failure.backend()))
    notes = "\n".join(facts.notes)
    assert "GPU 1" in notes
    assert "GPU 1 (GPU 1)" not in notes


# The same image started on a CPU-only instance: the NVIDIA driver's library is installed but
# its kernel module cannot load (no card for it), and the PCI bus holds only the VM's emulated
# VGA (QEMU's standard VGA, 1234:1111, as a KVM guest shows it).
_CPU_INSTANCE_BUS = "/sys/bus/pci/devices/0000:00:02.0"


def _leftover_driver(**files: str) -> MachineSnapshot:
    failure = next(f for f in NVML_FAILURES if f.id == "driver-not-loaded")
    return replay_snapshot(
        "h100-80gb-hbm3",
        nvml=failure.backend(),
        files_extra={
            f"{_CPU_INSTANCE_BUS}/class": "0x030000\n",
            f"{_CPU_INSTANCE_BUS}/vendor": "0x1234\n",
            f"{_CPU_INSTANCE_BUS}/device": "0x1111\n",
            **files,
        },
    )


def test_a_failing_driver_without_an_nvidia_card_on_the_bus_plans_for_the_cpu() -> None:
    from dlready.install.judge import recommended_plan

    snapshot = _leftover_driver()
    facts = facts_from_snapshot(snapshot)
    assert facts.nvidia_fault is None
    assert facts.accelerator.value == "cpu"
    assert any("no NVIDIA card is on the PCI bus" in note for note in facts.notes)
    plan = recommended_plan(snapshot)
    assert plan is not None
    assert plan.variant == "cpu"


def test_a_failing_driver_is_still_a_broken_gpu_where_the_bus_cannot_rule_one_out() -> None:
    # No PCI bus to read (this recording), or WSL (whose GPU is not on the guest's bus): the
    # driver's failure is the only evidence, and it stands.
    assert facts_from_snapshot(_driver_not_loaded()).nvidia_fault is not None
    wsl = _leftover_driver(
        **{"/proc/version": "Linux version 5.15.167.4-microsoft-standard-WSL2 (root@a) #1 SMP\n"}
    )
    assert wsl.platform.is_wsl.value is True
    assert facts_from_snapshot(wsl).nvidia_fault is not None


def test_check_and_fit_agree_that_a_leftover_driver_is_no_gpu() -> None:
    from dlready.commands.check import build_report
    from dlready.fit.plan import machine_from_snapshot

    snapshot = _leftover_driver()
    report, _build = build_report(snapshot, None, None)
    gpu = next(c for c in report.components if c.component == "gpu")
    assert gpu.advice.startswith("No GPU found")
    assert "no NVIDIA card is on the PCI bus" in gpu.advice
    assert "fix" not in gpu.advice.lower()
    machine_from_snapshot(snapshot)  # judged on the CPU: no "fix the driver" refusal
