"""`dlready check` says no more than was measured, each thing once, in plain words (issue 7).

Regressions from a QA pass, each on a replayed machine (tests/machines.py, scenarios_gpu.py).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from msgspec.structs import replace
from typer.testing import CliRunner

from dlready.cli import app
from dlready.commands.check import build_report
from dlready.model import MachineSnapshot, Reading, Source, ToolInfo, TorchInstall, to_jsonable
from dlready.render.check_render import machine_summary
from dlready.snapshot_file import SnapshotFileError, load_snapshot_file
from dlready.spec.bar import FailOn
from dlready.spec.profile import load_builtin_profile
from dlready.spec.verdict import Status, judge
from machines import replay_snapshot
from scenarios_gpu import NVML_FAILURES, old_driver_2080_ti
from test_scenarios import _amd_desktop, _bare_metal_cpuinfo, _nvidia

runner = CliRunner()
BOOK = load_builtin_profile("book-2020")


def _saved(tmp_path: Path, snapshot: MachineSnapshot, name: str = "snapshot.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(to_jsonable(snapshot)))
    return path


def _check(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["check", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def _broken_torch_snapshot() -> MachineSnapshot:
    # A torch package whose version.py is missing: installed, build never read.
    broken = TorchInstall(
        installed=True,
        version=Reading.failed(
            Source.PACKAGE_METADATA,
            "torch at /usr/lib/python3/site-packages/torch has no readable version.py: "
            "[Errno 2] No such file or directory",
        ),
    )
    return replay_snapshot("h100-80gb-hbm3", torch=broken)


def _failure(failure_id: str) -> MachineSnapshot:
    failure = next(f for f in NVML_FAILURES if f.id == failure_id)
    return replay_snapshot("h100-80gb-hbm3", nvml=failure.backend())


# --- 1. an integrated GPU is no GPU in the power budget ----------------------------------------


def test_integrated_gpu_is_not_counted_in_the_power_budget() -> None:
    report = judge(_amd_desktop(), BOOK)
    budget = report.power_budget
    # Only the RX 7900 XTX (its 315 W power cap); the 0.5 GiB iGPU draws inside the APU.
    assert budget.gpu_sources == ("GPU 0: 315 W (enforced limit, sysfs)",)
    assert budget.gpu_w == 315
    assert budget.book_rule_w == BOOK.psu.watts_per_gpu  # one GPU, not two
    cooling = next(c for c in report.components if c.component == "cooling")
    assert not any(c.name.startswith("gpu1_") for c in cooling.criteria)


# --- 2. a torch whose build cannot be read ---------------------------------------------------


def test_unreadable_torch_is_installed_and_its_build_not_judged() -> None:
    snapshot = _broken_torch_snapshot()
    report, build = build_report(snapshot, None, None, FailOn.BUILD)
    assert dict(machine_summary(snapshot))["PyTorch"] == "installed, version unreadable"
    torch_cuda = next(c for c in build.verdict.criteria if c.name == "torch_cuda")
    assert torch_cuda.status is Status.UNKNOWN
    assert torch_cuda.measured is None
    assert "CPU-only" not in build.verdict.advice
    software = next(c for c in report.components if c.component == "software")
    assert ". which" not in software.advice
    assert "Which build" in software.advice


# --- 3. the toolkit follows the PyTorch that fits, judged against GPU and driver --------------


def test_build_tools_point_at_the_build_that_fits_the_gtx_1060() -> None:
    from dlready.spec.build import toolkit_problems

    snapshot = _nvidia("gtx-1060-laptop")()  # driver 545, torch 2.11.0+cu130 installed
    _, build = build_report(snapshot, None, None)
    criteria = {c.name: c for c in build.verdict.criteria}
    assert criteria["torch_cuda"].status is Status.BELOW_MINIMUM
    assert "CUDA 12.6 toolkit" in criteria["nvcc"].advice
    assert "13.0" not in criteria["nvcc"].advice
    # The toolkit rules themselves: CUDA 13 compiles nothing for sm_61 and needs driver 580.
    problems = " ".join(toolkit_problems(snapshot, "13.0.88"))
    assert "compute capability 6.1" in problems
    assert "driver >= 580" in problems
    assert toolkit_problems(snapshot, "12.6.85") == []


def test_an_installed_toolkit_too_new_for_the_gpu_is_below_minimum() -> None:
    snapshot = _nvidia("gtx-1060-laptop")()
    assert snapshot.build is not None
    nvcc = ToolInfo(
        "nvcc",
        path=Reading.read("/usr/local/cuda-13.0/bin/nvcc", Source.PROGRAM),
        version=Reading.read("13.0.88", Source.PROGRAM),
    )
    snapshot = replace(snapshot, build=replace(snapshot.build, nvcc=nvcc))
    _, build = build_report(snapshot, None, None)
    criterion = next(c for c in build.verdict.criteria if c.name == "nvcc")
    assert criterion.status is Status.BELOW_MINIMUM
    assert "compute capability 6.1" in criterion.advice
    assert "CUDA 12.6 toolkit" in criterion.advice


# --- 4. exit 1 always says why ------------------------------------------------------------------


def test_strict_failure_is_explained_in_text_and_json(tmp_path: Path) -> None:
    path = _saved(tmp_path, replay_snapshot("h100-80gb-hbm3"))
    code, stdout, stderr = _check("--snapshot", str(path), "--strict")
    assert code == 1
    overall = next(line for line in stdout.splitlines() if line.startswith("Overall:"))
    assert "fails --strict: 3 items not judged" in overall
    assert stderr == ""  # said once, in the report
    code, stdout, _ = _check("--snapshot", str(path), "--strict", "--json")
    document = json.loads(stdout)
    assert (document["exit_code"], document["status"]) == (1, "meets_recommended")
    assert {e["code"] for e in document["errors"]} == {"not_judged"}
    assert {e["detail"]["part"] for e in document["errors"]} == {
        "Intel(R) Xeon(R) Processor",
        "Power supply",
        "Cooling",
    }


def test_fail_on_recommended_is_explained(tmp_path: Path) -> None:
    path = _saved(tmp_path, _nvidia("rtx-2080-ti-desktop", psu_watts=850)())
    code, stdout, _ = _check("--snapshot", str(path), "-p", "current", "--fail-on", "recommended")
    assert code == 1
    overall = next(line for line in stdout.splitlines() if line.startswith("Overall:"))
    assert "below the recommended bar (--fail-on recommended)" in overall
    code, stdout, _ = _check(
        "--snapshot", str(path), "-p", "current", "--fail-on", "recommended", "--json"
    )
    errors = json.loads(stdout)["errors"]
    assert errors
    assert all(e["code"] == "below_bar" for e in errors)
    assert "GPU 0: NVIDIA GeForce RTX 2080 Ti" in {e["detail"]["part"] for e in errors}


# --- 5. each reason once, in words; commands whole ----------------------------------------------


def test_driver_mismatch_is_said_once_in_words(tmp_path: Path) -> None:
    path = _saved(tmp_path, _failure("version-mismatch"))
    _, stdout, _ = _check("--snapshot", str(path))
    assert "NVMLError" not in stdout
    assert stdout.count("different driver versions") == 1
    _, stdout, _ = _check("--snapshot", str(path), "--json")
    assert "NVMLError_LibRmVersionMismatch" in stdout  # the raw text stays in JSON


def test_no_nvml_names_in_human_output(tmp_path: Path) -> None:
    for failure_id in ("gpu-lost-handle", "library-not-found"):
        path = _saved(tmp_path, _failure(failure_id))
        _, stdout, _ = _check("--snapshot", str(path))
        assert "NVMLError" not in stdout, failure_id
        _, markdown, _ = _check("--snapshot", str(path), "--markdown")
        assert "NVMLError" not in markdown, failure_id


def test_no_fitting_build_is_said_once_with_whole_commands(tmp_path: Path) -> None:
    snapshot = replay_snapshot(
        "h100-80gb-hbm3",
        nvml=old_driver_2080_ti(),
        files_extra=_bare_metal_cpuinfo("h100-80gb-hbm3"),
    )
    _, stdout, _ = _check("--snapshot", str(_saved(tmp_path, snapshot)))
    assert stdout.count("no CUDA build of torch") == 1
    lines = [line.strip() for line in stdout.splitlines()]
    assert "dlready install-cmd --torch 2.7.1 --variant cu118" in lines
    assert "or --torch" not in stdout
    _, stdout, _ = _check("--snapshot", str(tmp_path / "snapshot.json"), "--json")
    alternatives = json.loads(stdout)["data"]["install_alternatives"]
    assert "dlready install-cmd --torch 2.7.1 --variant cu118" in alternatives


def test_one_install_command_for_the_gtx_1060(tmp_path: Path) -> None:
    path = _saved(tmp_path, _nvidia("gtx-1060-laptop")())
    _, stdout, _ = _check("--snapshot", str(path))
    commands = [line for line in stdout.splitlines() if "pip install torch" in line]
    assert len(commands) == 1
    assert commands[0].startswith("  pip install")  # on its own line
    assert "Reinstall PyTorch for this machine with:" in stdout


# --- 6. cooling advice from what was read -------------------------------------------------------


def test_cooling_advice_follows_the_sensors_read_and_the_vendor() -> None:
    amd = judge(_amd_desktop(), BOOK)
    cooling = next(c for c in amd.components if c.component == "cooling")
    assert "50 °C now" in cooling.advice  # the GPU's temperature was read
    assert "No temperature sensor" not in cooling.advice
    assert "--burn" not in cooling.advice  # smoke --burn watches NVIDIA GPUs only
    assert "temp1_crit" not in cooling.advice
    vm = judge(replay_snapshot("cpu-only-epyc-vm"), BOOK)
    cooling = next(c for c in vm.components if c.component == "cooling")
    assert "--burn" not in cooling.advice  # no GPU to burn
    assert "virtual machine" in cooling.advice


# --- 7. other commands' reports ------------------------------------------------------------------


def test_a_fleet_report_is_named_not_a_missing_field(tmp_path: Path) -> None:
    from dlready.fleet.assemble import assemble
    from fleet_scenarios import h100_fleet

    path = tmp_path / "fleet-report.json"
    path.write_text(json.dumps(to_jsonable(assemble(h100_fleet(1)))))
    with pytest.raises(SnapshotFileError, match=r"`dlready fleet --json` report"):
        load_snapshot_file(path)


def test_the_data_of_a_check_report_is_read(tmp_path: Path) -> None:
    path = _saved(tmp_path, replay_snapshot("h100-80gb-hbm3"), "check.json")
    _, stdout, _ = _check("--snapshot", str(path), "--json")
    data_only = tmp_path / "data.json"
    data_only.write_text(json.dumps(json.loads(stdout)["data"]))
    assert load_snapshot_file(data_only).gpus


# --- 8. maxima are not labelled minimum ---------------------------------------------------------


def test_maxima_are_not_called_minimum(tmp_path: Path) -> None:
    path = _saved(tmp_path, replay_snapshot("cpu-only-epyc-vm"))
    result = runner.invoke(app, ["check", "--snapshot", str(path)], env={"COLUMNS": "60"})
    assert "minimum ≤" not in result.stdout
    assert "≤ 90 °C, recommended ≤ 80 °C" in result.stdout  # CPU package temperature
    assert "≤ 5 jobs (RAM)" in result.stdout


def test_an_amd_card_without_its_driver_is_below_minimum_with_the_fix() -> None:
    """sysfs lists the RX 7900 XTX, but the amdgpu module is not loaded: the card cannot be
    used, so its part is below minimum and says how to load the driver (not "not judged")."""
    from scenarios_gpu import amd_without_driver_file_texts, library_not_found

    snapshot = replay_snapshot(
        "cpu-only-epyc-vm",
        nvml=library_not_found(),
        files_extra=dict(amd_without_driver_file_texts()),
    )
    report = judge(snapshot, load_builtin_profile("book-2020"))
    gpus = [c for c in report.components if c.component == "gpu"]
    assert gpus
    for part in gpus:
        assert part.status is Status.BELOW_MINIMUM
        assert "amdgpu kernel module is not loaded" in part.advice
        assert "`sudo modprobe amdgpu`" in part.advice


def test_a_snapshot_that_lists_one_gpu_twice_is_refused(tmp_path: Path) -> None:
    document = to_jsonable(replay_snapshot("h100-80gb-hbm3"))
    document["gpus"] = document["gpus"] * 3  # an edited file: 3 copies of GPU 0
    path = tmp_path / "repeated.json"
    path.write_text(json.dumps(document))
    with pytest.raises(SnapshotFileError, match=r"gpus\[1\] repeats nvidia GPU 0"):
        load_snapshot_file(path)


@pytest.mark.parametrize(
    ("line", "says"),
    [
        ('name = ""', 'name: expected a non-empty text, got ""'),
        ("[cpu.minimum]\nusable_cpus = 2.5", "usable_cpus: expected a whole number"),
        ("[build]\nram_per_job_gib = 0", "ram_per_job_gib: expected a number above 0"),
        (
            "[gpu.minimum]\ncompute_capability = 8.6",
            'expected a compute capability like "7.5", got 8.6 (write it in quotes: "8.6")',
        ),
        ("[memory.minimum]\neffective_total_gib = 1e30", "expected a number from 0 to 1,000,000"),
    ],
)
def test_spec_values_that_cannot_be_meant_are_refused(line: str, says: str) -> None:
    from dlready.spec.profile import SpecError, parse_profile

    head = 'schema = 1\ntitle = "mine"\n' + ("" if line.startswith("name") else 'name = "m"\n')
    with pytest.raises(SpecError) as refused:
        parse_profile(head + line + "\n", "mine.toml")
    assert says in str(refused.value).replace("'", '"')


def test_cooling_not_judged_for_want_of_a_gpu_says_so(tmp_path: Path) -> None:
    spec = tmp_path / "cool.toml"
    spec.write_text(
        'schema = 1\nname = "x"\ntitle = "t"\n[cooling.minimum]\ngpu_slowdown_margin_c = 5\n'
    )
    from dlready.spec.profile import load_profile_file

    report = judge(replay_snapshot("cpu-only-epyc-vm"), load_profile_file(spec))
    (cooling,) = [c for c in report.components if c.component == "cooling"]
    assert cooling.status is Status.UNKNOWN
    assert "this machine has no GPU to read" in cooling.advice
