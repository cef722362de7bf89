"""``install-cmd --run``, ``--python PATH`` and ``--channel``: never a real install.

The target interpreter is a stand-in script: ``-c CODE`` (dlready reading its version and
platform) runs the real interpreter, anything else (``-m pip install ...``) is only recorded,
printed and answered with a chosen exit status. uv is a stand-in on PATH the same way.
"""

from __future__ import annotations

import json
import os
import pty
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from msgspec.structs import replace

from dlready.exitcodes import ExitCode
from dlready.install.channels import plan_channel
from dlready.install.errors import PlanError
from dlready.install.facts import FactOverrides, facts_from_overrides, validate_overrides
from dlready.install.plan import DriverSupport, InstallPlan
from dlready.install.planner import InstallWishes, plan_install
from dlready.install.run import (
    RunError,
    TargetInterpreter,
    check_same_machine,
    confirm,
    is_interpreter,
    run_argv,
)
from dlready.install.table import load_compat_table
from dlready.install.versions import compare_numeric
from dlready.probes.tools_gateway import ReplayTools

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="stand-ins are shell scripts")

CPU_FLAGS = ["--accelerator", "cpu"]
RUN_FLAGS = [*CPU_FLAGS, "--run", "--yes"]


def stand_in_python(folder: Path, exit_code: int = 0) -> tuple[Path, Path]:
    """A 'python' that answers dlready's probe with the real interpreter and records the rest."""
    record = folder / "record.txt"
    script = folder / "python"
    script.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-c" ]; then exec {shlex.quote(sys.executable)} "$@"; fi\n'
        f'printf "%s\\n" "$@" > {shlex.quote(str(record))}\n'
        'echo "stand-in pip: $*"\n'
        'echo "stand-in pip complains" >&2\n'
        f"exit {exit_code}\n"
    )
    script.chmod(0o755)
    return script, record


def dlready(
    *args: str, env: dict[str, str] | None = None, stdin: int | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dlready", "install-cmd", *args],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1", **(env or {})},
        stdin=stdin if stdin is not None else subprocess.DEVNULL,
        timeout=120,
        check=False,
    )


def test_version_or_interpreter() -> None:
    assert not is_interpreter("3.12")
    assert not is_interpreter("3.14t")
    assert is_interpreter("python3.12")
    assert is_interpreter(".venv/bin/python")


def test_run_installs_into_the_named_interpreter_with_pip(tmp_path: Path) -> None:
    python, record = stand_in_python(tmp_path)
    result = dlready("--python", str(python), *CPU_FLAGS, "--run", "--yes")
    assert result.returncode == 0, result.stderr
    recorded = record.read_text().splitlines()
    assert recorded[:3] == ["-m", "pip", "install"]
    assert any(arg.startswith("torch==") for arg in recorded)
    assert recorded[-2:] == ["--index-url", "https://download.pytorch.org/whl/cpu"]
    first = result.stdout.splitlines()[0]
    assert shlex.split(first)[:4] == [str(python), "-m", "pip", "install"]
    assert "stand-in pip: -m pip install" in result.stdout  # its output streamed through
    assert "verify it with:" in result.stderr
    assert "dlready smoke" in result.stderr


def stand_in_uv(folder: Path) -> tuple[dict[str, str], Path]:
    """PATH with a 'uv' that records its arguments and installs nothing."""
    bin_dir = folder / "bin"
    bin_dir.mkdir(exist_ok=True)
    uv_record = folder / "uv.txt"
    uv = bin_dir / "uv"
    uv.write_text(f'#!/bin/sh\nprintf "%s\\n" "$@" > {shlex.quote(str(uv_record))}\n')
    uv.chmod(0o755)
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}, uv_record


def test_run_with_uv_passes_the_target_interpreter(tmp_path: Path) -> None:
    python, _ = stand_in_python(tmp_path)
    env, uv_record = stand_in_uv(tmp_path)
    result = dlready(
        "--python", str(python), *CPU_FLAGS, "--manager", "uv", "--run", "--yes", env=env
    )
    assert result.returncode == 0, result.stderr
    recorded = uv_record.read_text().splitlines()
    assert recorded[:5] == ["pip", "install", "--python", str(python), recorded[4]]
    assert recorded[4].startswith("torch==")


def test_a_failing_install_keeps_its_status_and_output(tmp_path: Path) -> None:
    python, record = stand_in_python(tmp_path, exit_code=7)
    result = dlready("--python", str(python), *CPU_FLAGS, "--run", "--yes")
    assert result.returncode == 7
    assert "stand-in pip: -m pip install" in result.stdout
    assert "stand-in pip complains" in result.stderr
    assert "the install failed (exit 7)" in result.stderr
    assert record.exists()


def test_no_terminal_and_no_yes_refuses(tmp_path: Path) -> None:
    python, record = stand_in_python(tmp_path)
    result = dlready("--python", str(python), *CPU_FLAGS, "--run")
    assert result.returncode == ExitCode.USAGE
    assert "pass --yes" in result.stderr
    assert not record.exists()


def test_saying_no_at_the_prompt_installs_nothing(tmp_path: Path) -> None:
    python, record = stand_in_python(tmp_path)
    controller, terminal = pty.openpty()
    try:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dlready",
                "install-cmd",
                "--python",
                str(python),
                *CPU_FLAGS,
                "--run",
            ],
            stdin=terminal,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "NO_COLOR": "1"},
        )
        os.write(controller, b"n\n")
        out, err = process.communicate(timeout=120)
    finally:
        os.close(controller)
        os.close(terminal)
    assert process.returncode == ExitCode.NOT_READY
    assert "Install now? [y/N]" in err
    assert "not installed" in err
    assert not record.exists()
    assert shlex.split(out.splitlines()[0])[:2] == [str(python), "-m"]


def test_a_plan_for_another_machine_is_refused(tmp_path: Path) -> None:
    python, record = stand_in_python(tmp_path)
    other_os = "windows" if sys.platform != "win32" else "linux"
    result = dlready("--python", str(python), "--os", other_os, *CPU_FLAGS, "--run", "--yes")
    assert result.returncode == ExitCode.USAGE
    assert "another machine" in result.stderr
    assert not record.exists()
    # The target is the interpreter running the tests: uv is a stand-in, so even a wrong
    # acceptance would install nothing.
    env, uv_record = stand_in_uv(tmp_path)
    here = f"{sys.version_info[0]}.{sys.version_info[1] + 1}"
    result = dlready("--python", here, *CPU_FLAGS, "--manager", "uv", "--run", "--yes", env=env)
    assert result.returncode == ExitCode.USAGE
    assert f"--python {here}" in result.stderr
    assert not uv_record.exists()


def test_python_path_plans_for_that_interpreter(tmp_path: Path) -> None:
    python, record = stand_in_python(tmp_path)
    result = dlready("--python", str(python), *CPU_FLAGS)
    assert result.returncode == 0
    # its own pip, as --run runs it: `| sh` installs into it, not into the first pip on PATH
    assert shlex.split(result.stdout)[:5] == [str(python), "-m", "pip", "install", "torch==2.14.1"]
    assert f"python {sys.version_info[0]}.{sys.version_info[1]} (detected)" in result.stderr
    assert not record.exists()
    uv = dlready("--python", str(python), *CPU_FLAGS, "--manager", "uv", "--json")
    assert json.loads(uv.stdout)["data"]["command_line"].startswith(
        f"uv pip install --python {shlex.quote(str(python))} torch==2.14.1 "
    )
    version = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert dlready("--python", version, *CPU_FLAGS).stdout.startswith("pip install torch==")
    missing = dlready("--python", str(tmp_path / "nope"), *CPU_FLAGS)
    assert missing.returncode == ExitCode.USAGE
    assert "no such interpreter" in missing.stderr


def test_an_interpreter_and_another_os_without_run_never_mention_run(tmp_path: Path) -> None:
    python, _ = stand_in_python(tmp_path)
    other_os = "windows" if sys.platform != "win32" else "linux"
    result = dlready("--python", str(python), "--os", other_os, *CPU_FLAGS)
    assert result.returncode == ExitCode.USAGE
    assert "--run" not in result.stderr
    assert f"drop --os {other_os} to plan for that interpreter" in result.stderr


def test_run_and_json_do_not_mix(tmp_path: Path) -> None:
    env, uv_record = stand_in_uv(tmp_path)
    result = dlready("--run", "--yes", "--json", *CPU_FLAGS, "--manager", "uv", env=env)
    assert result.returncode == ExitCode.USAGE
    assert not uv_record.exists()


# --- pure parts -------------------------------------------------------------------------------


def target(prefix: str = "/opt/env") -> TargetInterpreter:
    return TargetInterpreter(f"{prefix}/bin/python", "3.12.3", "linux", "x86_64", prefix, True)


def test_same_machine_accepts_arm_spellings() -> None:
    arm = TargetInterpreter("/p", "3.12.3", "macos", "arm64", "/", True)
    check_same_machine(arm, validate_overrides(FactOverrides(arch="aarch64")), False)
    with pytest.raises(RunError):
        check_same_machine(arm, validate_overrides(FactOverrides(arch="x86_64")), False)


def test_conda_installs_only_into_the_active_environment() -> None:
    facts = facts_from_overrides(
        validate_overrides(
            FactOverrides(os="linux", arch="x86_64", python="3.12", accelerator="cpu")
        )
    )
    plan = plan_install(facts, InstallWishes(torch="2.5.1", manager="conda"))
    inactive = ReplayTools(environ={})
    with pytest.raises(RunError) as refused:
        run_argv(plan, target(), inactive)
    assert refused.value.code is ExitCode.USAGE
    other = ReplayTools(environ={"CONDA_PREFIX": "/opt/other", "CONDA_EXE": "/opt/conda/bin/conda"})
    with pytest.raises(RunError):
        run_argv(plan, target(), other)
    active = ReplayTools(environ={"CONDA_PREFIX": "/opt/env", "CONDA_EXE": "/opt/conda/bin/conda"})
    argv = run_argv(plan, target(), active)
    assert argv[:5] == ["/opt/conda/bin/conda", "install", "--prefix", "/opt/env", "--yes"]
    assert "pytorch==2.5.1" in argv


def test_confirm_answers() -> None:
    import io

    assert confirm(True, None, None)
    assert confirm(False, io.StringIO("y\n"), io.StringIO(), is_terminal=lambda: True)
    assert not confirm(False, io.StringIO("\n"), io.StringIO(), is_terminal=lambda: True)
    # End of input (Ctrl-D): no, and the prompt's line is ended before the error line.
    prompt = io.StringIO()
    assert not confirm(False, io.StringIO(""), prompt, is_terminal=lambda: True)
    assert prompt.getvalue() == "Install now? [y/N] \n"
    with pytest.raises(RunError):
        confirm(False, io.StringIO("y\n"), io.StringIO(), is_terminal=lambda: False)


# --- channels ---------------------------------------------------------------------------------


def facts(**values: str) -> object:
    return facts_from_overrides(validate_overrides(FactOverrides(**values)))  # type: ignore[arg-type]


def test_nightly_for_an_nvidia_driver() -> None:
    plan = plan_channel(
        facts(os="linux", arch="x86_64", python="3.12", accelerator="cuda", driver="580.65.06"),  # type: ignore[arg-type]
        InstallWishes(),
        "nightly",
    )
    assert plan.command_line == (
        "pip install --pre torch torchvision --index-url "
        "https://download.pytorch.org/whl/nightly/cu132"
    )
    assert any("2026-11-27" in warning for warning in plan.warnings)
    assert any("UNCONFIRMED" in warning for warning in plan.warnings)


def test_channel_refusals() -> None:
    linux_cpu = facts(os="linux", arch="x86_64", python="3.12", accelerator="cpu")
    with pytest.raises(PlanError):
        plan_channel(linux_cpu, InstallWishes(torch="2.5.1"), "nightly")  # type: ignore[arg-type]
    with pytest.raises(PlanError):
        plan_channel(linux_cpu, InstallWishes(manager="conda"), "test")  # type: ignore[arg-type]
    with pytest.raises(PlanError) as no_variant:
        plan_channel(linux_cpu, InstallWishes(variant="cu126"), "nightly")  # type: ignore[arg-type]
    assert "cu126" in no_variant.value.message
    uv = plan_channel(linux_cpu, InstallWishes(manager="uv"), "test")  # type: ignore[arg-type]
    assert uv.command_line.startswith("uv pip install --prerelease allow torch torchvision")
    assert uv.index_url == "https://download.pytorch.org/whl/test/cpu"


@pytest.mark.parametrize("channel", ["test", "nightly"])
@pytest.mark.parametrize("driver", [None, "580.65.06"])
def test_a_pre_release_channel_never_picks_a_cuda_13_build_for_a_pascal_gpu(
    channel: str, driver: str | None
) -> None:
    """CUDA 13 cannot compile for sm_61 (data/cuda_toolkit_archs.json), and every CUDA build
    on the pre-release indexes is CUDA 13: refused, naming the stable command that works."""
    given = {"driver": driver} if driver else {}
    gtx_1060 = facts(
        os="linux", arch="x86_64", python="3.12", compute_capabilities=("6.1",), **given
    )
    with pytest.raises(PlanError) as refused:
        plan_channel(gtx_1060, InstallWishes(), channel)  # type: ignore[arg-type]
    assert "no CUDA build on the" in refused.value.message
    assert "compute capability 6.1" in refused.value.message
    assert "7.5 and newer" in refused.value.message
    _, (choice,) = refused.value.choices()
    assert choice.flags == "--channel stable"
    assert choice.drop == ("--variant",)
    assert refused.value.hints == (
        "the stable command: pip install torch==2.14.1 torchvision==0.29.1 "
        "--index-url https://download.pytorch.org/whl/cu126",
    )
    with pytest.raises(PlanError):  # a forced CUDA 13 variant alike
        plan_channel(gtx_1060, InstallWishes(variant="cu130"), channel)  # type: ignore[arg-type]
    cli = dlready("--channel", channel, "--compute-capability", "6.1", "--os", "linux")
    assert cli.returncode == ExitCode.USAGE
    assert cli.stdout == ""
    suggestion = next(line for line in cli.stderr.splitlines() if line.startswith("dlready "))
    rerun = dlready(*shlex.split(suggestion.split("  # ")[0])[2:])
    assert rerun.returncode == 0
    assert rerun.stdout.endswith("/whl/cu126\n")


OLD_DRIVERS = {
    # Below 580, the minimum of every CUDA 13 build (table: cuda_major_drivers["13"]).
    "linux": ("450.80.02", "525.60.13", "570.86.10", "579.99"),
    "windows": ("452.39", "527.41", "572.16"),
}
CUDA_PLATFORMS = (("linux", "x86_64"), ("linux", "aarch64"), ("windows", "x86_64"))


def _plan_or_refusal(machine: object, channel: str) -> InstallPlan | PlanError:
    try:
        if channel == "stable":
            return plan_install(machine, InstallWishes())  # type: ignore[arg-type]
        return plan_channel(machine, InstallWishes(), channel)  # type: ignore[arg-type]
    except PlanError as refused:
        return refused


@pytest.mark.parametrize("channel", ["stable", "test", "nightly"])
@pytest.mark.parametrize(("os_name", "arch"), CUDA_PLATFORMS)
@pytest.mark.parametrize("capability", [None, "8.0", "9.0", "12.0"])
def test_no_channel_plans_a_cuda_build_for_a_driver_below_its_floor(
    channel: str, os_name: str, arch: str, capability: str | None
) -> None:
    """Every channel x an old driver: a plan (stable only) runs on that driver by the
    table's floor, a floor that is known; a pre-release channel (CUDA 13 only) refuses."""
    table = load_compat_table()
    gpus = {"compute_capabilities": (capability,)} if capability else {}
    for driver in OLD_DRIVERS[os_name]:
        machine = facts(os=os_name, arch=arch, python="3.12", driver=driver, **gpus)
        plan = _plan_or_refusal(machine, channel)
        if isinstance(plan, PlanError):
            assert "driver" in plan.message or "compute capability" in plan.message
            continue
        assert channel == "stable", (driver, plan.command_line)
        floor = table.driver_floor(plan.variant)
        assert floor is not None, plan.variant
        minimum = floor.min_windows if os_name == "windows" else floor.min_linux
        assert minimum is not None
        assert compare_numeric(driver, minimum) >= 0, (driver, plan.variant, minimum)
        assert not plan.variant.startswith("cu13"), (driver, plan.variant)


@pytest.mark.parametrize("channel", ["test", "nightly"])
@pytest.mark.parametrize("driver", ["450.80.02", "570.86.10"])
@pytest.mark.parametrize("capability", ["8.0", "12.0"])
def test_an_old_driver_is_refused_on_a_pre_release_channel(
    channel: str, driver: str, capability: str
) -> None:
    cli = dlready(
        "--channel", channel, "--driver", driver, "--compute-capability", capability,
        "--os", "linux", "--arch", "x86_64", "--python", "3.12",
    )  # fmt: skip
    assert cli.returncode == ExitCode.USAGE, cli.stdout
    assert cli.stdout == ""
    assert (
        f"error: driver {driver} is too old for every CUDA build on the {channel} index "
        "(the oldest, cu130, needs 580)"
    ) in cli.stderr


def test_a_cuda_variant_newer_than_the_table_is_held_to_its_cuda_majors_floor() -> None:
    table = load_compat_table()
    cu134 = table.driver_floor("cu134")
    assert cu134 is not None
    assert cu134.from_major
    assert (cu134.cuda, cu134.min_linux, cu134.min_windows) == ("13.4", "580", "580")
    assert cu134.full_linux is None  # its own toolkit's driver is not known
    assert "https://docs.nvidia.com/cuda/" in cu134.source
    assert "CUDA 13.4's own driver minimum is not in dlready's data" in cu134.notes_linux[0]
    assert table.driver_floor("cu130") == table.drivers["cu130"]
    assert table.driver_floor("cu140") is None  # CUDA 14: no floor known at all
    assert table.driver_floor("cpu") is None


def test_an_unknown_driver_floor_is_never_a_pass() -> None:
    """Without the CUDA 13 floor in the data, cu134's minimum is unknown: a driver too old
    for every build whose minimum is known is refused, naming what is not known."""
    table = replace(load_compat_table(), cuda_major_drivers={})
    old = facts(os="linux", arch="x86_64", python="3.12", driver="570.86.10")
    with pytest.raises(PlanError) as refused:
        plan_channel(old, InstallWishes(), "nightly", table)  # type: ignore[arg-type]
    assert refused.value.message == (
        "no CUDA build on the nightly index is known to run with this driver: driver "
        "570.86.10 is too old for cu130, cu132 (needs 580); dlready does not know the driver "
        "minimum of cu134, so it cannot say that driver 570.86.10 runs it"
    )
    new = facts(os="linux", arch="x86_64", python="3.12", driver="600.10")
    plan = plan_channel(new, InstallWishes(), "nightly", table)  # type: ignore[arg-type]
    assert plan.variant == "cu132"
    (cu134,) = [c for c in plan.candidates if c.variant == "cu134"]
    assert not cu134.usable
    assert cu134.driver is DriverSupport.UNKNOWN
    forced = plan_channel(new, InstallWishes(variant="cu134"), "nightly", table)  # type: ignore[arg-type]
    assert (
        "dlready does not know the driver minimum of cu134: it cannot say that driver 600.10 "
        "runs it"
    ) in forced.warnings


def test_a_build_held_to_its_cuda_majors_floor_is_chosen_only_when_nothing_else_runs() -> None:
    driver_590 = facts(os="linux", arch="x86_64", python="3.12", driver="590.44.01")
    plan = plan_channel(driver_590, InstallWishes(), "nightly")  # type: ignore[arg-type]
    assert plan.variant == "cu132"
    support = {c.variant: c.driver for c in plan.candidates}
    assert support == {
        "cu130": DriverSupport.FULL,
        "cu132": DriverSupport.MINOR_COMPAT,
        "cu134": DriverSupport.MINOR_COMPAT,
    }
    forced = plan_channel(driver_590, InstallWishes(variant="cu134"), "nightly")  # type: ignore[arg-type]
    assert (
        "cu134: dlready does not know this build's own driver minimum, only that of every "
        "CUDA 13 build (580), which driver 590.44.01 meets: if torch.cuda.is_available() is "
        "False after installing, update the NVIDIA driver"
    ) in forced.warnings
    assert "precise_values_commonly_cited.13.x: NVIDIA CUDA Toolkit" in forced.sources[-1]
    too_old = facts(os="linux", arch="x86_64", python="3.12", driver="570.86.10")
    forced_old = plan_channel(too_old, InstallWishes(variant="cu134"), "nightly")  # type: ignore[arg-type]
    assert (
        "cu134 needs NVIDIA driver >= 580; this driver is 570.86.10: "
        "torch.cuda.is_available() will be False"
    ) in forced_old.warnings


def test_a_pre_release_plan_for_a_gpu_cuda_13_compiles_for_says_the_arch_list_is_unknown() -> None:
    rtx_3090 = facts(
        os="linux", arch="x86_64", python="3.12", driver="580.65.06", compute_capabilities=("8.6",)
    )
    plan = plan_channel(rtx_3090, InstallWishes(), "nightly")  # type: ignore[arg-type]
    assert plan.variant == "cu132"
    assert any(
        "no GPU architecture list for pre-release builds (CUDA 13.2 can compile for compute "
        "capability 8.6)" in warning
        for warning in plan.warnings
    )


def test_a_package_the_channel_lacks_for_the_platform_is_never_dropped_silently() -> None:
    windows_arm = facts(os="windows", arch="arm64", python="3.12", accelerator="cpu")
    asked = plan_channel(windows_arm, InstallWishes(packages=("torch", "torchvision")), "nightly")  # type: ignore[arg-type]
    assert asked.command_line.startswith("pip install --pre torch --index-url")
    assert (
        "torchvision left out although asked for: the nightly channel has torch only for "
        "windows-arm64"
    ) in asked.warnings
    default = plan_channel(windows_arm, InstallWishes(), "nightly")  # type: ignore[arg-type]
    assert any("torchvision left out" in reason for reason in default.reasons)
    with pytest.raises(PlanError) as nothing_left:
        plan_channel(windows_arm, InstallWishes(packages=("torchvision",)), "nightly")  # type: ignore[arg-type]
    assert nothing_left.value.nearest_valid == "--packages torch"


@pytest.mark.parametrize(
    ("flags", "shown", "not_shown"),
    [
        (
            {"os": "linux", "arch": "x86_64", "accelerator": "cpu"},
            (),
            ("cu134", "linux-aarch64", "Windows"),
        ),
        (
            {"os": "linux", "arch": "x86_64", "driver": "580.65.06"},
            (),
            ("cu134", "linux-aarch64", "Windows"),
        ),
        (
            {"os": "linux", "arch": "aarch64", "driver": "580.65.06"},
            ("linux-aarch64 CUDA variants assumed",),
            ("cu134", "Windows"),
        ),
        (
            {"os": "windows", "arch": "x86_64", "driver": "580.65.06"},
            ("cu134 (CUDA 13.4) has no Windows build",),
            ("linux-aarch64", "driver minimum"),
        ),
    ],
)
def test_nightly_warnings_concern_the_planned_platform_and_variant_only(
    flags: dict[str, str], shown: tuple[str, ...], not_shown: tuple[str, ...]
) -> None:
    plan = plan_channel(facts(python="3.12", **flags), InstallWishes(), "nightly")  # type: ignore[arg-type]
    warnings = "\n".join(plan.warnings)
    for text in shown:
        assert text in warnings
    for text in not_shown:
        assert text not in warnings, warnings


@pytest.mark.parametrize("signal_name", ["SIGTERM", "SIGINT"])
def test_a_stop_signal_during_the_install_is_interrupted_not_a_failed_install(
    tmp_path: Path, signal_name: str
) -> None:
    # The installer runs for a while; dlready is stopped meanwhile. It said "the install failed
    # (exit 130)" with advice about ensurepip. The installer is ended with it.
    started = tmp_path / "started"
    python = tmp_path / "python"
    python.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-c" ]; then exec {shlex.quote(sys.executable)} "$@"; fi\n'
        f"touch {shlex.quote(str(started))}\n"
        "exec sleep 30\n"
    )
    python.chmod(0o755)
    process = subprocess.Popen(
        [sys.executable, "-m", "dlready", "install-cmd", "--python", str(python), *RUN_FLAGS],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "the stand-in installer never started"
        process.send_signal(getattr(signal, signal_name))
        _out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 3, err
    assert f"error: interrupted ({signal_name})" in err
    assert "install failed" not in err
    assert "ensurepip" not in err
