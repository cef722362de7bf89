"""One emit path for every command: the envelope whatever happens, and output that is never lost.

Each case runs the real entry point (``python -m dlready``) in a subprocess, because what is
tested is the process: its stdout, stderr and exit code under a hostile environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from dlready.exitcodes import ExitCode
from dlready.model import to_jsonable
from dlready.result import CommandResult, run
from machines import replay_snapshot

ROOT = Path(__file__).parent.parent
NOT_JSON = str(ROOT / "pyproject.toml")
NOT_A_REPORT = str(ROOT / "tests" / "fixtures" / "hf_configs" / "tinyllama-1.1b.json")
H100_FLAGS = ("--os", "linux", "--arch", "x86_64", "--python", "3.11", "--driver", "580.65.06")
H100_FLAGS += ("--compute-capability", "9.0")


def _run(
    *args: str, env: dict[str, str] | None = None, shell_redirect: str = ""
) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "NO_COLOR": "1", **(env or {})}
    if shell_redirect:
        quoted = " ".join(f"'{arg}'" for arg in args)
        return subprocess.run(
            f"'{sys.executable}' -m dlready {quoted} {shell_redirect}",
            shell=True,
            capture_output=True,
            text=True,
            errors="replace",  # a latin-1 stdout is not UTF-8; the test reads what it can
            timeout=120,
            check=False,
            env=environment,
        )
    return subprocess.run(
        [sys.executable, "-m", "dlready", *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=120,
        check=False,
        env=environment,
    )


@pytest.fixture(scope="module")
def h100_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A saved snapshot of the recorded H100 server (its GPU rows carry temperatures in °C)."""
    path = tmp_path_factory.mktemp("snap") / "h100.json"
    path.write_text(json.dumps(to_jsonable(replay_snapshot("h100-80gb-hbm3"))))
    return path


@pytest.mark.parametrize(
    ("args", "command", "code"),
    [
        pytest.param(("check", "--json", "--profile", "nope"), "check", 2, id="check-profile"),
        pytest.param(("check", "--json", "--markdown"), "check", 2, id="check-json-markdown"),
        pytest.param(("check", "--json", "--bogus"), "check", 2, id="check-unknown-flag"),
        pytest.param(("check", "--json", "--fail-on", "maximum"), "check", 2, id="check-bad-value"),
        pytest.param(("smoke", "--json", "--device", "tpu"), "smoke", 2, id="smoke-device"),
        pytest.param(("smoke", "--json", "--timeout", "0"), "smoke", 2, id="smoke-timeout"),
        pytest.param(("install-cmd", "--json", "--torch", "9.9", *H100_FLAGS), "install-cmd", 2),
        pytest.param(("install-cmd", "--json", "--manager", "apt"), "install-cmd", 2),
        pytest.param(("fit", "--json", "no-such-model"), "fit", 2, id="fit-unknown-model"),
        pytest.param(("fit", "--json", "gpt2", "--task", "nope"), "fit", 2, id="fit-bad-task"),
        pytest.param(("fit", "--json", "gpt2", "--batch", "0"), "fit", 2, id="fit-bad-batch"),
        pytest.param(
            ("diff", "--json", "/nonexistent/a.json", "/nonexistent/b.json"),
            "diff",
            2,
            id="diff-missing-file",
        ),
        pytest.param(("diff", "--json", NOT_JSON, NOT_JSON), "diff", 2, id="diff-not-json"),
        pytest.param(
            ("diff", "--json", NOT_A_REPORT, NOT_A_REPORT), "diff", 2, id="diff-json-not-a-report"
        ),
        pytest.param(("diff", "--json", NOT_JSON), "diff", 2, id="diff-one-argument"),
        pytest.param(("diff", "--json"), "diff", 2, id="diff-no-argument"),
        pytest.param(("fleet", "--json", "--backend", "nope"), "fleet", 2, id="fleet-backend"),
        pytest.param(("fleet", "--json", "--timeout", "0"), "fleet", 2, id="fleet-timeout"),
        pytest.param(("fleet", "--json", "--timeout", "nan"), "fleet", 2, id="fleet-timeout-nan"),
        pytest.param(("fleet", "--json", "--markdown"), "fleet", 2, id="fleet-json-markdown"),
        pytest.param(
            ("install-cmd", "--json", "--run", *H100_FLAGS), "install-cmd", 2, id="run-json"
        ),
        pytest.param(
            ("install-cmd", "--json", "--yes", *H100_FLAGS), "install-cmd", 2, id="yes-alone"
        ),
        pytest.param(
            ("install-cmd", "--json", "--channel", "beta", *H100_FLAGS),
            "install-cmd",
            2,
            id="channel",
        ),
        pytest.param(
            ("install-cmd", "--json", "--python", "/nonexistent/python"),
            "install-cmd",
            2,
            id="python-path",
        ),
    ],
)
def test_json_mode_always_prints_the_envelope(
    args: tuple[str, ...], command: str, code: int
) -> None:
    _assert_one_refusal(_run(*args, env=NO_LAUNCHER), command, code)


# Outside a launcher `dlready fleet` tests this one process (docs/fleet.md); these refusals
# need the launcher's variables set wrong, or NCCL where torch sees no CUDA GPU.
NO_LAUNCHER = {"RANK": "", "WORLD_SIZE": "", "SLURM_PROCID": "", "SLURM_NTASKS": ""}


@pytest.mark.parametrize(
    ("env", "args", "error_code", "says"),
    [
        pytest.param({"RANK": "0"}, (), "usage", "RANK is set but WORLD_SIZE is not", id="rank"),
        pytest.param({"WORLD_SIZE": "2", "RANK": "2", "MASTER_ADDR": "127.0.0.1"}, (), "usage",
                     "rank 2 is not below the world size 2", id="rank-too-high"),
        pytest.param({"WORLD_SIZE": "2", "RANK": "0", "MASTER_ADDR": "h", "MASTER_PORT": "0"},
                     (), "usage", "MASTER_PORT=0 must be at least 1", id="port"),
        pytest.param({"CUDA_VISIBLE_DEVICES": ""}, ("--backend", "nccl"), "usage",
                     "--backend nccl needs CUDA GPUs", id="nccl-without-gpu"),
    ],
)  # fmt: skip
def test_fleet_refusals_print_the_envelope(
    env: dict[str, str], args: tuple[str, ...], error_code: str, says: str
) -> None:
    result = _run("fleet", "--json", *args, env={**NO_LAUNCHER, **env})
    error = _assert_one_refusal(result, "fleet", ExitCode.USAGE)
    assert error["code"] == error_code
    assert says in error["message"]


def _assert_one_refusal(
    result: subprocess.CompletedProcess[str], command: str, code: int
) -> dict[str, object]:
    assert result.returncode == code, result.stderr
    document = json.loads(result.stdout)
    assert document["command"] == command
    assert document["exit_code"] == code
    assert document["schema_version"] == 2
    assert document["warnings"] == []
    (error,) = document["errors"]
    assert set(error) == {"code", "message", "hint", "detail", "more"}
    assert error["message"]
    # The same refusal is one line on stderr for a person watching.
    assert result.stderr.startswith("error: ")
    assert "Traceback" not in result.stderr
    return error


@pytest.mark.parametrize(
    "args", [("--version",), ("check", "--help"), ("--help",), ("install-cmd", "-h")]
)
def test_help_and_version_to_a_full_disk_exit_3_with_one_line(args: tuple[str, ...]) -> None:
    result = _run(*args, shell_redirect=">/dev/full")
    assert result.returncode == ExitCode.COULD_NOT_RUN
    assert result.stderr.splitlines() == ["error: cannot write to stdout: No space left on device"]


@pytest.mark.parametrize("args", [(), ("check",), ("smoke",), ("install-cmd",)])
def test_dash_h_is_help(args: tuple[str, ...]) -> None:
    result = _run(*args, "-h")
    assert result.returncode == 0
    assert result.stdout.startswith("Usage: dlready")


@pytest.mark.parametrize("fmt", [(), ("--json",), ("--markdown",)])
def test_a_reader_that_went_away_is_exit_3_and_one_line(
    fmt: tuple[str, ...], h100_report: Path
) -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dlready", "check", "--snapshot", str(h100_report), *fmt],
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        os.close(write_end)
    assert result.returncode == ExitCode.COULD_NOT_RUN, result.stderr
    assert result.stderr.splitlines() == [
        "error: the reader of the output went away before it was all written; the result is "
        "incomplete"
    ]


@pytest.mark.parametrize("columns", ["0", "-3", "abc", "5"])
def test_nonsense_columns_never_lose_the_report(columns: str, h100_report: Path) -> None:
    result = _run("check", "--snapshot", str(h100_report), env={"COLUMNS": columns})
    assert result.returncode == ExitCode.OK, result.stderr
    assert "H100" in result.stdout
    assert len(result.stdout.splitlines()) > 10


def test_an_unwritable_stderr_keeps_the_exit_code() -> None:
    result = _run("check", "--profile", "nope", shell_redirect="2>/dev/full")
    assert result.returncode == ExitCode.USAGE
    result = _run("install-cmd", "--torch", "9.9", *H100_FLAGS, shell_redirect="2>&-")
    assert result.returncode == ExitCode.USAGE


def test_install_cmd_ignores_a_bad_psu_setting_it_never_uses() -> None:
    result = _run("install-cmd", env={"DLREADY_PSU_WATTS": "abc"})
    assert result.returncode == ExitCode.OK, result.stderr
    assert result.stdout.startswith(("pip", "uv", "conda"))
    # check judges the PSU, so there the same value is a usage error.
    check = _run("check", env={"DLREADY_PSU_WATTS": "abc"})
    assert check.returncode == ExitCode.USAGE
    assert "DLREADY_PSU_WATTS='abc' is not a number of watts" in check.stderr


ENCODINGS = [
    pytest.param({"PYTHONIOENCODING": "ascii"}, id="ascii"),
    pytest.param({"PYTHONIOENCODING": "latin-1"}, id="latin-1"),
    pytest.param({"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0", "PYTHONIOENCODING": ""}, id="C"),
]


@pytest.mark.parametrize("env", ENCODINGS)
@pytest.mark.parametrize("fmt", [(), ("--json",), ("--markdown",)])
def test_a_stdout_that_is_not_utf8_still_gets_the_whole_report(
    env: dict[str, str], fmt: tuple[str, ...], h100_report: Path
) -> None:
    result = _run("check", "--snapshot", str(h100_report), *fmt, env=env)
    assert result.returncode == ExitCode.OK, result.stderr
    assert "Traceback" not in result.stderr
    assert "H100" in result.stdout
    if fmt == ("--json",):
        document = json.loads(result.stdout)
        assert document["data"]["snapshot"]["gpus"][0]["temperature_c"]["value"] is not None


@pytest.mark.parametrize("env", ENCODINGS)
@pytest.mark.parametrize(
    "args",
    [
        ("install-cmd", *H100_FLAGS),
        ("install-cmd", "--explain", *H100_FLAGS),
        ("smoke", "--device", "tpu"),
        ("--help",),
        ("check", "--list-profiles"),
    ],
)
def test_every_command_survives_a_stdout_that_is_not_utf8(
    env: dict[str, str], args: tuple[str, ...]
) -> None:
    result = _run(*args, env=env)
    assert result.returncode in (ExitCode.OK, ExitCode.USAGE), result.stderr
    assert "Traceback" not in result.stderr
    assert "UnicodeEncodeError" not in result.stderr


def test_list_profiles_follows_json() -> None:
    result = _run("check", "--list-profiles", "--json")
    assert result.returncode == ExitCode.OK
    profiles = json.loads(result.stdout)["data"]["profiles"]
    assert {p["name"] for p in profiles} >= {"book-2020", "current"}
    assert [p["name"] for p in profiles if p["default"]] == ["book-2020"]
    text = _run("check", "--list-profiles")
    assert "book-2020 (default): " in text.stdout


def _crash() -> CommandResult:
    raise RuntimeError("broken on purpose")


@pytest.mark.parametrize("as_json", [False, True])
def test_an_internal_error_is_one_line_and_exit_3(
    as_json: bool, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("DLREADY_DEBUG", raising=False)
    with pytest.raises(SystemExit) as ended:
        run("check", _crash, as_json=as_json)
    assert ended.value.code == ExitCode.COULD_NOT_RUN
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        "error: dlready hit an internal error: RuntimeError: broken on purpose",
        "hint: please report it; DLREADY_DEBUG=1 shows the traceback",
    ]
    if as_json:
        assert json.loads(captured.out)["errors"][0]["code"] == "internal_error"
    else:
        assert captured.out == ""


def test_ctrl_c_is_interrupted_exit_3(capsys: pytest.CaptureFixture[str]) -> None:
    def interrupted() -> CommandResult:
        raise KeyboardInterrupt

    with pytest.raises(SystemExit) as ended:
        run("smoke", interrupted, as_json=True)
    assert ended.value.code == ExitCode.COULD_NOT_RUN
    document = json.loads(capsys.readouterr().out)
    assert (document["status"], document["errors"][0]["code"]) == ("interrupted", "interrupted")


@pytest.mark.parametrize("fmt", [(), ("--json",)])
def test_stdout_and_stderr_on_one_pipe_whose_reader_went_away_is_exit_3(
    fmt: tuple[str, ...], h100_report: Path
) -> None:
    """`dlready check 2>&1 | head -1`: the error line itself cannot be written either; rich's
    broken-pipe handler then ended the process with 1 ("not ready")."""
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dlready", "check", "--snapshot", str(h100_report), *fmt],
            stdout=write_end,
            stderr=write_end,
            timeout=120,
            check=False,
            env={**os.environ, "NO_COLOR": "1"},
        )
    finally:
        os.close(write_end)
    assert result.returncode == ExitCode.COULD_NOT_RUN


def test_an_unknown_command_points_to_the_list_of_commands() -> None:
    """`dlready chek --json`: the envelope names no command that does not exist, and the hint
    is a help command that works."""
    result = _run("chek", "--json")
    assert result.returncode == ExitCode.USAGE
    document = json.loads(result.stdout)
    assert document["command"] == "dlready"
    assert document["errors"][0]["hint"] == "see `dlready --help`"
    assert "Did you mean 'check'?" in document["errors"][0]["message"]
    known = json.loads(_run("check", "--bogus", "--json").stdout)
    assert known["errors"][0]["hint"] == "see `dlready check --help`"


@pytest.mark.parametrize(("reported", "expected"), [(0, 80), (10, 20), (60, 60), (200, 200)])
def test_stderr_width_of_a_terminal_that_reports_no_size_is_the_usual_default(
    monkeypatch: pytest.MonkeyPatch, reported: int, expected: int
) -> None:
    # Under `script` without a parent terminal the size is 0x0: install-cmd's explanation then
    # wrapped at 20 columns, a word or two a line, while check's report used 80.
    from dlready import output

    class Terminal:
        def isatty(self) -> bool:
            return True

        def fileno(self) -> int:
            return 2

    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(output.sys, "stderr", Terminal())
    monkeypatch.setattr(output.os, "get_terminal_size", lambda fd: os.terminal_size((reported, 0)))
    assert output.stderr_terminal_columns() == expected


def test_error_lines_say_the_driver_in_words_and_the_json_keeps_its_name(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # install-cmd and fit said "... not loaded (NVMLError_DriverNotLoaded: Driver Not Loaded)".
    from dlready.result import CommandResult, OutputFormat, Problem, emit

    message = (
        "fix the NVIDIA driver first: the NVIDIA driver is installed but its kernel module is "
        "not loaded (NVMLError_DriverNotLoaded: Driver Not Loaded)"
    )
    result = CommandResult(
        "install-cmd", ExitCode.USAGE, errors=(Problem("usage", message, "sudo modprobe nvidia"),)
    )
    assert emit(result, OutputFormat.JSON) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert "NVMLError" not in captured.err
    assert "its kernel module is not loaded" in captured.err
    assert json.loads(captured.out)["errors"][0]["message"] == message
