"""``dlready install-cmd``: print the one right PyTorch install command, and explain it.

stdout holds exactly one command line (so ``dlready install-cmd | sh`` works); the explanation
goes to stderr. Imports of the planner happen inside the function to keep ``dlready --help``
and the other commands fast.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from dlready.exitcodes import ExitCode

if TYPE_CHECKING:
    from dlready.install.facts import FactOverrides, MachineFacts
    from dlready.install.planner import InstallPlan, InstallWishes
    from dlready.install.run import TargetInterpreter

COMMAND = "install-cmd"


def install_cmd_command(
    os_name: Annotated[
        str | None,
        typer.Option("--os", help="Plan for this OS: linux, windows or macos (default: this one)."),
    ] = None,
    arch: Annotated[
        str | None,
        typer.Option("--arch", help="CPU architecture: x86_64, aarch64 or arm64."),
    ] = None,
    python: Annotated[
        str | None,
        typer.Option(
            "--python",
            help="Python version X.Y the command is for (another machine), or an interpreter "
            "(a path such as .venv/bin/python, or python3.12): plan for it, and --run installs "
            "into it.",
        ),
    ] = None,
    accelerator: Annotated[
        str | None,
        typer.Option("--accelerator", help="cuda, rocm, mps or cpu (default: detected)."),
    ] = None,
    driver: Annotated[
        str | None,
        typer.Option("--driver", help="NVIDIA driver version, e.g. 580.65.06 (implies cuda)."),
    ] = None,
    compute_capability: Annotated[
        list[str] | None,
        typer.Option(
            "--compute-capability",
            help="Compute capability X.Y of a GPU; repeat for every GPU (implies cuda).",
        ),
    ] = None,
    variant: Annotated[
        str | None,
        typer.Option("--variant", help="Wheel variant: cu126, cu130, rocm6.4, cpu, ..."),
    ] = None,
    torch: Annotated[
        str | None,
        typer.Option("--torch", help="torch release to install, e.g. 2.5.1 (default: newest)."),
    ] = None,
    manager: Annotated[
        str,
        typer.Option("--manager", help="pip, uv or conda (official conda ends at 2.5.1)."),
    ] = "pip",
    packages: Annotated[
        str | None,
        typer.Option(
            "--packages",
            help="Comma-separated: torch,torchvision,torchaudio (default: all the release has).",
        ),
    ] = None,
    explain: Annotated[
        bool,
        typer.Option("--explain", help="Explain every fact, candidate and source on stderr."),
    ] = False,
    json_output: Annotated[
        bool,
        typer.Option("--json", help="Print the plan as the versioned JSON envelope instead."),
    ] = False,
    channel: Annotated[
        str,
        typer.Option(
            "--channel",
            help="stable (default), test (release candidates) or nightly: the pre-release "
            "indexes, for GPUs newer than the newest stable release supports.",
        ),
    ] = "stable",
    run: Annotated[
        bool,
        typer.Option(
            "--run",
            help="Print the command, then run it for this Python (or --python PATH), after "
            "asking on a terminal; exit with its status.",
        ),
    ] = False,
    assume_yes: Annotated[
        bool, typer.Option("--yes", "-y", help="With --run: install without asking.")
    ] = False,
) -> None:
    """Print the one PyTorch install command that works on this machine, and why.

    The command (pip by default) goes to stdout alone, so `dlready install-cmd | sh` works;
    the detected facts, the choice and any warnings go to stderr (all of it with --explain).
    Flags plan for another machine or override detection: each given flag wins, and the
    explanation says which values were detected and which were given. An impossible request
    (unknown release or variant, Python out of range, conda after 2.5.1, no CUDA build for
    this GPU and driver) prints one error line naming the nearest valid choice and exits 2.
    """
    from dlready import output
    from dlready.install import run as install_run
    from dlready.install.errors import PlanError
    from dlready.install.facts import FactOverrides, validate_overrides
    from dlready.install.planner import InstallWishes
    from dlready.install.table import CompatTableError, load_compat_table

    if (run or assume_yes) and json_output:
        _fail(ExitCode.USAGE, "--run cannot be combined with --json", "drop --json", (), True, None)
    if assume_yes and not run:
        _fail(ExitCode.USAGE, "--yes only applies to --run", "add --run", (), json_output, None)
    target: TargetInterpreter | None = None
    try:
        interpreter = python is not None and install_run.is_interpreter(python)
        if interpreter and python is not None:
            target = install_run.read_interpreter(python)
        elif run:
            target = install_run.this_interpreter()
        overrides = validate_overrides(
            FactOverrides(
                os=os_name,
                arch=arch,
                python=target.python if interpreter and target else python,
                accelerator=accelerator,
                driver=driver,
                compute_capabilities=tuple(compute_capability or ()),
            )
        )
        wishes = InstallWishes(
            torch=torch,
            variant=variant,
            manager=manager.strip().lower(),
            packages=tuple(packages.split(",")) if packages is not None else None,
        )
        if target is not None:
            install_run.check_same_machine(
                target, overrides, python is not None and not interpreter
            )
        facts = _facts(overrides)
        if target is not None:
            facts = install_run.facts_for(facts, target)
        plan = _plan(facts, wishes, channel)
        table = load_compat_table()
    except PlanError as exc:
        _fail(ExitCode.USAGE, exc.message, exc.nearest_valid, exc.hints, json_output, exc)
    except install_run.RunError as exc:
        _fail(exc.code, exc.message, exc.hint, (), json_output, None)
    except _CouldNotRunError as exc:
        _fail(ExitCode.COULD_NOT_RUN, str(exc), exc.hint, (), json_output, None)
    except CompatTableError as exc:
        _fail(ExitCode.COULD_NOT_RUN, str(exc), "reinstall dlready", (), json_output, None)

    if json_output:
        # A closed, full or vanished stdout exits 3 with one error line (output.stdout_guard).
        data = plan.to_jsonable()
        data["channel"] = channel.strip().lower()
        output.print_json(output.envelope(COMMAND, ExitCode.OK, data))
        return
    if run and target is not None:
        _run_plan(plan, target, assume_yes)
    _print_plan(plan, table, explain)


def _plan(facts: MachineFacts, wishes: InstallWishes, channel: str) -> InstallPlan:
    """The stable planner, or the pre-release channel's (``--channel test|nightly``)."""
    from dlready.install.channels import plan_channel, validate_channel
    from dlready.install.planner import plan_install

    name = validate_channel(channel)
    return plan_install(facts, wishes) if name == "stable" else plan_channel(facts, wishes, name)


def _run_plan(plan: InstallPlan, target: TargetInterpreter, assume_yes: bool) -> NoReturn:
    """``--run``: print the command, ask, run it with the terminal's streams, exit with its
    status (docs/install-cmd.md)."""
    from dlready import output
    from dlready.install import run as install_run
    from dlready.install.explain import short_lines
    from dlready.probes.tools_gateway import command_line

    try:
        argv = install_run.run_argv(plan, target)
    except install_run.RunError as exc:
        _fail(exc.code, exc.message, exc.hint, (), False, None)
    with output.stdout_guard():
        sys.stdout.write(command_line(argv) + "\n")
    _stderr_line("\n".join(short_lines(plan)))
    try:
        confirmed = install_run.confirm(assume_yes, sys.stdin, sys.stderr)
    except install_run.RunError as exc:
        _fail(exc.code, exc.message, exc.hint, (), False, None)
    if not confirmed:
        _stderr_line("# not installed: you said no")
        raise typer.Exit(int(ExitCode.NOT_READY))
    try:
        status = install_run.execute(argv)
    except install_run.RunError as exc:
        _fail(exc.code, exc.message, exc.hint, (), False, None)
    if status == 0:
        _stderr_line(f"# installed into {target.executable}; {install_run.verify_hint(target)}")
    else:
        _stderr_line(f"# the install failed (exit {status}); its output is above")
        if plan.manager == "pip":
            _stderr_line(
                "# if it said 'No module named pip' (uv-made environments have none): "
                f"{command_line([target.executable, '-m', 'ensurepip'])}, or --manager uv"
            )
    raise typer.Exit(status)


def _stderr_line(line: str) -> None:
    """One diagnostic line; silently dropped when stderr itself is closed or failing."""
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError):
        pass


class _CouldNotRunError(RuntimeError):
    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.hint = hint


_DETECTION_HINT = (
    "pass --os, --arch, --python and --accelerator (and --driver for cuda) to plan without "
    "detection"
)


def _facts(overrides: FactOverrides) -> MachineFacts:
    """Detected facts with the flags applied; no probing when the flags say everything."""
    from dlready.install.facts import apply_overrides, facts_from_overrides, facts_from_snapshot

    if overrides.covers_detection:
        return facts_from_overrides(overrides)
    try:
        from dlready.probes.collect import collect_snapshot
    except ImportError as exc:
        raise _CouldNotRunError(
            f"hardware detection is unavailable ({exc})", _DETECTION_HINT
        ) from None
    try:
        snapshot = collect_snapshot()
    except Exception as exc:  # noqa: BLE001  # any probe failure becomes one error line
        raise _CouldNotRunError(
            f"hardware detection failed: {type(exc).__name__}: {exc}", _DETECTION_HINT
        ) from None
    return apply_overrides(facts_from_snapshot(snapshot), overrides)


def _fail(
    code: ExitCode,
    message: str,
    hint: str | None,
    hints: tuple[str, ...],
    json_output: bool,
    error: object,
) -> NoReturn:
    from dlready import output

    if json_output:
        detail = error.to_jsonable() if hasattr(error, "to_jsonable") else None
        errors = [
            detail
            or {"code": code.name.lower(), "message": message, "nearest_valid": hint, "hints": []}
        ]
        output.print_json(output.envelope(COMMAND, code, None, errors=errors))
    elif sys.stderr is not None:
        try:
            output.error_line(message, hint)
            console = output.stderr_console()
            for line in hints:
                console.print(f"# {line}", markup=False, highlight=False)
        except OSError:
            pass  # stderr refuses the write: the exit code still tells
    raise typer.Exit(int(code))


def _print_plan(plan: InstallPlan, table: object, explain: bool) -> None:
    from dlready import output
    from dlready.install.explain import full_lines, short_lines
    from dlready.install.table import CompatTable

    # The command goes to stdout byte for byte: rich could wrap or interpret it. A closed,
    # full or vanished stdout exits 3 with one error line, never a traceback.
    with output.stdout_guard():
        sys.stdout.write(plan.command_line + "\n")
    lines = (
        full_lines(plan, table) if explain and isinstance(table, CompatTable) else short_lines(plan)
    )
    # Plain uncoloured text, so no rich Console: creating one costs ~19 ms, a tenth of this
    # command's time budget (benchmarks/bench_install_cmd.py). The explanation is best effort:
    # with stderr closed (`2>&-`) the command on stdout is still the result.
    _stderr_line("\n".join(lines))
