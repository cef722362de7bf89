"""Verdicts that can be trusted: an unknown never hides or lifts a known result, a custom spec
judges only what it names, a present-but-broken GPU is not ready (issue 7, items 1-3)."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec.structs import replace
from typer.testing import CliRunner

from dlready.cli import app
from dlready.exitcodes import ExitCode
from dlready.install.torch_fit import FitStatus, TorchFit
from dlready.model import MachineSnapshot, Reading, ReadState, Source, to_jsonable
from dlready.spec.profile import load_builtin_profile, parse_profile
from dlready.spec.verdict import (
    _SEVERITY,
    CheckReport,
    FailOn,
    Status,
    broken_gpu_reason,
    judge,
    judge_number,
)
from machines import replay_snapshot
from scenarios_gpu import nvidia_scenario

runner = CliRunner()
BOOK = load_builtin_profile("book-2020")
H100 = "h100-80gb-hbm3"

# Minimum met (16 CPUs >= 4), recommended core count not met (16 < 32), clock unreadable in
# the recorded VM (no cpufreq): the case of issue 7, item 1.
CORES_SPEC = """schema = 1
name = "cores"
title = "Cores"
[cpu.minimum]
usable_cpus = 4
max_clock_mhz = 3000
[cpu.recommended]
usable_cpus = 32
max_clock_mhz = 4000
"""


def _part(report: CheckReport, component: str):  # type: ignore[no-untyped-def]
    return next(c for c in report.components if c.component == component)


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _saved(tmp_path: Path, snapshot: MachineSnapshot, name: str = "snapshot.json") -> Path:
    return _write(tmp_path, name, json.dumps(to_jsonable(snapshot)))


# --- item 1: an unknown criterion never hides a known result ----------------------------------


def test_unreadable_clock_does_not_hide_a_missed_recommendation() -> None:
    report = judge(replay_snapshot(H100), parse_profile(CORES_SPEC, "cores.toml"))
    cpu = _part(report, "cpu")
    assert cpu.status is Status.MEETS_MINIMUM
    assert cpu.not_judged == ("max_clock_mhz",)
    assert "Max clock not judged" in cpu.advice
    assert report.status is Status.MEETS_MINIMUM
    assert report.fails(FailOn.RECOMMENDED)
    assert not report.fails(FailOn.MINIMUM)
    assert report.fails(FailOn.MINIMUM, strict=True)  # --strict: everything must be measured


def test_cli_fail_on_recommended_exits_1_and_the_overall_line_says_why(tmp_path: Path) -> None:
    spec = _write(tmp_path, "cores.toml", CORES_SPEC)
    snapshot = _saved(tmp_path, replay_snapshot(H100))
    args = ["check", "--snapshot", str(snapshot), "--spec", str(spec)]
    result = runner.invoke(app, [*args, "--fail-on", "recommended"])
    assert result.exit_code == ExitCode.NOT_READY
    assert "Overall: meets min · not judged: CPU max clock" in result.stdout
    assert runner.invoke(app, args).exit_code == ExitCode.OK
    document = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    cpu = next(c for c in document["data"]["components"] if c["component"] == "cpu")
    assert cpu["status"] == "meets_minimum"
    assert cpu["not_judged"] == ["max_clock_mhz"]
    assert {"part": cpu["subject"], "criteria": ["max_clock_mhz"]} in document["data"]["not_judged"]


def test_a_part_with_every_criterion_unknown_is_not_judged_and_nothing_judged_fails() -> None:
    spec = parse_profile(
        'schema = 1\nname = "clock"\ntitle = "Clock"\n[cpu.minimum]\nmax_clock_mhz = 3000\n',
        "clock.toml",
    )
    report = judge(replay_snapshot(H100), spec)
    cpu = _part(report, "cpu")
    assert cpu.status is Status.UNKNOWN
    assert cpu.not_judged == ("max_clock_mhz",)
    # Only the PyTorch part is left, and it is not judged either (no planner finding here):
    # no verdict at all is not a pass.
    assert report.status is Status.UNKNOWN
    assert report.fails(FailOn.MINIMUM)


statuses = st.sampled_from([Status.BELOW_MINIMUM, Status.MEETS_MINIMUM, Status.MEETS_RECOMMENDED])


@st.composite
def _cpu_case(draw: st.DrawFn) -> tuple[float | None, float | None, float, float, float, float]:
    cpus = draw(st.one_of(st.none(), st.integers(1, 256).map(float)))
    clock = draw(st.one_of(st.none(), st.integers(800, 6000).map(float)))
    cpu_min = draw(st.integers(1, 64))
    cpu_rec = draw(st.integers(cpu_min, 128))
    clock_min = draw(st.integers(1000, 4000))
    clock_rec = draw(st.integers(clock_min, 6000))
    return cpus, clock, cpu_min, cpu_rec, clock_min, clock_rec


_VM = replay_snapshot(H100)


def _with_cpu(cpus: float | None, clock: float | None) -> MachineSnapshot:
    def reading(value: float | None) -> Reading[float]:
        if value is None:
            return Reading.failed(Source.SYSFS, "unreadable here")
        return Reading.read(value, Source.SYSFS)

    return replace(
        _VM, cpu=replace(_VM.cpu, usable_cpus=reading(cpus), max_clock_mhz=reading(clock))
    )


@settings(max_examples=150, deadline=None)
@given(case=_cpu_case(), fail_on=st.sampled_from(list(FailOn)))
def test_property_a_part_never_exceeds_what_its_known_criteria_allow(
    case: tuple[float | None, float | None, float, float, float, float], fail_on: FailOn
) -> None:
    cpus, clock, cpu_min, cpu_rec, clock_min, clock_rec = case
    spec = parse_profile(
        f'schema = 1\nname = "p"\ntitle = "p"\n[cpu.minimum]\nusable_cpus = {cpu_min}\n'
        f"max_clock_mhz = {clock_min}\n[cpu.recommended]\nusable_cpus = {cpu_rec}\n"
        f"max_clock_mhz = {clock_rec}\n",
        "p.toml",
    )
    report = judge(_with_cpu(cpus, clock), spec)
    cpu = _part(report, "cpu")
    known = [
        judge_number(Reading.read(value, Source.SYSFS), low, high)
        for value, low, high in ((cpus, cpu_min, cpu_rec), (clock, clock_min, clock_rec))
        if value is not None
    ]
    if known:
        # The known criteria decide: never above the worst of them, never below it.
        assert cpu.status is min(known, key=_SEVERITY.__getitem__)
    else:
        assert cpu.status is Status.UNKNOWN
    assert len(cpu.not_judged) == 2 - len(known)
    bar = Status.MEETS_RECOMMENDED if fail_on is FailOn.RECOMMENDED else Status.MEETS_MINIMUM
    if any(_SEVERITY[s] < _SEVERITY[bar] for s in known):
        assert report.fails(fail_on)  # never exit 0 with a part below the bar
    if cpu.not_judged:
        assert report.fails(fail_on, strict=True)


# --- item 2: a custom spec judges only what it names ------------------------------------------

LAB_SPEC = 'schema = 1\nname = "lab"\ntitle = "Lab"\n[gpu.minimum]\nvram_gib = 47\n'


def test_a_custom_spec_judges_only_what_it_names(tmp_path: Path) -> None:
    report = judge(replay_snapshot(H100), parse_profile(LAB_SPEC, "lab.toml"))
    assert [c.component for c in report.components] == ["gpu", "software"]
    gpu = _part(report, "gpu")
    assert [c.name for c in gpu.criteria] == ["vram_gib"]
    spec = _write(tmp_path, "lab.toml", LAB_SPEC)
    snapshot = _saved(tmp_path, replay_snapshot(H100))
    text = runner.invoke(app, ["check", "--snapshot", str(snapshot), "--spec", str(spec)]).stdout
    for unnamed in ("max clock", "usable CPUs", "usable RAM", "PSU rating", "FP32", "slowdown"):
        assert unnamed not in text.split("Part / criterion")[1], unnamed


def test_naming_a_gpu_criterion_requires_a_gpu_and_required_false_overrides() -> None:
    vm = replay_snapshot("cpu-only-epyc-vm")
    named = judge(vm, parse_profile(LAB_SPEC, "lab.toml"))
    assert _part(named, "gpu").status is Status.BELOW_MINIMUM
    optional = parse_profile(
        LAB_SPEC.replace("[gpu.minimum]", "[gpu]\nrequired = false\n[gpu.minimum]"), "x"
    )
    assert _part(judge(vm, optional), "gpu").status is Status.MEETS_RECOMMENDED
    nothing = parse_profile(
        'schema = 1\nname = "n"\ntitle = "n"\n[memory.minimum]\neffective_total_gib = 1\n', "n"
    )
    assert not nothing.gpu_required
    assert [c.component for c in judge(vm, nothing).components] == ["memory", "software"]
    required = parse_profile('schema = 1\nname = "r"\ntitle = "r"\n[gpu]\nrequired = true\n', "r")
    assert _part(judge(vm, required), "gpu").status is Status.BELOW_MINIMUM
    h100_gpu = _part(judge(replay_snapshot(H100), required), "gpu")
    assert h100_gpu.status is Status.MEETS_RECOMMENDED
    assert h100_gpu.criteria == ()


def test_builtin_profiles_still_judge_every_part() -> None:
    report = judge(replay_snapshot(H100), BOOK)
    assert [c.component for c in report.components] == [
        "cpu",
        "memory",
        "gpu",
        "psu",
        "cooling",
        "software",
    ]


# --- item 3: a GPU that is present but broken is not ready ------------------------------------


def test_a_gpu_failing_every_query_is_below_minimum() -> None:
    snapshot = replay_snapshot(H100)
    gpu = snapshot.gpus[0]
    failed = {
        f.name: Reading.failed(Source.NVML, "nvmlDeviceGetX: NVMLError_Timeout: Timeout")
        for f in msgspec.structs.fields(gpu)
        if isinstance(getattr(gpu, f.name), Reading)
    }
    dead = replace(gpu, **failed)
    assert all(getattr(dead, name).state is ReadState.FAILED for name in failed)
    assert broken_gpu_reason(dead) is not None
    assert broken_gpu_reason(gpu) is None
    report = judge(replace(snapshot, gpus=(dead,)), BOOK)
    part = _part(report, "gpu")
    assert part.status is Status.BELOW_MINIMUM
    assert "every query to GPU 0 failed" in part.advice
    assert report.fails(FailOn.MINIMUM)


def test_cli_lost_gpu_exits_1_with_its_fix_printed_once(tmp_path: Path) -> None:
    from scenarios_gpu import nvml_error

    nvml = (
        nvidia_scenario("4x-rtx-4090")
        .replay()
        .with_gpu_overrides({"nvmlDeviceGetHandleByIndex": nvml_error("GPU_IS_LOST")}, index=2)
    )
    snapshot = _saved(tmp_path, replay_snapshot(H100, nvml=nvml, psu_watts=3000))
    result = runner.invoke(app, ["check", "--snapshot", str(snapshot)])
    assert result.exit_code == ExitCode.NOT_READY
    assert result.stdout.count("Xid 79") == 1
    assert "GPU 2: This GPU is installed but does not work" in result.stdout
    assert "GPU 0, 1, 3" in result.stdout  # the three working cards share their rows


# --- item 8: the PyTorch status says what its advice says -------------------------------------


def test_a_build_that_fits_with_caveats_meets_only_the_minimum() -> None:
    from dlready.spec.verdict import judge_software

    caveat = (
        "2.11.0+cu130 is a CUDA build on a machine without an NVIDIA GPU: it runs on the CPU "
        "only (the CPU build is a much smaller download)"
    )
    verdict = judge_software(TorchFit(FitStatus.FITS, warnings=[caveat]))
    assert verdict is not None
    assert verdict.status is Status.MEETS_MINIMUM
    assert caveat in verdict.advice
    # Notes about the hardware facts are the hardware parts' to report, once.
    detection = judge_software(
        TorchFit(FitStatus.FITS, warnings=["detection: GPU 2: compute capability unknown"])
    )
    assert detection is not None
    assert detection.status is Status.MEETS_RECOMMENDED
    assert detection.notes == ()


def test_cooling_judges_the_margins_the_spec_names_and_always_throttling() -> None:
    spec = parse_profile(
        'schema = 1\nname = "c"\ntitle = "c"\n[cooling.minimum]\ncpu_package_max_c = 90\n', "c"
    )
    report = judge(replay_snapshot(H100), spec)
    cooling = _part(report, "cooling")
    assert [c.name for c in cooling.criteria] == ["cpu_package_c"]  # no GPU margin rows
    assert cooling.status is Status.UNKNOWN  # the VM has no CPU temperature sensor
    assert cooling.not_judged == ("cpu_package_c",)
    assert [c.component for c in report.components] == ["cooling", "software"]


def test_a_spec_that_names_nothing_judges_nothing_and_is_no_pass() -> None:

    spec = parse_profile('schema = 1\nname = "e"\ntitle = "e"\n', "e")
    report = judge(replay_snapshot(H100), spec, TorchFit(FitStatus.NOT_INSTALLED))
    assert report.components == ()
    assert report.status is Status.UNKNOWN
    assert report.fails(FailOn.MINIMUM)


any_status = st.sampled_from(list(Status))


@settings(max_examples=300, deadline=None)
@given(
    parts=st.lists(st.lists(any_status, min_size=1, max_size=5), min_size=1, max_size=6),
    fail_on=st.sampled_from(list(FailOn)),
    strict=st.booleans(),
)
def test_property_any_mix_of_parts_and_criteria(
    parts: list[list[Status]], fail_on: FailOn, strict: bool
) -> None:
    from dlready.spec.verdict import Criterion, judged_component, power_budget

    components = tuple(
        judged_component(
            "part",
            f"part {p}",
            [
                Criterion(f"c{i}", status, None, "", None, None, "derived", f"advice {i}")
                for i, status in enumerate(statuses)
            ],
        )
        for p, statuses in enumerate(parts)
    )
    judged = [c for c in components if c.status is not Status.UNKNOWN]
    report = CheckReport(
        "p",
        "p",
        "p",
        components,
        min((c.status for c in judged), key=_SEVERITY.__getitem__, default=Status.UNKNOWN),
        power_budget(_VM, BOOK),
    )
    bar = Status.MEETS_RECOMMENDED if fail_on is FailOn.RECOMMENDED else Status.MEETS_MINIMUM
    for component, statuses in zip(components, parts, strict=True):
        known = [s for s in statuses if s is not Status.UNKNOWN]
        # Never above what the known criteria allow, never hidden by an unknown one.
        expected = min(known, key=_SEVERITY.__getitem__) if known else Status.UNKNOWN
        assert component.status is expected
        assert len(component.not_judged) == len(statuses) - len(known)
        if known and _SEVERITY[expected] < _SEVERITY[bar]:
            assert report.fails(fail_on, strict)  # exit 0 never hides a part below the bar
    if not report.fails(fail_on, strict):
        assert judged  # a pass has a verdict behind it
        assert all(_SEVERITY[c.status] >= _SEVERITY[bar] for c in judged)
        if strict:
            assert all(c.status is not Status.UNKNOWN and not c.not_judged for c in components)
