"""Human output of ``check`` and ``smoke``: plain words, honest labels, control characters
escaped (issue 7 items 7-9, issue 8's escaping)."""

from __future__ import annotations

import io
import re

import pytest
from msgspec.structs import replace
from rich.console import Console

from dlready.model import MachineSnapshot, Reading, Source, StackState
from dlready.probes.nvml_gateway import CLOCK_EVENT_REASONS
from dlready.render.check_render import render_markdown, render_table
from dlready.render.smoke_render import rank_label, render_report, split_command
from dlready.render.text import printable
from dlready.smoke.report import CheckResult, CheckStatus, DeviceReport, SmokeReport
from dlready.spec.profile import load_builtin_profile
from dlready.spec.verdict import judge
from machines import replay_snapshot
from scenarios_gpu import NVML_FAILURES, nvidia_scenario, nvml_error

BOOK = load_builtin_profile("book-2020")
H100 = "h100-80gb-hbm3"
# Names of the model that must never reach a person: driver states and clock-event reasons.
RAW_NAMES = [s.value for s in StackState if "_" in s.value] + [
    name for name, _, _ in CLOCK_EVENT_REASONS if "_" in name
]


def _human(snapshot: MachineSnapshot, width: int = 120, origin: str | None = None) -> str:
    report = judge(snapshot, BOOK)
    buffer = io.StringIO()
    render_table(report, snapshot, Console(file=buffer, width=width, color_system=None), origin)
    return buffer.getvalue() + "\n" + render_markdown(report, snapshot, origin)


def _throttling() -> MachineSnapshot:
    # 0x60: sw_thermal_slowdown + hw_thermal_slowdown (nvidia-smi -q "Clocks Event Reasons").
    nvml = nvidia_scenario("rtx-2080-ti-desktop").replay()
    nvml = nvml.with_gpu_overrides({"nvmlDeviceGetCurrentClocksEventReasons": 0x60}, index=0)
    return replay_snapshot(H100, nvml=nvml)


SCENARIOS = {
    "h100": lambda: replay_snapshot(H100),
    "cpu-vm": lambda: replay_snapshot("cpu-only-epyc-vm"),
    "thermal-throttling": _throttling,
    **{
        f"nvml-{f.id}": (lambda f=f: replay_snapshot(H100, nvml=f.backend())) for f in NVML_FAILURES
    },
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_no_internal_names_in_human_output(scenario: str) -> None:
    text = _human(SCENARIOS[scenario]())
    for raw in RAW_NAMES:
        assert raw not in text, (raw, scenario)
    assert "not Linux?" not in text
    assert re.search(r"GPU (\d+) \(GPU \1\)", text) is None
    assert re.search(r"driver ,", text) is None


def test_thermal_throttling_is_said_in_words() -> None:
    text = _human(_throttling())
    assert "heat (hardware slowdown), heat (driver slowdown)" in text
    assert "GPU 0 heat throttling" in text


def test_labels_say_what_the_numbers_are() -> None:
    text = _human(replay_snapshot(H100))
    assert "FP32 at max clock" in text  # not a spec-sheet (boost clock) figure
    assert "GPU 0 below slowdown" in text  # a margin, not a temperature
    assert "temp margin" not in text
    # The text report shows what the JSON has: temperature, power and the PCIe link.
    assert "PCIe Gen5 x16" in text
    assert "°C now" in text
    assert "power limit 700 W" in text


def test_numbers_are_formatted_one_way() -> None:
    snapshot = replay_snapshot(H100, nvml=nvidia_scenario("4x-rtx-4090").replay(), psu_watts=1200)
    text = _human(snapshot)
    assert "1,200 W" in text
    assert re.search(r"\b\d{4,} W\b", text) is None  # never "2574 W" beside "1,200 W"


def test_cooling_advice_does_not_deny_the_sensors_it_read() -> None:
    report = judge(replay_snapshot(H100), BOOK)
    cooling = next(c for c in report.components if c.component == "cooling")
    assert cooling.criteria
    assert "no temperature sensors" not in cooling.advice.lower()


def test_identical_gpus_share_rows_and_notes() -> None:
    snapshot = replay_snapshot(H100, nvml=nvidia_scenario("4x-rtx-4090").replay())
    text = _human(snapshot)
    assert "GPU 0-3: 4x NVIDIA GeForce RTX 4090" in text
    assert "GPU 0-3 (4x NVIDIA GeForce RTX 4090)" in text  # the Markdown part title
    assert text.count("Persistence mode is off") == 2  # once in the table, once in Markdown
    assert "GPU 1" not in text


def test_snapshot_output_says_it_is_a_snapshot_of_which_host_and_when() -> None:
    snapshot = replay_snapshot(H100)
    text = _human(snapshot, origin="h100.json")
    host = snapshot.platform.hostname.value
    assert f"Saved snapshot h100.json of {host}, captured {snapshot.captured_at}" in text


def test_an_empty_driver_version_is_not_printed_as_a_blank() -> None:
    snapshot = replay_snapshot(H100)
    stacks = tuple(
        replace(s, driver_version=Reading.read("", Source.NVML)) for s in snapshot.driver_stacks
    )
    text = _human(replace(snapshot, driver_stacks=stacks))
    assert "driver ," not in text
    assert "driver version unreadable, CUDA 13.0" in text


HOSTILE = "RTX\x1b[2K\rOverall: OK\nGPU 9\x07\u202e"


def test_control_characters_from_another_host_are_escaped() -> None:
    snapshot = replay_snapshot(H100)
    gpu = replace(snapshot.gpus[0], name=Reading.read(HOSTILE, Source.NVML))
    cpu = replace(snapshot.cpu, brand=Reading.read("Xeon\x1b]0;title\x07", Source.PROCFS))
    platform = replace(snapshot.platform, hostname=Reading.read("evil\rhost", Source.PLATFORM))
    hostile = replace(snapshot, gpus=(gpu,), cpu=cpu, platform=platform, captured_at="2026\x1b[1A")
    text = _human(hostile, origin="snap\r.json")
    assert "\x1b" not in text
    assert "\r" not in text
    assert "\x07" not in text
    assert "\u202e" not in text
    assert "RTX\\x1b[2K\\rOverall: OK\\nGPU 9\\x07\\u202e" in text
    assert not any(line.startswith("Overall: OK") for line in text.splitlines())


def test_printable_keeps_ordinary_text() -> None:
    assert (
        printable("NVIDIA GeForce RTX 4090 · 37 °C — ok") == "NVIDIA GeForce RTX 4090 · 37 °C — ok"
    )
    assert printable("a\tb\x00") == "a\\tb\\x00"


# --- smoke -------------------------------------------------------------------------------------


def _smoke_report(fix: str, message: str = "ok") -> SmokeReport:
    check = CheckResult(
        name="device",
        status=CheckStatus.FAIL,
        message=message,
        duration_s=0.1,
        explanation="the installed torch is a CPU-only build, so it cannot use the NVIDIA GPU",
        fix=fix,
    )
    device = DeviceReport(requested="cuda", device="cuda:0", info={}, checks=(check,))
    return SmokeReport(mode="quick", torch=None, devices=(device,), wall_s=1.0)


COMMAND = (
    "pip install torch==2.14.1 torchvision==0.29.1 --index-url "
    "https://download.pytorch.org/whl/cu130"
)


@pytest.mark.parametrize("width", [40, 60, 80])
def test_smoke_fix_command_is_printed_whole_on_its_own_line(width: int) -> None:
    buffer = io.StringIO()
    report = _smoke_report(f"install the matching build: {COMMAND}", "\x1b[2Kfake pass")
    render_report(report, Console(file=buffer, width=width, color_system=None))
    lines = buffer.getvalue().splitlines()
    assert f"    {COMMAND}" in lines
    assert "  fix: install the matching build:" in lines
    assert "\x1b" not in buffer.getvalue()


def test_split_command() -> None:
    assert split_command(f"install it: {COMMAND}") == ("install it:", COMMAND)
    assert split_command("check `nvidia-smi`: then rerun") == (
        "check `nvidia-smi`: then rerun",
        None,
    )


def test_smoke_reports_of_torchrun_ranks_are_labelled() -> None:
    label = rank_label({"RANK": "1", "WORLD_SIZE": "4", "LOCAL_RANK": "1"})
    assert label == "rank 1 of 4 (local rank 1)"
    assert rank_label({}) is None
    buffer = io.StringIO()
    render_report(_smoke_report("x"), Console(file=buffer, width=100, color_system=None), label)
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("dlready smoke (quick) · rank 1 of 4 (local rank 1)")
    assert lines[-1].startswith("rank 1 of 4 (local rank 1): 1 checks")


def test_a_gpu_without_a_readable_name_is_named_in_words() -> None:
    nvml = (
        nvidia_scenario("4x-rtx-4090")
        .replay()
        .with_gpu_overrides({"nvmlDeviceGetHandleByIndex": nvml_error("GPU_IS_LOST")}, index=2)
    )
    text = _human(replay_snapshot(H100, nvml=nvml))
    assert "GPU 2: NVIDIA GPU (name unreadable)" in text
    assert "nvidia GPU" not in text
    assert "CPU (Intel(R) Xeon(R) Processor)" in text  # the Markdown part title says what it is


def test_smoke_heading_says_how_the_build_serves_the_gpu() -> None:
    from dlready.render.smoke_render import device_heading

    info = {"name": "NVIDIA H100", "compute_capability": "9.0", "arch": "sm_90"}
    for support, words in (
        ("native", "this build has native code for sm_90"),
        ("ptx", "only through PTX"),
        ("missing", "this build has no code for sm_90"),
    ):
        device = DeviceReport("auto", "cuda:0", {**info, "arch_in_build": support}, ())
        heading = device_heading(_smoke_report("x"), device)
        assert words in heading
        assert f"{support} in this build" not in heading


def test_a_failed_probe_is_named_in_words() -> None:
    from dlready.model import ProbeError

    snapshot = replay_snapshot(H100)
    broken = replace(snapshot, errors=(ProbeError("nvidia", "RuntimeError: boom"),))
    text = _human(broken)
    assert "Reading the NVIDIA GPUs failed (RuntimeError: boom)" in text
    assert "probe nvidia" not in text


def test_a_spec_title_with_control_characters_is_escaped() -> None:
    from dlready.spec.profile import parse_profile

    spec = parse_profile(
        'schema = 1\nname = "lab\\u001b[2J"\ntitle = "Lab\\r\\u001b[32mOverall: OK"\n'
        "[memory.minimum]\neffective_total_gib = 1\n",
        "lab.toml",
    )
    snapshot = replay_snapshot(H100)
    report = judge(snapshot, spec)
    buffer = io.StringIO()
    render_table(report, snapshot, Console(file=buffer, width=80, color_system=None))
    text = buffer.getvalue() + render_markdown(report, snapshot)
    assert "\x1b" not in text
    assert "\r" not in text
    assert "Lab\\r\\x1b[32mOverall: OK" in text


def test_cudnn_version_as_people_write_it() -> None:
    from dlready.render.smoke_render import cudnn_version_text

    assert cudnn_version_text(91900) == "9.19.0"  # the H100 server's torch 2.11.0+cu130
    assert cudnn_version_text(90100) == "9.1.0"
    assert cudnn_version_text(8907) == "8.9.7"


def test_identical_gpus_below_minimum_are_grouped_too() -> None:
    nvml = nvidia_scenario("gtx-1060-laptop").replay()
    one = replay_snapshot(H100, nvml=nvml)
    two = replace(one, gpus=(one.gpus[0], replace(one.gpus[0], index=1)))
    text = _human(two)
    assert "GPU 0, 1: 2x NVIDIA GeForce GTX 1060 with Max-Q Design" in text
    assert text.count("2020 advice no longer holds") == 2  # once in the table, once in Markdown


def test_the_summary_and_the_table_give_the_same_figures() -> None:
    snapshot = replay_snapshot(H100, nvml=nvidia_scenario("4x-rtx-4090").replay())
    text = _human(snapshot)
    assert "4x NVIDIA GeForce RTX 4090, 23.99 GiB" in text
    assert "| | VRAM | meets rec | 23.99 GiB |" in text
    assert "24.0 GiB" not in text


def test_smoke_json_says_which_rank_it_is() -> None:
    from dlready.render.smoke_render import report_data

    environ = {"RANK": "3", "WORLD_SIZE": "8", "LOCAL_RANK": "3"}
    data = report_data(_smoke_report("x"), environ)
    assert data["rank"] == {"rank": 3, "world_size": 8, "local_rank": 3}
    assert report_data(_smoke_report("x"))["rank"] is None


def test_the_overall_line_names_an_unjudged_cooling_criterion_once() -> None:
    """Cooling's criteria say what they measure: "CPU package temperature", not "Cooling CPU
    package temperature"; other parts keep their name before the criterion."""
    from dlready.render.check_render import not_judged
    from dlready.spec.profile import load_builtin_profile
    from dlready.spec.verdict import judge
    from machines import replay_snapshot

    report = judge(replay_snapshot("h100-80gb-hbm3"), load_builtin_profile("book-2020"))
    items = not_judged(report)
    assert "CPU package temperature" in items
    assert "CPU max clock" in items
    assert not [item for item in items if item.startswith("Cooling ")]


def test_one_of_a_unit_is_singular() -> None:
    from dlready.render.check_render import _fmt

    assert _fmt(1, "CPUs") == "1 CPU"
    assert _fmt(2, "CPUs") == "2 CPUs"
    assert _fmt(1.0, "lanes") == "1 lane"


def test_a_macs_gpu_driver_is_named_as_part_of_macos() -> None:
    """Apple's GPU driver ships with macOS: the version read is the system's, not a driver's."""
    from dlready.render.check_render import machine_summary
    from dlready.spec.profile import load_builtin_profile
    from dlready.spec.verdict import judge
    from test_scenarios import _apple_m2

    snapshot = _apple_m2()
    lines = dict(machine_summary(snapshot, judge(snapshot, load_builtin_profile("book-2020"))))
    assert lines["Apple GPU"] == "Metal, part of macOS 14.5"
    assert "Apple driver" not in lines


def test_a_macs_gpu_says_its_memory_is_the_ram() -> None:
    from dlready.spec.profile import load_builtin_profile
    from dlready.spec.verdict import judge
    from test_scenarios import _apple_m2

    report = judge(_apple_m2(), load_builtin_profile("book-2020"))
    (gpu,) = [c for c in report.components if c.component == "gpu"]
    assert any(
        note.startswith("Unified memory: the GPU's memory is the machine's RAM")
        for note in gpu.notes
    )
