"""``dlready fleet``: every rank of a torchrun / srun job checked at once; rank 0 reports."""

from __future__ import annotations

import contextlib
import enum
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dlready.exitcodes import ExitCode

if TYPE_CHECKING:
    from dlready.fleet.report import FleetReport

DEFAULT_TIMEOUT_S = 60.0


class Backend(str, enum.Enum):
    """torch.distributed backends the fleet can use."""

    NCCL = "nccl"
    GLOO = "gloo"


def _fail(message: str, code: ExitCode, hint: str | None = None) -> typer.Exit:
    from dlready.output import error_line

    error_line(message, hint)
    return typer.Exit(int(code))


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
    Exit 0: every rank answered, matched its peers and computed correctly; 1: a finding
    (missing or lost rank, straggler, difference between nodes, wrong collective, slow link);
    2: usage error; 3: the fleet could not run (no torch, rank 0 unreachable).
    """
    if as_json and as_markdown:
        raise _fail("--json and --markdown cannot be combined", ExitCode.USAGE)
    if not timeout > 0 or timeout > 86400:
        raise _fail(f"--timeout {timeout:g} must be between 0 and 86400 seconds", ExitCode.USAGE)
    from dlready.fleet.launch import LaunchError, read_launch

    try:
        launch = read_launch(os.environ)
    except LaunchError as exc:
        raise _fail(
            f"cannot tell this process's place in the fleet: {exc}",
            ExitCode.USAGE,
            "start it with torchrun, srun, or set RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT",
        ) from None
    # torch's C++ store and process-group warnings print stack frames when a peer goes away;
    # the fleet reports that itself, in words.
    os.environ.setdefault("TORCH_CPP_LOG_LEVEL", "ERROR")
    try:
        from dlready.fleet import runtime
    except ImportError as exc:
        raise _fail(
            f"PyTorch cannot be imported ({exc}); the fleet runs on torch.distributed",
            ExitCode.COULD_NOT_RUN,
            "`dlready install-cmd` prints the install command for this machine",
        ) from None
    options = runtime.Options(
        backend=backend.value if backend else None, timeout_s=timeout, smoke=smoke
    )
    try:
        code, report = runtime.run_rank(launch, options)
    except runtime.AbortedError as exc:
        from dlready.output import error_line

        error_line(str(exc))
        _leave(exc.code)
    if report is not None:
        code = _emit(report, code, as_json, as_markdown, output)
    _leave(code)


def _emit(
    report: FleetReport, code: int, as_json: bool, as_markdown: bool, output: Path | None
) -> int:
    from dlready.fleet.render import render_markdown, render_text
    from dlready.model import to_jsonable
    from dlready.output import dump_json, envelope, stdout_guard

    exit_code = ExitCode(code)
    document = envelope("fleet", exit_code, to_jsonable(report))
    if output is not None:
        try:
            output.mkdir(parents=True, exist_ok=True)
            (output / "fleet.json").write_text(dump_json(document) + "\n", encoding="utf-8")
            (output / "fleet.md").write_text(render_markdown(report), encoding="utf-8")
        except OSError as exc:
            from dlready.output import error_line

            error_line(f"cannot save the report in {output}: {exc.strerror or exc}")
            code = int(ExitCode.COULD_NOT_RUN)
    with stdout_guard():
        if as_json:
            sys.stdout.write(dump_json(document) + "\n")
        elif as_markdown:
            sys.stdout.write(render_markdown(report))
        else:
            sys.stdout.write(render_text(report))
    return code


def _leave(code: int) -> None:
    """Exit now: a rank's worker thread may sit in a collective that never returns."""
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError, AttributeError):
            stream.flush()
    os._exit(code)
