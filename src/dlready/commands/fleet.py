"""``dlready fleet``: every rank of a torchrun / srun job checked at once; rank 0 reports."""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from dlready.exitcodes import ExitCode

if TYPE_CHECKING:
    from dlready.fleet.report import FleetReport
    from dlready.result import CommandResult

DEFAULT_TIMEOUT_S = 60.0
MIN_TIMEOUT_S = 5.0
"""Below this a healthy rank cannot finish a step: the speed rounds alone sample for 3 s on a
GPU (1.2 s on a CPU), and a vanished rank is only named after 2.5 s without a heartbeat."""
MAX_TIMEOUT_S = 86400.0


class Backend(str, enum.Enum):
    """torch.distributed backends the fleet can use."""

    NCCL = "nccl"
    GLOO = "gloo"


def fleet_command(
    backend: Annotated[
        Backend | None,
        typer.Option(
            "--backend",
            help="torch.distributed backend: nccl (default on CUDA GPUs) or gloo (default on CPUs).",
            case_sensitive=False,
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            help="Seconds each step may take (joining included) before the ranks that did not "
            "answer are named.",
        ),
    ] = DEFAULT_TIMEOUT_S,
    smoke: Annotated[
        bool, typer.Option("--smoke", help="Run smoke's quick correctness suite on every rank.")
    ] = False,
    as_json: Annotated[
        bool,
        typer.Option("--json", help="Print the versioned JSON fleet report (docs/json-schema.md)."),
    ] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print the report as Markdown for a ticket.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", help="Also save fleet.json and fleet.md in this folder (rank 0)."),
    ] = None,
) -> None:
    """Check every node and GPU of a torchrun, srun or Kubernetes job at once; rank 0 reports.

    Run it like training: `torchrun --nnodes N --nproc-per-node M -m dlready fleet`.
    """
    from dlready.result import (
        CommandError,
        CommandResult,
        OutputFormat,
        emit,
        internal_error,
        output_format,
    )

    fmt = OutputFormat.JSON if as_json else OutputFormat.TEXT
    try:
        fmt = output_format(as_json=as_json, as_markdown=as_markdown)
        code, report, stop_signal = _run(backend, timeout, smoke, output)
    except CommandError as error:
        emit(CommandResult("fleet", error.exit_code, errors=(error.problem,)), fmt)
        _leave(int(error.exit_code))
    except Exception as exc:  # a bug in dlready is one line, never a traceback
        if os.environ.get("DLREADY_DEBUG"):
            raise
        problem = internal_error(exc)
        emit(CommandResult("fleet", ExitCode.COULD_NOT_RUN, errors=(problem,)), fmt)
        _leave(int(ExitCode.COULD_NOT_RUN))
    if report is None:
        _leave(code)  # every rank but 0 leaves quietly with rank 0's verdict
    _leave(int(emit(_result(report, ExitCode(code), output, stop_signal), fmt)))


def timeout_problem(timeout_s: float) -> str | None:
    """Why ``--timeout`` cannot work, or None."""
    if MIN_TIMEOUT_S <= timeout_s <= MAX_TIMEOUT_S:  # False for NaN too
        return None
    return (
        f"--timeout {timeout_s:g}: give at least {MIN_TIMEOUT_S:g} and at most "
        f"{MAX_TIMEOUT_S:g} seconds (one day); a healthy rank needs about 3 s for its speed "
        "measurements alone"
    )


def output_problem(output: Path) -> str | None:
    """Why the report could not be saved in ``output``, or None; creates the folder.

    Checked on rank 0 before the run, so a bad path costs nothing but this line.
    """
    if output.exists() and not output.is_dir():
        return f"--output must be a folder; {output} is a file"
    try:
        output.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return f"--output {output}: the folder cannot be created ({exc.strerror or exc})"
    if not os.access(output, os.W_OK | os.X_OK):
        return f"--output {output}: this user cannot write in that folder"
    return None


def _run(
    backend: Backend | None, timeout: float, smoke: bool, output: Path | None
) -> tuple[int, FleetReport | None, str]:
    """(exit code, rank 0's report or None, the stop signal's name if one came)."""
    from dlready.fleet.launch import LaunchError, install_stop_handler, read_launch
    from dlready.result import CommandError, Problem, usage_error

    problem = timeout_problem(timeout)
    if problem:
        raise usage_error(problem)
    try:
        launch = read_launch(os.environ)
    except LaunchError as exc:
        raise usage_error(
            f"cannot tell this process's place in the fleet: {exc}",
            "start it with torchrun, srun, or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT",
        ) from None
    if output is not None and launch.rank == 0:
        problem = output_problem(output)
        if problem:
            raise usage_error(problem, "give a folder that can be created or written in")
    # torch's C++ store and process-group warnings print stack frames when a peer goes away;
    # the fleet reports that itself, in words.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    # Before torch loads: a launcher's SIGTERM during those seconds must still leave a report.
    terminated = install_stop_handler()
    try:
        from dlready.fleet import runtime
    except ImportError as exc:
        raise CommandError(
            ExitCode.COULD_NOT_RUN,
            Problem(
                "torch_not_installed",
                f"PyTorch cannot be imported ({exc}); the fleet runs on torch.distributed",
                "`dlready install-cmd` prints the install command for this machine",
            ),
        ) from None
    options = runtime.Options(
        backend=backend.value if backend else None, timeout_s=timeout, smoke=smoke
    )
    try:
        code, report = runtime.run_rank(launch, options, terminated)
    except runtime.AbortedError as exc:
        kind = "usage" if exc.code == ExitCode.USAGE else "could_not_run"
        raise CommandError(ExitCode(exc.code), Problem(kind, str(exc))) from None
    return code, report, terminated.signal_name


def _result(
    report: FleetReport, exit_code: ExitCode, output: Path | None, stop_signal: str
) -> CommandResult:
    from dlready.model import to_jsonable
    from dlready.output import dump_json
    from dlready.render.fleet_render import render_markdown, render_text
    from dlready.result import (
        CommandResult,
        Problem,
        Streams,
        envelope_of,
        interrupted_problem,
    )

    data = to_jsonable(report)
    errors: tuple[Problem, ...] = ()
    status = None
    if any(finding.kind == "interrupted" for finding in report.findings):
        # As every dlready command stopped from outside: exit 3, status "interrupted".
        status = "interrupted"
        errors = (interrupted_problem(stop_signal),)
    if output is not None:
        try:
            output.mkdir(parents=True, exist_ok=True)
            document = envelope_of(CommandResult("fleet", exit_code, data=data))
            (output / "fleet.json").write_text(dump_json(document) + "\n", encoding="utf-8")
            (output / "fleet.md").write_text(render_markdown(report), encoding="utf-8")
        except OSError as exc:
            exit_code = ExitCode.COULD_NOT_RUN
            errors = (
                *errors,
                Problem(
                    "could_not_run", f"cannot save the report in {output}: {exc.strerror or exc}"
                ),
            )

    def text(streams: Streams) -> None:
        # Fitted to a terminal's width; a pipe or a file gets the full table and whole lines.
        console = streams.console
        streams.write(render_text(report, console.width if console.is_terminal else None))

    def markdown(streams: Streams) -> None:
        streams.write(render_markdown(report))

    return CommandResult(
        "fleet",
        exit_code,
        data=data,
        status=status,
        errors=errors,
        text=text,
        markdown=markdown,
    )


def _leave(code: int) -> NoReturn:
    """Exit now: a rank's worker thread may sit in a collective that never returns."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(code)
