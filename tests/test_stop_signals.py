"""A stop signal at any moment of a command: while it still imports, and while it writes."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from dlready import head_start, launch, output
from dlready.exitcodes import ExitCode
from dlready.result import CommandResult, OutputFormat, Streams, emit
from dlready.stop_signals import OutputUnbroken, StopSignals

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")


@pytest.fixture(autouse=True)
def _clean_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(StopSignals, "received", None)
    monkeypatch.setattr(OutputUnbroken, "noted", None)
    monkeypatch.setattr(head_start, "start", lambda: False)  # no child for these tests


@pytest.mark.parametrize(
    ("signal_name", "args"),
    [
        ("SIGINT", ["check", "--json"]),
        ("SIGTERM", ["check", "--json"]),
        ("SIGHUP", ["fit", "gpt2", "--json"]),
        ("SIGTERM", ["install-cmd"]),
    ],
)
def test_a_stop_signal_while_the_command_still_loads_is_interrupted_exit_3(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    signal_name: str,
    args: list[str],
) -> None:
    # The signal arrives where a cold command spends most of its life: importing its
    # command line, before any command code runs. It was a traceback (Ctrl-C) or a silent
    # death with exit 143 (SIGTERM), and no JSON.
    def cli_main(_args: list[str]) -> None:
        os.kill(os.getpid(), getattr(signal, signal_name))
        raise AssertionError("the signal must stop the command")

    monkeypatch.setattr("dlready.cli.main", cli_main)
    with pytest.raises(SystemExit) as ended:
        launch.main(args)
    assert ended.value.code == ExitCode.COULD_NOT_RUN
    captured = capsys.readouterr()
    assert f"error: interrupted ({signal_name})" in captured.err
    assert "Traceback" not in captured.err
    if "--json" in args:
        document = json.loads(captured.out)
        assert (document["command"], document["status"]) == (args[0], "interrupted")
        assert document["errors"][0]["detail"] == {"signal": signal_name}
    else:
        assert captured.out == ""
    # Python's own handlers are back once the command has ended.
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_ctrl_c_in_the_parser_is_the_same_interrupted_result(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # The parser turns Ctrl-C into its own Abort, which printed a bare "interrupted" without
    # the envelope.
    from dlready import cli

    def build_app(_only: str | None) -> object:
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "build_app", build_app)
    with pytest.raises(SystemExit) as ended:
        cli.main(["check", "--json"])
    assert ended.value.code == ExitCode.COULD_NOT_RUN
    document = json.loads(capsys.readouterr().out)
    assert document["errors"][0]["code"] == "interrupted"


@pytest.mark.parametrize("fmt", [OutputFormat.TEXT, OutputFormat.JSON])
def test_a_stop_signal_while_the_result_is_written_leaves_it_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], fmt: OutputFormat
) -> None:
    # Ctrl-C while `check` printed its report cut it off after a few lines, with exit 130 and
    # nothing said; with --json the envelope said one exit code and the process another.
    def text(streams: Streams) -> None:
        streams.write("first half\n")
        os.kill(os.getpid(), signal.SIGINT)
        os.kill(os.getpid(), signal.SIGTERM)
        streams.write("second half\n")

    write_json = output.print_json

    def print_json(document: object) -> None:
        os.kill(os.getpid(), signal.SIGINT)
        write_json(document)

    monkeypatch.setattr(output, "print_json", print_json)
    result = CommandResult("check", ExitCode.NOT_READY, data={"a": 1}, text=text)
    with StopSignals():
        code = emit(result, fmt)
    assert code == ExitCode.NOT_READY
    out = capsys.readouterr().out
    if fmt is OutputFormat.TEXT:
        assert out == "first half\nsecond half\n"
        assert OutputUnbroken.noted == "SIGTERM"
    else:
        assert json.loads(out)["exit_code"] == ExitCode.NOT_READY
        assert OutputUnbroken.noted == "SIGINT"
    # Ctrl-C works as before once the result is out.
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
