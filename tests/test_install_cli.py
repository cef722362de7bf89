"""``dlready install-cmd`` end to end: one line on stdout, the why on stderr, --json, exit codes."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dlready.cli import app
from dlready.exitcodes import ExitCode
from dlready.output import SCHEMA_VERSION
from machines import replay_snapshot
from scenarios_gpu import nvidia_scenario

runner = CliRunner()
REPO = Path(__file__).parents[1]
CU = "https://download.pytorch.org/whl/"
H100_FLAGS = [
    "--os",
    "linux",
    "--arch",
    "x86_64",
    "--python",
    "3.12",
    "--accelerator",
    "cuda",
    "--driver",
    "580.159.04",
    "--compute-capability",
    "9.0",
]


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, ["install-cmd", *args])
    return result.exit_code, result.stdout, result.stderr


def test_stdout_is_exactly_one_command_line() -> None:
    code, out, err = invoke(*H100_FLAGS)
    assert code == ExitCode.OK
    assert out == f"pip install torch==2.14.1 torchvision==0.29.1 --index-url {CU}cu130\n"
    assert shlex.split(out)[:2] == ["pip", "install"]
    lines = err.splitlines()
    assert lines
    assert all(line.startswith("# ") for line in lines), "stderr stays shell-inert"
    assert "driver 580.159.04 (given)" in err


def test_explain_shows_facts_origins_candidates_and_the_checked_date() -> None:
    code, out, err = invoke(*H100_FLAGS, "--explain")
    assert code == ExitCode.OK
    assert out.count("\n") == 1
    assert "compatibility table checked on 2026-11-27" in err
    assert "[given: --driver]" in err
    assert "CHOSEN cu130" in err
    assert "GPU code rules (NVIDIA's CUDA C++ Programming Guide" in err


def test_json_is_the_envelope_with_the_plan() -> None:
    code, out, err = invoke(*H100_FLAGS, "--json")
    assert code == ExitCode.OK
    document = json.loads(out)
    assert document["schema_version"] == SCHEMA_VERSION
    assert (document["command"], document["exit_code"], document["status"]) == (
        "install-cmd",
        0,
        "ok",
    )
    assert document["data"]["command_line"].endswith(f"{CU}cu130")
    assert document["data"]["variant"] == "cu130"
    assert err == ""


def test_book_command_for_windows_1_7_1() -> None:
    code, out, _ = invoke(
        "--torch",
        "1.7.1",
        "--os",
        "windows",
        "--arch",
        "x86_64",
        "--python",
        "3.8",
        "--accelerator",
        "cuda",
        "--driver",
        "460.89",
        "--compute-capability",
        "6.1",
    )
    assert code == ExitCode.OK
    assert out == (
        "pip install torch==1.7.1+cu110 torchvision==0.8.2+cu110 torchaudio==0.7.2 "
        "-f https://download.pytorch.org/whl/torch_stable.html\n"
    )


def test_uv_manager() -> None:
    code, out, _ = invoke(*H100_FLAGS, "--manager", "uv")
    assert code == ExitCode.OK
    assert out == f"uv pip install torch==2.14.1 torchvision==0.29.1 --index-url {CU}cu130\n"


@pytest.mark.parametrize(
    ("args", "message", "hint"),
    [
        pytest.param(
            ("--torch", "2.15.0"),
            "not in the compatibility table",
            "--torch 2.14.1",
            id="unknown-release",
        ),
        pytest.param(("--python", "3.15"), "Python 3.15", "--python 3.14  # ", id="python-too-new"),
        pytest.param(
            ("--torch", "1.7.1"),
            "supports Python 3.6–3.9",
            "--python 3.9  # torch 1.7.1 with Python 3.9",
            id="python-out-of-range",
        ),
        pytest.param(
            ("--manager", "conda"),
            "no official conda packages",
            "--manager pip",
            id="conda-after-2.5.1",
        ),
        pytest.param(
            ("--variant", "cu121"), "no cu121 build", "--variant cu126", id="unknown-variant"
        ),
        pytest.param(
            ("--os", "solaris"),
            "PyTorch publishes no wheels for --os 'solaris'",
            "supported: --os linux, windows or macos",
            id="os-without-wheels",
        ),
        pytest.param(
            ("--torch", "2.5.1.1"),
            "not in the compatibility table",
            "--torch 2.5.1  # the nearest older release",
            id="nearest-older-release-labelled-truthfully",
        ),
        pytest.param(
            ("--variant", "cu130", "--compute-capability", "6.1"),
            "no kernels for compute capability 6.1",
            "--variant cu126",
            id="forced-variant-missing-the-gpu",
        ),
        pytest.param(
            ("--arch", "aarch64", "--compute-capability", "8.7"),
            "Jetson module",
            "NVIDIA's PyTorch wheels for Jetson",
            id="jetson-orin",
        ),
        pytest.param(
            ("--compute-capability", ""),
            "--compute-capability '' has an empty value",
            "--compute-capability X.Y",
            id="empty-compute-capability",
        ),
        pytest.param(
            ("--accelerator", "rocm", "--compute-capability", "8.6"),
            "an NVIDIA GPU, but --accelerator rocm was given",
            "--accelerator cuda",
            id="compute-capability-with-rocm",
        ),
        pytest.param(
            ("--compute-capability", "6.1", "--driver", "470.57.02"),
            "no CUDA build of torch 2.14.1",
            "525.60.13",
            id="no-cuda-fit",
        ),
    ],
)
def test_impossible_request_is_one_error_line_exit_2_nothing_on_stdout(
    args: tuple[str, ...], message: str, hint: str
) -> None:
    base = [
        "--os",
        "linux",
        "--arch",
        "x86_64",
        "--python",
        "3.12",
        "--accelerator",
        "cuda",
        "--driver",
        "580.159.04",
    ]
    given = {a for a in args if a.startswith("--")}
    flags = []
    for i in range(0, len(base), 2):
        if base[i] not in given:
            flags += base[i : i + 2]
    code, out, err = invoke(*flags, *args)
    assert code == ExitCode.USAGE
    assert out == ""
    first, second, *commands = err.splitlines()
    assert first.startswith("error: ")
    assert message in first
    assert second.startswith("hint: ")
    assert hint in "\n".join([second, *commands])
    for line in commands:  # suggestions are whole commands that keep the other flags given
        if line.startswith("dlready install-cmd "):
            # the CPU build drops the flags that describe an NVIDIA GPU
            dropped = ("--driver", "--compute-capability") if "--accelerator cpu" in line else ()
            kept = [
                flag
                for flag in flags
                if flag.startswith("--") and flag not in line and flag not in dropped
            ]
            assert not kept or set(kept) <= set(line.split("#")[0].split()), (line, kept)


def test_a_suggested_command_is_whole_and_runs() -> None:
    """The hint's commands keep every flag given and change only what it names."""
    code, _, err = invoke(*H100_FLAGS, "--manager", "uv", "--torch", "9.9")
    assert code == ExitCode.USAGE
    suggestions = [line for line in err.splitlines() if line.startswith("dlready install-cmd ")]
    assert len(suggestions) == 1
    argv = shlex.split(suggestions[0].split("  # ")[0])[2:]
    assert argv[-2:] == ["--torch", "2.14.1"]
    assert set(H100_FLAGS) | {"--manager", "uv"} <= set(argv)
    code, out, _ = invoke(*argv)
    assert code == ExitCode.OK
    assert out.startswith("uv pip install torch==2.14.1")


def test_conda_refusal_offers_pip_and_the_labelled_community_package() -> None:
    _, _, err = invoke(*H100_FLAGS, "--manager", "conda")
    assert "# official pip command: pip install torch==2.14.1" in err
    assert "community conda-forge build, not from pytorch.org" in err


def test_json_error_is_an_envelope_with_exit_2() -> None:
    code, out, _ = invoke(*H100_FLAGS, "--torch", "9.9.9", "--json")
    assert code == ExitCode.USAGE
    document = json.loads(out)
    assert document["exit_code"] == 2
    assert document["data"] is None
    assert document["errors"][0]["code"] == "impossible_request"
    command = "dlready install-cmd " + " ".join(H100_FLAGS) + " --json --torch 2.14.1"
    assert document["errors"][0]["hint"] == f"run this: {command}  # newest known"
    assert document["errors"][0]["more"] == [f"{command}  # newest known"]
    assert document["errors"][0]["detail"] == {"nearest_valid": "--torch 2.14.1 (newest known)"}


def test_json_status_and_error_entries_are_as_documented(monkeypatch: pytest.MonkeyPatch) -> None:
    """docs/json-schema.md: statuses ok / usage / could_not_run; errors in the one shape
    every command shares."""
    schema_doc = (REPO / "docs" / "json-schema.md").read_text()
    _, ok_out, _ = invoke(*H100_FLAGS, "--json")
    _, usage_out, _ = invoke(*H100_FLAGS, "--torch", "9.9.9", "--json")
    monkeypatch.setitem(sys.modules, "dlready.probes.collect", None)
    _, could_not_run_out, _ = invoke("--os", "linux", "--json")
    documents = [json.loads(text) for text in (ok_out, usage_out, could_not_run_out)]
    assert [(d["status"], d["exit_code"]) for d in documents] == [
        ("ok", 0),
        ("usage", 2),
        ("could_not_run", 3),
    ]
    for document in documents[1:]:
        assert document["data"] is None
        (error,) = document["errors"]
        assert set(error) == {"code", "message", "hint", "detail", "more"}
        assert f"`{error['code']}`" in schema_doc
    for status in ("ok", "usage", "could_not_run"):
        assert f"`{status}`" in schema_doc
    assert "`{code, message, hint, detail, more}`" in schema_doc


def test_detection_feeds_the_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    snapshot = replay_snapshot("h100-80gb-hbm3", nvml=nvidia_scenario("gtx-1060-laptop").replay())
    monkeypatch.setattr("dlready.probes.collect.collect_snapshot", lambda: snapshot)
    code, out, err = invoke()
    assert code == ExitCode.OK
    assert out.endswith(f"--index-url {CU}cu126\n")
    assert "driver 545.23.06 (detected)" in err


def test_flags_win_over_detection_and_the_explanation_says_so(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(
        "dlready.probes.collect.collect_snapshot", lambda: replay_snapshot("h100-80gb-hbm3")
    )
    code, out, err = invoke("--accelerator", "cpu", "--explain")
    assert code == ExitCode.OK
    assert out.endswith(f"--index-url {CU}cpu\n")
    assert "[given: --accelerator]" in err
    assert "[detected: NVML]" in err


def test_detection_unavailable_is_exit_3_with_a_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dlready.probes.collect", None)
    code, out, err = invoke("--os", "linux")
    assert code == ExitCode.COULD_NOT_RUN
    assert out == ""
    assert "hardware detection is unavailable" in err
    assert "--accelerator" in err


def test_probe_crash_is_exit_3_not_a_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    def crash() -> None:
        raise OSError("boom")

    monkeypatch.setattr("dlready.probes.collect.collect_snapshot", crash)
    code, _out, err = invoke()
    assert code == ExitCode.COULD_NOT_RUN
    assert "hardware detection failed: OSError: boom" in err
    assert "Traceback" not in err


def test_torch_major_means_its_newest_release() -> None:
    code, out, err = invoke(*H100_FLAGS, "--torch", "2")
    assert code == ExitCode.OK
    assert out.startswith("pip install torch==2.14.1 ")
    assert "--torch 2 means the newest 2.x release" in err


def test_another_os_is_planned_for_its_own_cpu_not_this_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """This x86_64 Linux VM planning for a Mac gets Apple silicon wheels, not Intel's 2.2.2."""
    monkeypatch.setattr(
        "dlready.probes.collect.collect_snapshot", lambda: replay_snapshot("cpu-only-epyc-vm")
    )
    code, out, err = invoke("--os", "macos")
    assert code == ExitCode.OK
    assert out == "pip install torch==2.14.1 torchvision==0.29.1\n"
    assert "arch arm64 (implied)" in err
    assert "arch arm64, implied by --os macos" in err
    assert "--arch x86_64 for an Intel Mac" in err


def _run_shell(redirect: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``python -m dlready install-cmd ARGS`` with a shell redirection (``>&-``, ...)."""
    command = " ".join(
        shlex.quote(part) for part in [sys.executable, "-m", "dlready", "install-cmd", *args]
    )
    return subprocess.run(
        ["sh", "-c", f"{command} {redirect}"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("redirect", "args", "error"),
    [
        pytest.param(
            ">&-", (), "error: stdout is closed: there is nowhere to write the result", id="closed"
        ),
        pytest.param(
            ">&-",
            ("--json",),
            "error: stdout is closed: there is nowhere to write the result",
            id="closed-json",
        ),
        pytest.param(
            ">/dev/full",
            (),
            "error: cannot write the result to stdout: No space left on device; the result is "
            "incomplete",
            id="full",
        ),
        pytest.param(
            ">/dev/full",
            ("--torch", "9.9", "--json"),
            "error: cannot write the result to stdout: No space left on device; the result is "
            "incomplete",
            id="full-json-error",
        ),
    ],
)
def test_unwritable_stdout_is_one_error_line_and_exit_3(
    redirect: str, args: tuple[str, ...], error: str
) -> None:
    """``dlready install-cmd >&-`` and ``> /dev/full``: exit 3, one line, no traceback."""
    result = _run_shell(redirect, *H100_FLAGS, *args)
    assert result.returncode == ExitCode.COULD_NOT_RUN, result.stderr
    lines = result.stderr.splitlines()
    assert lines[-1] == error
    assert "Traceback" not in result.stderr
    # A refusal (--torch 9.9) is told before stdout fails, so it is not lost.
    # error, hint, the suggested command (with --json inside the hint), the stdout failure
    refused = 3 if "--json" in args else 4
    assert len(lines) == (refused if "9.9" in args else 1)


def test_vanished_reader_is_exit_3_without_a_traceback() -> None:
    """The reader is gone before the command is written (``install-cmd | head -c 0``): exit 3
    and the one promised error line (output.stdout_guard)."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dlready", "install-cmd", *H100_FLAGS],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write_end)
    assert result.returncode == ExitCode.COULD_NOT_RUN
    assert "Traceback" not in result.stderr
    assert "Exception ignored" not in result.stderr
    assert result.stderr.splitlines() == [
        "error: the reader of the output went away before it was all written; the result is "
        "incomplete"
    ]


def test_closed_stderr_still_prints_the_command() -> None:
    result = _run_shell("2>&-", *H100_FLAGS)
    assert result.returncode == ExitCode.OK
    assert result.stdout == f"pip install torch==2.14.1 torchvision==0.29.1 --index-url {CU}cu130\n"


def test_no_color_means_no_escape_codes() -> None:
    _, out, err = invoke(*H100_FLAGS, "--torch", "9.9.9")
    assert "\x1b[" not in out + err


NO_TORCH = """
import sys
import dlready.commands.install_cmd
from dlready.cli import app
assert "torch" not in sys.modules, "import"
for args in ({flags}, []):
    try:
        app(["install-cmd", *args], standalone_mode=False)
    except SystemExit:
        pass
    assert "torch" not in sys.modules, args
print("torch-free")
"""


def test_install_cmd_never_imports_torch() -> None:
    """Both with flags only and with real detection on this machine (torch IS installed)."""
    result = subprocess.run(
        [sys.executable, "-c", NO_TORCH.format(flags=H100_FLAGS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("torch-free")


def test_real_detection_on_this_machine_prints_one_command() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "dlready", "install-cmd"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith("pip install torch==")


def test_docs_cover_flags_exit_codes_and_json_keys() -> None:
    doc = (REPO / "docs" / "install-cmd.md").read_text()
    help_text = runner.invoke(app, ["install-cmd", "--help"]).stdout
    for flag in (
        "--os",
        "--arch",
        "--python",
        "--accelerator",
        "--driver",
        "--compute-capability",
        "--variant",
        "--torch",
        "--manager",
        "--packages",
        "--explain",
        "--json",
    ):
        assert flag in help_text
        assert f"`{flag}" in doc, flag
    for code in ExitCode:
        assert f"| {int(code)} |" in doc
    _, out, _ = invoke(*H100_FLAGS, "--json")
    data = json.loads(out)["data"]
    for key in [*data, *data["facts"], *data["packages"][0], *data["candidates"][0]]:
        assert f"`{key}`" in doc, key


def _suggested_argvs(err: str) -> list[list[str]]:
    return [
        shlex.split(line.split("  # ")[0])[2:]
        for line in err.splitlines()
        if line.startswith("dlready install-cmd")
    ]


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("--os", "macos", "--variant", "cu126"), id="cuda-variant-on-macos"),
        pytest.param(
            ("--os", "macos", "--variant", "cu126", "--accelerator", "mps"), id="cuda-with-mps"
        ),
        pytest.param(
            ("--os", "macos", "--accelerator", "cuda", "--driver", "580.65.06"),
            id="cuda-driver-on-macos",
        ),
        pytest.param(("--os", "linux", "--accelerator", "mps"), id="mps-on-linux"),
        pytest.param(
            ("--os", "linux", "--accelerator", "mps", "--variant", "cu126"), id="mps-cuda-variant"
        ),
        pytest.param(
            ("--variant", "rocm6.4", "--os", "linux", "--arch", "aarch64"), id="rocm-on-aarch64"
        ),
        pytest.param(
            ("--variant", "rocm6.4", "--os", "linux", "--arch", "aarch64", "--accelerator", "cpu"),
            id="rocm-variant-with-cpu",
        ),
        pytest.param(("--os", "windows", "--accelerator", "rocm"), id="rocm-on-windows"),
        pytest.param(("--os", "windows", "--arch", "arm64"), id="windows-arm64-stable"),
        pytest.param(
            ("--os", "windows", "--arch", "arm64", "--channel", "test"), id="windows-arm64-test"
        ),
        pytest.param(
            ("--os", "windows", "--arch", "arm64", "--channel", "nightly", "--accelerator", "cuda"),
            id="windows-arm64-nightly-cuda",
        ),
        pytest.param(
            ("--channel", "nightly", "--compute-capability", "6.1", "--driver", "580.65.06"),
            id="nightly-pascal",
        ),
        pytest.param(
            ("--channel", "test", "--variant", "cu130", "--compute-capability", "6.1"),
            id="test-forced-cuda-13-pascal",
        ),
        pytest.param(("--channel", "nightly", "--torch", "2.5.1"), id="nightly-with-torch"),
        pytest.param(("--channel", "test", "--manager", "conda"), id="test-with-conda"),
        pytest.param(("--python", "2.7"), id="python-2.7"),
        pytest.param(("--python", "3.99"), id="python-3.99"),
        pytest.param(("--torch", "1.7.1", "--python", "3.12"), id="torch-1.7.1-python-3.12"),
        pytest.param(("--torch", "9.9", "--manager", "uv"), id="unknown-torch"),
        pytest.param(("--manager", "conda"), id="conda-after-2.5.1"),
        pytest.param(("--variant", "cu121"), id="unknown-variant"),
        pytest.param(("--variant", "cu130", "--compute-capability", "6.1"), id="variant-gpu"),
        pytest.param(("--compute-capability", "6.1", "--driver", "470.57.02"), id="driver-too-old"),
        pytest.param(("--accelerator", "rocm", "--compute-capability", "8.6"), id="cc-with-rocm"),
        pytest.param(
            ("--os", "macos", "--accelerator", "mps", "--compute-capability", "8.6"),
            id="cc-with-mps-on-macos",
        ),
        pytest.param(("--os", "macos", "--compute-capability", "8.6"), id="cc-on-macos"),
        pytest.param(
            ("--os", "macos", "--arch", "x86_64", "--driver", "580.65.06"), id="driver-intel-mac"
        ),
        pytest.param(
            ("--channel", "nightly", "--os", "macos", "--driver", "580.65.06"),
            id="nightly-driver-on-macos",
        ),
        pytest.param(
            ("--channel", "nightly", "--driver", "570.86.10", "--compute-capability", "12.0"),
            id="nightly-driver-570",
        ),
        pytest.param(("--os", "linx"), id="os-typo"),
        pytest.param(("--packages", "torchvison"), id="package-typo"),
    ],
)
def test_every_suggested_command_succeeds(
    args: tuple[str, ...], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hint never goes round in circles: each command it prints, run as printed, plans."""
    cpu_vm = replay_snapshot("cpu-only-epyc-vm")
    monkeypatch.setattr("dlready.probes.collect.collect_snapshot", lambda: cpu_vm)
    code, out, err = invoke("--python", "3.12", *args) if "--python" not in args else invoke(*args)
    assert code == ExitCode.USAGE, err
    assert out == ""
    suggestions = _suggested_argvs(err)
    assert suggestions or "hint: " in err
    for argv in suggestions:
        again, again_out, again_err = invoke(*argv)
        if again != ExitCode.OK:  # a further step at most, to a command that plans
            assert again_err.splitlines()[0] != err.splitlines()[0], (argv, again_err)
            assert again_err.splitlines()[1] != err.splitlines()[1], (argv, again_err)
            further = _suggested_argvs(again_err)
            assert further, (argv, again_err)
            again, again_out, again_err = invoke(*further[0])
        assert again == ExitCode.OK, (argv, again_err)
        assert again_out.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "error"),
    [
        pytest.param(
            ("--os", "macos", "--accelerator", "mps", "--compute-capability", "8.6"),
            "--compute-capability describes an NVIDIA GPU, but --accelerator mps was given",
            id="cc-with-mps-on-macos",
        ),
        pytest.param(
            ("--os", "macos", "--accelerator", "cpu", "--driver", "580.65.06"),
            "--driver describes an NVIDIA GPU, but --accelerator cpu was given",
            id="driver-with-cpu-on-macos",
        ),
        pytest.param(
            ("--os", "macos", "--accelerator", "rocm", "--compute-capability", "8.6"),
            "--compute-capability describes an NVIDIA GPU, but --accelerator rocm was given",
            id="cc-with-rocm-on-macos",
        ),
        pytest.param(
            ("--os", "macos", "--arch", "x86_64", "--accelerator", "mps", "--driver", "580.65"),
            "--driver describes an NVIDIA GPU, but --accelerator mps was given",
            id="driver-with-mps-on-intel-mac",
        ),
        pytest.param(
            ("--os", "macos", "--driver", "580.65.06", "--compute-capability", "9.0"),
            "--driver and --compute-capability describe an NVIDIA GPU, but CUDA wheels do not "
            "exist for macOS",
            id="driver-and-cc-on-macos",
        ),
        pytest.param(
            ("--os", "macos", "--compute-capability", "8.6"),
            "--compute-capability describes an NVIDIA GPU, but CUDA wheels do not exist for macOS",
            id="cc-on-macos",
        ),
        pytest.param(
            ("--os", "macos", "--arch", "x86_64", "--driver", "580.65.06"),
            "--driver describes an NVIDIA GPU, but CUDA wheels do not exist for macOS",
            id="driver-on-intel-mac",
        ),
        pytest.param(
            ("--os", "macos", "--accelerator", "cuda"),
            "CUDA wheels do not exist for macOS",
            id="cuda-on-macos",
        ),
        pytest.param(
            ("--os", "macos", "--variant", "cu126", "--compute-capability", "8.6"),
            "--compute-capability describes an NVIDIA GPU, but CUDA wheels do not exist for macOS",
            id="cuda-variant-and-cc-on-macos",
        ),
        pytest.param(
            ("--channel", "nightly", "--os", "macos", "--compute-capability", "8.6"),
            "the nightly channel has no CUDA build for macos-arm64",
            id="nightly-cc-on-macos",
        ),
    ],
)
@pytest.mark.parametrize("machine", ["cpu-only-epyc-vm", "h100-80gb-hbm3"])
def test_nvidia_flags_for_a_mac_are_refused_with_a_command_that_plans(
    args: tuple[str, ...], error: str, machine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--driver and --compute-capability imply CUDA (--help), which macOS has no wheels for:
    refused like --accelerator cuda (whether this machine has an NVIDIA GPU or not), and
    every suggested command plans as printed, at the first step."""
    snapshot = replay_snapshot(machine)
    monkeypatch.setattr("dlready.probes.collect.collect_snapshot", lambda: snapshot)
    code, out, err = invoke("--python", "3.11", *args)  # 3.11: Intel Macs' torch 2.2.2 has it
    assert code == ExitCode.USAGE, err
    assert out == ""
    assert err.splitlines()[0] == f"error: {error}"
    suggestions = _suggested_argvs(err)
    assert suggestions, err
    for argv in suggestions:
        assert "--accelerator" in argv
        assert argv[argv.index("--accelerator") + 1] != "cuda", argv
        again, again_out, again_err = invoke(*argv)
        assert again == ExitCode.OK, (argv, again_err)
        assert again_out.count("\n") == 1


def test_a_detected_gpu_a_mac_cannot_use_is_not_reported_as_the_macs_accelerator(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """An H100 server planning for a Mac: the fallback is implied by the platform, never
    'detected' (nor 'implied by --compute-capability', a flag that implies CUDA)."""
    h100 = replay_snapshot("h100-80gb-hbm3")
    monkeypatch.setattr("dlready.probes.collect.collect_snapshot", lambda: h100)
    code, out, err = invoke("--os", "macos", "--python", "3.12", "--json")
    assert code == ExitCode.OK, err
    data = json.loads(out)["data"]
    assert data["variant"] == "default"
    accelerator = data["facts"]["accelerator"]
    assert accelerator["value"] == "mps"
    assert accelerator["origin"] == "implied"
    assert accelerator["detail"] == (
        "by the platform macos-arm64: the cuda detected here has no wheels for it"
    )
    assert any("cuda (detected) does not apply to macos-arm64" in w for w in data["warnings"])


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("--python", "2.7"), "dlready install-cmd --python 3.6 --torch 1.10.2  # "),
        (("--python", "3.99"), "dlready install-cmd --python 3.14  # "),
        (
            ("--torch", "1.7.1", "--python", "3.12"),
            "dlready install-cmd --torch 1.7.1 --python 3.9",
        ),
    ],
)
def test_another_python_is_a_whole_command_not_a_fragment(
    args: tuple[str, ...], command: str
) -> None:
    code, _, err = invoke("--os", "linux", "--arch", "x86_64", "--accelerator", "cpu", *args)
    assert code == ExitCode.USAGE
    hint = err.splitlines()[1]
    assert hint in ("hint: run this:", "hint: run one of these:"), hint
    assert any(
        line.replace("--os linux --arch x86_64 --accelerator cpu ", "").startswith(command)
        for line in err.splitlines()
    ), err


def test_json_hint_with_several_commands_names_them_all() -> None:
    code, out, err = invoke("--os", "linux", "--accelerator", "mps", "--python", "3.12", "--json")
    assert code == ExitCode.USAGE
    (error,) = json.loads(out)["errors"]
    assert len(error["more"]) == 2
    assert error["hint"] == "run one of these: " + "; or ".join(error["more"])
    # on stderr the commands are said once, in the hint line
    assert err.count(error["more"][0]) == 1
    # text output keeps the hint's lead-in, the commands on lines of their own
    _, _, text_err = invoke("--os", "linux", "--accelerator", "mps", "--python", "3.12")
    assert text_err.splitlines()[1] == "hint: run one of these:"
    # a refusal is also told on stderr with --json, as for every command (docs/json-schema.md)
    assert err.startswith("error: MPS is macOS only")


def test_cpu_variant_on_macos_says_what_it_became() -> None:
    code, out, err = invoke("--os", "macos", "--python", "3.12", "--variant", "cpu")
    assert code == ExitCode.OK
    assert "index-url" not in out  # the macOS wheels come from PyPI
    assert "what --variant cpu means on macOS" in err
    assert "the variant you asked for with --variant" not in err
