"""Pure verdict functions and spec profiles, tested from tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from msgspec.structs import replace

from dlready.install.torch_fit import FitStatus, TorchFit
from dlready.model import MachineSnapshot, PowerSupplyInfo, Reading, ReadState, Source
from dlready.spec.profile import (
    SpecError,
    builtin_profile_names,
    load_builtin_profile,
    load_profile_file,
    parse_profile,
)
from dlready.spec.verdict import (
    Direction,
    FailOn,
    Status,
    judge,
    judge_number,
    judge_software,
    power_budget,
    worst,
)
from machines import replay_snapshot

BOOK = load_builtin_profile("book-2020")
CURRENT = load_builtin_profile("current")


@pytest.mark.parametrize(
    ("value", "minimum", "recommended", "direction", "expected"),
    [
        pytest.param(2, 4, 12, Direction.AT_LEAST, Status.BELOW_MINIMUM, id="below"),
        pytest.param(4, 4, 12, Direction.AT_LEAST, Status.MEETS_MINIMUM, id="at-minimum"),
        pytest.param(12, 4, 12, Direction.AT_LEAST, Status.MEETS_RECOMMENDED, id="at-recommended"),
        pytest.param(5, 4, None, Direction.AT_LEAST, Status.MEETS_RECOMMENDED, id="no-recommended"),
        pytest.param(3, None, 12, Direction.AT_LEAST, Status.MEETS_MINIMUM, id="no-minimum"),
        pytest.param(95, 90, 80, Direction.AT_MOST, Status.BELOW_MINIMUM, id="too-hot"),
        pytest.param(85, 90, 80, Direction.AT_MOST, Status.MEETS_MINIMUM, id="warm"),
        pytest.param(40, 90, 80, Direction.AT_MOST, Status.MEETS_RECOMMENDED, id="cool"),
        pytest.param(None, 4, 12, Direction.AT_LEAST, Status.UNKNOWN, id="not-read"),
    ],
)
def test_judge_number(
    value: float | None,
    minimum: float | None,
    recommended: float | None,
    direction: Direction,
    expected: Status,
) -> None:
    reading: Reading[float] = (
        Reading.read(value, Source.PROCFS)
        if value is not None
        else Reading.unsupported(Source.SYSFS, "no cpufreq")
    )
    assert judge_number(reading, minimum, recommended, direction) is expected


def test_worst_orders_below_then_unknown() -> None:
    assert worst([Status.MEETS_RECOMMENDED, Status.UNKNOWN]) is Status.UNKNOWN
    assert worst([Status.UNKNOWN, Status.BELOW_MINIMUM]) is Status.BELOW_MINIMUM
    assert worst([]) is Status.UNKNOWN


# --- profiles ---------------------------------------------------------------------------------


def test_builtin_profiles_load_and_book_is_the_seed_table() -> None:
    assert builtin_profile_names() == ["book-2020", "current"]
    # The seed: i5/i7, 16/64 GB, GTX 1060 6GB (6.1) / RTX 2080 Ti (7.5), 500 W per GPU.
    assert BOOK.gpu.minimum["compute_capability"] == "6.1"
    assert BOOK.gpu.recommended["compute_capability"] == "7.5"
    assert BOOK.memory.minimum["effective_total_gib"] < 16 < 64
    assert BOOK.psu.watts_per_gpu == 500
    for profile in (BOOK, CURRENT):
        for part in (profile.cpu, profile.memory, profile.gpu, profile.cooling):
            assert part.reasoning, f"{profile.name}: every part carries its reasoning"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            ("vram_gib = 7.84", "vram_gb = 7.84"),
            r"x\.toml:\d+: gpu\.minimum\.vram_gb: unknown key",
            id="typo-key",
        ),
        pytest.param(
            ("usable_cpus = 12", 'usable_cpus = "many"'),
            r"cpu\.recommended\.usable_cpus: expected a whole number from 0 to 1,000,000",
            id="wrong-type",
        ),
        pytest.param(
            ('compute_capability = "8.0"', "compute_capability = 8.0"),
            r"compute_capability: expected a compute capability",
            id="capability-not-text",
        ),
        pytest.param(
            ("schema = 1", "schema = 2"),
            r"x\.toml:\d+: schema: version 2 is not supported",
            id="future-schema",
        ),
        pytest.param(("[cooling]", "[coolant]"), r"\[coolant\]: unknown table", id="unknown-table"),
        pytest.param(
            ("[gpu.minimum]", "[gpu.minimum"), r"x\.toml: not valid TOML: .*line \d+", id="syntax"
        ),
    ],
)
def test_spec_errors_name_file_line_and_key(edit: tuple[str, str], message: str) -> None:
    text = (Path(__file__).parents[1] / "src/dlready/spec/profiles/current.toml").read_text()
    assert edit[0] in text
    with pytest.raises(SpecError, match=message):
        parse_profile(text.replace(edit[0], edit[1], 1), origin="x.toml")


def test_spec_error_line_number_is_the_key_line() -> None:
    text = 'schema = 1\nname = "x"\ntitle = "t"\n\n[gpu.minimum]\nvram_gib = 8\nvram_gb = 9\n'
    with pytest.raises(SpecError, match=r"^x\.toml:7: gpu\.minimum\.vram_gb"):
        parse_profile(text, origin="x.toml")


def test_unknown_profile_and_unreadable_spec_file(tmp_path: Path) -> None:
    with pytest.raises(
        SpecError, match="unknown profile 'book'; choose one of: book-2020, current"
    ):
        load_builtin_profile("book")
    with pytest.raises(SpecError, match="cannot read"):
        load_profile_file(tmp_path / "missing.toml")


def test_minimal_user_spec_judges_only_what_it_names(tmp_path: Path) -> None:
    spec = tmp_path / "lab.toml"
    spec.write_text(
        'schema = 1\nname = "lab"\ntitle = "Lab: 48 GiB GPUs"\n[gpu.minimum]\nvram_gib = 47\n'
    )
    profile = load_profile_file(spec)
    report = judge(replay_snapshot("h100-80gb-hbm3"), profile)
    gpu = next(c for c in report.components if c.component == "gpu")
    vram = next(c for c in gpu.criteria if c.name == "vram_gib")
    assert vram.status is Status.MEETS_RECOMMENDED  # no recommended threshold: minimum is the bar
    assert report.profile == "lab"


# --- whole machines ----------------------------------------------------------------------------


def judged_component(report_components: tuple, name: str):  # type: ignore[no-untyped-def,type-arg]
    return next(c for c in report_components if c.component == name)


def test_h100_server_meets_the_book_recommendation_on_gpu_and_ram() -> None:
    snapshot = replay_snapshot("h100-80gb-hbm3")
    report = judge(snapshot, BOOK)
    gpu = judged_component(report.components, "gpu")
    assert gpu.subject == "GPU 0: NVIDIA H100 80GB HBM3"
    assert gpu.status is Status.MEETS_RECOMMENDED
    measured = {c.name: c.measured for c in gpu.criteria}
    # 2 x 16896 CUDA cores x 1980 MHz = 66.9 TFLOP/s; 85520809984 bytes = 79.65 GiB.
    assert measured == {
        "vram_gib": 79.65,
        "compute_capability": "9.0",
        "fp32_tflops": 66.91,
        "pcie_width_lanes": 16.0,
    }
    assert judged_component(report.components, "memory").status is Status.MEETS_RECOMMENDED
    # The VM hides its maximum clock: the CPU is judged by its core count, and the clock is
    # listed as not judged (with its reason).
    cpu = judged_component(report.components, "cpu")
    assert cpu.status is Status.MEETS_RECOMMENDED
    assert cpu.not_judged == ("max_clock_mhz",)
    assert "maximum clock is unknowable" in cpu.advice
    assert report.status is Status.MEETS_RECOMMENDED
    assert report.unknown_parts == ("Power supply", "PyTorch")
    assert not report.fails(FailOn.RECOMMENDED)
    assert report.fails(FailOn.MINIMUM, strict=True)


def test_cpu_only_vm_is_below_minimum_for_cores_and_gpu() -> None:
    report = judge(replay_snapshot("cpu-only-epyc-vm"), BOOK)
    assert judged_component(report.components, "cpu").status is Status.BELOW_MINIMUM
    gpu = judged_component(report.components, "gpu")
    assert gpu.status is Status.BELOW_MINIMUM
    assert "No GPU found" in gpu.advice
    assert report.fails(FailOn.MINIMUM)


def test_psu_budget_uses_nvml_power_limits_and_the_book_rule() -> None:
    snapshot = _physical(replay_snapshot("h100-80gb-hbm3"))
    budget = power_budget(snapshot, BOOK)
    # 700 W enforced limit (NVML 700000 mW) + Xeon 270 W + 75 W base, +20%.
    assert budget.gpu_w == 700
    assert budget.parts_w == 700 + 270 + 75
    assert budget.minimum_w == round(1045 * 1.2)
    assert budget.book_rule_w == 500


def test_a_vm_is_charged_for_its_vcpus_not_the_hosts_whole_cpu() -> None:
    # The recording is a 16-vCPU VM on a Xeon: 270 W x 16 / 64 threads = 67.5 W.
    vm = replay_snapshot("h100-80gb-hbm3")
    assert vm.cpu.logical_cpus.value == 16
    assert power_budget(vm, BOOK).cpu_w == 270 * 16 / 64
    # The 2-vCPU EPYC VM: 360 W x 2 / 64 = 11.25 W, not a whole server CPU.
    assert power_budget(replay_snapshot("cpu-only-epyc-vm"), BOOK).cpu_w == 360 * 2 / 64


def test_in_a_vm_the_psu_row_gives_the_figure_a_physical_machine_needs() -> None:
    report = judge(replay_snapshot("h100-80gb-hbm3"), BOOK)
    psu = judged_component(report.components, "psu")
    need = report.power_budget.minimum_w
    assert psu.status is Status.UNKNOWN
    assert [c.minimum for c in psu.criteria] == [need]
    assert f"would need at least {need:,.0f} W" in psu.advice


@pytest.mark.parametrize(
    ("declared_w", "expected"),
    [
        pytest.param(1000.0, Status.BELOW_MINIMUM, id="1000W-too-small"),
        pytest.param(1300.0, Status.MEETS_RECOMMENDED, id="1300W"),
        pytest.param(None, Status.UNKNOWN, id="undeclared"),
    ],
)
def test_psu_verdict_on_a_physical_h100_machine(declared_w: float | None, expected: Status) -> None:
    snapshot = _physical(replay_snapshot("h100-80gb-hbm3", psu_watts=declared_w))
    psu = judged_component(judge(snapshot, BOOK).components, "psu")
    assert psu.status is expected
    if expected is Status.UNKNOWN:
        assert "needs at least 1,254 W" in psu.advice
        assert "--psu-watts" in psu.advice


def _physical(snapshot: MachineSnapshot) -> MachineSnapshot:
    """The same parts in a physical box (the recording is a Firecracker VM)."""
    platform = replace(snapshot.platform, is_virtual_machine=Reading.read(False, Source.PROCFS))
    return replace(snapshot, platform=platform)


def test_psu_from_dmi_when_not_declared() -> None:
    snapshot = _physical(replay_snapshot("h100-80gb-hbm3"))
    snapshot = replace(
        snapshot,
        power_supply=PowerSupplyInfo(
            declared_capacity_w=snapshot.power_supply.declared_capacity_w,
            dmi_capacity_w=Reading.read(2000.0, Source.DMI),
        ),
    )
    psu = judged_component(judge(snapshot, BOOK).components, "psu")
    assert psu.status is Status.MEETS_RECOMMENDED
    assert psu.criteria[0].source == "dmi"


@pytest.mark.parametrize(
    ("finding", "status", "advice_part"),
    [
        pytest.param(TorchFit(FitStatus.FITS), Status.MEETS_RECOMMENDED, "", id="fits"),
        pytest.param(
            TorchFit(
                FitStatus.MISMATCH,
                problems=["CPU build on an NVIDIA machine."],
                fix_command="pip install x",
            ),
            Status.BELOW_MINIMUM,
            "CPU build on an NVIDIA machine. Reinstall it with the command below.",
            id="mismatch",
        ),
        pytest.param(None, Status.UNKNOWN, "Not judged", id="planner-missing"),
    ],
)
def test_software_verdict(finding: TorchFit | None, status: Status, advice_part: str) -> None:
    verdict = judge_software(finding)
    assert verdict.status is status
    assert advice_part in verdict.advice


def test_failed_reading_keeps_its_reason_in_the_verdict() -> None:
    snapshot = replay_snapshot("h100-80gb-hbm3")
    gpu = replace(
        snapshot.gpus[0],
        memory_total_bytes=Reading.failed(Source.NVML, "NVMLError_Unknown: Unknown Error"),
    )
    report = judge(replace(snapshot, gpus=(gpu,)), BOOK)
    vram = next(
        c for c in judged_component(report.components, "gpu").criteria if c.name == "vram_gib"
    )
    assert vram.status is Status.UNKNOWN
    assert "NVMLError_Unknown" in vram.advice
    assert gpu.memory_total_bytes.state is ReadState.FAILED


def test_problems_read_as_sentences_and_warnings_become_notes() -> None:
    finding = TorchFit(
        FitStatus.MISMATCH,
        problems=["needs driver >= 580", '"no kernel image is available"'],
        fix_command="pip install y",
        warnings=["only runs on the CPU here"],
    )
    verdict = judge_software(finding)
    assert verdict is not None
    # Each sentence starts with a capital; the command is printed on its own line, not here.
    assert verdict.advice == (
        'Needs driver >= 580. "no kernel image is available". Reinstall it with the command below.'
    )
    assert "pip install y" not in verdict.advice
    assert verdict.notes == ("only runs on the CPU here",)


def test_torch_not_installed_is_not_a_part_to_judge() -> None:
    # check runs before PyTorch is installed: --strict must not fail for that alone.
    assert (
        judge_software(TorchFit(FitStatus.NOT_INSTALLED, fix_command="pip install torch")) is None
    )
    snapshot = replay_snapshot("h100-80gb-hbm3")
    report = judge(snapshot, BOOK, TorchFit(FitStatus.NOT_INSTALLED), "pip install torch")
    assert "software" not in {c.component for c in report.components}
    assert report.install_command == "pip install torch"
