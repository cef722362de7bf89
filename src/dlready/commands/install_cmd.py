"""``dlready install-cmd``: print the one right PyTorch install command, and explain it.

stdout holds exactly one command line (so ``dlready install-cmd | sh`` works); the explanation
goes to stderr. Imports of the planner happen inside the function to keep ``dlready --help``
and the other commands fast.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, NamedTuple, NoReturn

import typer

from dlready.exitcodes import ExitCode

if TYPE_CHECKING:
    from dlready.install.facts import FactOverrides, MachineFacts
    from dlready.install.plan import InstallPlan, InstallWishes
    from dlready.install.run import TargetInterpreter
    from dlready.install.table import CompatTable
    from dlready.result import CommandResult, Streams

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
    run_install: Annotated[
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
    from dlready.result import run

    run(
        COMMAND,
        lambda: _install_cmd(
            FactOverridesArgs(os_name, arch, python, accelerator, driver, compute_capability),
            torch,
            variant,
            manager,
            packages,
            explain,
            RunArgs(channel, run_install, assume_yes, json_output),
        ),
        as_json=json_output,
    )


def command_with(flags: str, drop: tuple[str, ...] = ()) -> str:
    """This ``dlready install-cmd`` run's command line with ``flags`` given instead of the
    same flags it had (``--os linux --arch x86_64``), and without the flags in ``drop``: a
    whole command to copy."""
    import shlex

    from typer._click.core import ParameterSource
    from typer._click.globals import get_current_context

    changes = shlex.split(flags)
    words = ["dlready", COMMAND]
    context = get_current_context(silent=True)
    if context is None:  # called outside a command line: only the flags asked for
        return shlex.join([*words, *changes])
    for param in context.command.params:
        name = param.name or ""
        if context.get_parameter_source(name) is not ParameterSource.COMMANDLINE:
            continue
        long_names = [opt for opt in (*param.opts, *param.secondary_opts) if opt.startswith("--")]
        if not long_names or set(long_names) & {*changes, *drop}:
            continue
        value = context.params.get(name)
        if isinstance(value, bool):
            if value:
                words.append(long_names[0])
        elif isinstance(value, (tuple, list)):  # a repeatable flag: once per value
            for item in value:
                words += [long_names[0], str(item)]
        elif value is not None:
            words += [long_names[0], str(value)]
    return shlex.join([*words, *changes])


class RunArgs(NamedTuple):
    """``--channel``, ``--run``, ``--yes`` (and ``--json``, which ``--run`` excludes)."""

    channel: str
    run: bool
    assume_yes: bool
    json_output: bool


class FactOverridesArgs(NamedTuple):
    """The flags that override detected facts, as given."""

    os_name: str | None
    arch: str | None
    python: str | None
    accelerator: str | None
    driver: str | None
    compute_capability: list[str] | None


def _install_cmd(
    flags: FactOverridesArgs,
    torch: str | None,
    variant: str | None,
    manager: str,
    packages: str | None,
    explain: bool,
    run_args: RunArgs,
) -> CommandResult:
    from dlready.install import run as install_run
    from dlready.install.errors import PlanError
    from dlready.install.facts import FactOverrides, validate_overrides
    from dlready.install.plan import InstallWishes
    from dlready.install.table import CompatTableError, load_compat_table
    from dlready.result import CommandError, CommandResult, Problem, usage_error

    if run_args.run and run_args.json_output:
        raise usage_error("--run cannot be combined with --json", "drop --json")
    if run_args.assume_yes and not run_args.run:
        raise usage_error("--yes only applies to --run", "add --run")
    python = flags.python
    target: TargetInterpreter | None = None
    try:
        interpreter = python is not None and install_run.is_interpreter(python)
        if interpreter and python is not None:
            target = install_run.read_interpreter(python)
        elif run_args.run:
            target = install_run.this_interpreter()
        overrides = validate_overrides(
            FactOverrides(
                os=flags.os_name,
                arch=flags.arch,
                python=target.python if interpreter and target else python,
                accelerator=flags.accelerator,
                driver=flags.driver,
                compute_capabilities=tuple(flags.compute_capability or ()),
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
                target, overrides, python is not None and not interpreter, run_args.run
            )
        facts = _facts(overrides)
        if target is not None:
            facts = install_run.facts_for(facts, target)
        plan = _plan(facts, wishes, run_args.channel)
        if target is not None and target.given and not run_args.run:
            plan = install_run.for_interpreter(plan, target)
        table = load_compat_table()
    except PlanError as exc:
        words, flag_choices = exc.choices()
        commands = tuple(
            choice.command(command_with(choice.flags, choice.drop)) for choice in flag_choices
        )
        if commands:  # text: the commands follow on lines of their own; JSON: in the hint too
            words.append(_run_these(commands, whole=run_args.json_output))
        raise CommandError(
            ExitCode.USAGE,
            Problem(
                "impossible_request",
                exc.message,
                "; or ".join(words) or None,
                detail={"nearest_valid": exc.nearest_valid},
                more=(*commands, *(f"# {line}" for line in exc.hints)),
            ),
        ) from None
    except CompatTableError as exc:
        raise CommandError(
            ExitCode.COULD_NOT_RUN, Problem("bad_package_data", str(exc), "reinstall dlready")
        ) from None

    if run_args.run and target is not None:
        _run_plan(plan, table, target, run_args.assume_yes)

    def text(streams: Streams) -> None:
        from dlready.render.install_render import render_plan

        render_plan(plan, table, explain, streams)

    data = plan.to_jsonable()
    data["channel"] = run_args.channel.strip().lower()
    return CommandResult(
        COMMAND,
        ExitCode.OK,
        data=data,
        warnings=tuple(Problem("plan_warning", warning) for warning in plan.warnings),
        text=text,
    )


def _run_these(commands: tuple[str, ...], whole: bool) -> str:
    """The hint's lead-in to the suggested commands. Printed, they follow on lines of their own;
    for ``--json`` the hint stands alone, with the commands in it."""
    if len(commands) == 1:
        return f"run this: {commands[0]}" if whole else "run this:"
    return f"run one of these: {'; or '.join(commands)}" if whole else "run one of these:"


def _plan(facts: MachineFacts, wishes: InstallWishes, channel: str) -> InstallPlan:
    """The stable planner, or the pre-release channel's (``--channel test|nightly``)."""
    from dlready.install.channels import plan_channel, validate_channel
    from dlready.install.planner import plan_install

    name = validate_channel(channel)
    return plan_install(facts, wishes) if name == "stable" else plan_channel(facts, wishes, name)


def _run_plan(
    plan: InstallPlan, table: CompatTable, target: TargetInterpreter, assume_yes: bool
) -> NoReturn:
    """``--run``: print the command, ask, run it with the terminal's streams, and end with its
    exit status (docs/install-cmd.md). Refusals raise :class:`CommandError`."""
    import sys

    from dlready import output
    from dlready.install import run as install_run
    from dlready.probes.tools_gateway import command_line
    from dlready.render.install_render import short_lines
    from dlready.result import CommandError, Problem

    argv = install_run.run_argv(plan, target)
    with output.stdout_guard():
        sys.stdout.write(command_line(argv) + "\n")
    output.stderr_line("\n".join(short_lines(plan, table)))
    confirmed = install_run.confirm(assume_yes, sys.stdin, sys.stderr)
    if not confirmed:
        raise CommandError(
            ExitCode.NOT_READY,
            Problem("declined", "not installed: you answered no", "--yes installs without asking"),
        )
    status = install_run.execute(argv)
    if status == 0:
        output.stderr_line(
            f"# installed into {target.executable}; {install_run.verify_hint(target)}"
        )
    else:
        output.stderr_line(f"# the install failed (exit {status}); its output is above")
        if plan.manager == "pip":
            output.stderr_line(
                "# if it said 'No module named pip' (uv-made environments have none): "
                f"{command_line([target.executable, '-m', 'ensurepip'])}, or --manager uv"
            )
    raise SystemExit(status)


_DETECTION_HINT = (
    "pass --os, --arch, --python and --accelerator (and --driver for cuda) to plan without "
    "detection"
)


def _facts(overrides: FactOverrides) -> MachineFacts:
    """Detected facts with the flags applied; no probing when the flags say everything."""
    from dlready.install.facts import (
        apply_overrides,
        facts_from_overrides,
        facts_from_snapshot,
        with_kernel_module,
    )
    from dlready.result import CommandError, Problem

    if overrides.covers_detection:
        return facts_from_overrides(overrides)
    try:
        from dlready.probes.collect import collect_snapshot
    except ImportError as exc:
        raise CommandError(
            ExitCode.COULD_NOT_RUN,
            Problem(
                "detection_failed", f"hardware detection is unavailable ({exc})", _DETECTION_HINT
            ),
        ) from None
    try:
        snapshot = collect_snapshot()
    except Exception as exc:  # noqa: BLE001  # any probe failure becomes one error line
        raise CommandError(
            ExitCode.COULD_NOT_RUN,
            Problem(
                "detection_failed",
                f"hardware detection failed: {type(exc).__name__}: {exc}",
                _DETECTION_HINT,
            ),
        ) from None
    facts = facts_from_snapshot(snapshot)
    if not facts.driver_version.known:
        # NVML gave no driver: the loaded kernel module may still say which one runs.
        from dlready.probes.nvidia_module import probe_kernel_module

        module = probe_kernel_module()
        facts = with_kernel_module(facts, module.value if module.ok else None)
    return apply_overrides(facts, overrides)
