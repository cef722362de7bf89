"""``dlready check``: probe the machine and judge it against a spec profile."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dlready.exitcodes import ExitCode
from dlready.model import MachineSnapshot
from dlready.spec.bar import FailOn

if TYPE_CHECKING:
    from dlready.result import CommandResult, Problem, Streams
    from dlready.spec.build import BuildPart
    from dlready.spec.verdict import CheckReport, Failure

_ENV_PSU = "DLREADY_PSU_WATTS"


def build_report(
    snapshot: MachineSnapshot,
    profile_name: str | None,
    spec_file: Path | None,
    fail_on: FailOn = FailOn.MINIMUM,
) -> tuple[CheckReport, BuildPart]:
    """Load the profile and judge the snapshot; the build tools part is folded into the report
    when it counts (``[build] required`` or ``--fail-on build``).

    Raises:
        SpecError: when the profile or spec file is invalid.
    """
    from msgspec.structs import replace

    from dlready.install.torch_fit import find_software
    from dlready.spec.build import InstalledTorchFit, fold_build, judge_build_part
    from dlready.spec.profile import DEFAULT_PROFILE, load_builtin_profile, load_profile_file
    from dlready.spec.verdict import judge

    profile = (
        load_profile_file(spec_file)
        if spec_file
        else load_builtin_profile(profile_name or DEFAULT_PROFILE)
    )
    software = find_software(snapshot)
    finding = software.torch_fit
    report = judge(snapshot, profile, finding, software.command_line)
    report = replace(report, install_alternatives=software.alternatives)
    if software.note and not _said_already(software.note, snapshot, report):
        report = replace(report, notes=(*report.notes, software.note))
    torch_fit = InstalledTorchFit(
        mismatch=finding is not None and finding.status == "mismatch",
        recommended_variant=software.variant,
    )
    build = judge_build_part(snapshot, profile.build, fail_on, torch_fit)
    return fold_build(report, build), build


def _said_already(note: str, snapshot: MachineSnapshot, report: CheckReport) -> bool:
    """Whether a judged part already says why no install command fits: the PyTorch part
    (its problems end with it) or the GPU part (a broken driver, with its fix)."""
    why = note.split(": ", 1)[-1]
    said = " ".join(c.advice for c in report.components)
    if why.split(" (hint: ")[0] in said:
        return True
    from dlready.model import GpuVendor

    stack = snapshot.stack(GpuVendor.NVIDIA)
    return bool(stack and stack.reason and stack.reason in why and stack.reason in said)


def check_command(
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile", "-p", help="Built-in spec profile: book-2020 (default) or current."
        ),
    ] = None,
    spec: Annotated[
        Path | None,
        typer.Option(
            "--spec", help="Your own spec table (TOML, same keys as the built-in profiles)."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the versioned JSON report (docs/json-schema.md).")
    ] = False,
    as_markdown: Annotated[
        bool, typer.Option("--markdown", help="Print a Markdown report to paste into a bug report.")
    ] = False,
    snapshot_file: Annotated[
        Path | None,
        typer.Option(
            "--snapshot",
            help="Re-judge a saved `check --json` report (another machine, another profile) "
            "without probing.",
        ),
    ] = None,
    psu_watts: Annotated[
        float | None,
        typer.Option(
            "--psu-watts",
            help=f"Your power supply's rating in watts (or set {_ENV_PSU}); software cannot read it.",
        ),
    ] = None,
    fail_on: Annotated[
        FailOn,
        typer.Option(
            "--fail-on",
            help="Exit 1 when something is below this bar: minimum (default), recommended, or "
            "build (minimum, with the build tools for compiling extensions counted).",
            case_sensitive=False,
        ),
    ] = FailOn.MINIMUM,
    strict: Annotated[
        bool,
        typer.Option(
            "--strict",
            help="Also exit 1 when anything could not be judged (a part, or one criterion).",
        ),
    ] = False,
    list_profiles: Annotated[
        bool, typer.Option("--list-profiles", help="List the built-in profiles and exit.")
    ] = False,
) -> None:
    """Probe CPU, RAM, GPUs, power budget and cooling, and judge them against a spec profile.

    What could not be measured is "not judged": it neither passes nor hides what was
    measured, and fails only with --strict (or when nothing at all could be judged).
    """
    from dlready.result import run

    run(
        "check",
        lambda: (
            _list_profiles()
            if list_profiles
            else _check(profile, spec, snapshot_file, psu_watts, fail_on, strict)
        ),
        as_json=as_json,
        as_markdown=as_markdown,
    )


def _check(
    profile: str | None,
    spec: Path | None,
    snapshot_file: Path | None,
    psu_watts: float | None,
    fail_on: FailOn,
    strict: bool,
) -> CommandResult:
    from dlready.result import CommandError, Problem, usage_error
    from dlready.spec.profile import SpecError

    if profile and spec:
        raise usage_error("--profile and --spec cannot be combined")
    if snapshot_file is not None:
        from dlready.snapshot_file import SnapshotFileError, load_snapshot_file

        if psu_watts is not None:
            raise usage_error(
                "--psu-watts cannot change a saved snapshot; re-run `dlready check --psu-watts` "
                "on that machine"
            )
        try:
            snapshot = load_snapshot_file(snapshot_file)
        except SnapshotFileError as exc:
            raise CommandError(ExitCode.USAGE, Problem("bad_snapshot", str(exc))) from None
    else:
        snapshot = _probe(psu_watts)
    try:
        report, build = build_report(snapshot, profile, spec, fail_on)
    except SpecError as exc:
        raise CommandError(ExitCode.USAGE, Problem("bad_spec", str(exc))) from None
    origin = str(snapshot_file) if snapshot_file is not None else None
    return _result(report, build, snapshot, fail_on, strict, origin)


def _import_judge() -> None:
    """Import what judging needs (about 7 ms: the judge, the planner and its table) while the
    probes run."""
    import dlready.install.judge
    import dlready.render.check_json
    import dlready.spec.build
    import dlready.spec.profile
    import dlready.spec.verdict  # noqa: F401


def _probe(psu_watts: float | None) -> MachineSnapshot:
    from dlready import head_start
    from dlready.result import CommandError, Problem, usage_error

    snapshot = head_start.take(psu_watts, meanwhile=_import_judge)
    if snapshot is not None:
        return snapshot
    try:
        return head_start.probe_this_machine(psu_watts, meanwhile=_import_judge)
    except ValueError as exc:  # bad DLREADY_PSU_WATTS
        raise usage_error(str(exc)) from None
    except Exception as exc:  # noqa: BLE001  # never a traceback: report and exit 3
        raise CommandError(
            ExitCode.COULD_NOT_RUN,
            Problem(
                "probe_crashed",
                f"probing this machine failed: {type(exc).__name__}: {exc}",
                "please report this with `dlready check --markdown` output from a working machine",
            ),
        ) from None


def _result(
    report: CheckReport,
    build: BuildPart,
    snapshot: MachineSnapshot,
    fail_on: FailOn,
    strict: bool,
    snapshot_origin: str | None = None,
) -> CommandResult:
    from dlready.render.check_json import build_jsonable, report_jsonable
    from dlready.result import CommandResult, Problem

    def text(streams: Streams) -> None:
        from dlready.render.check_render import render_build_part, render_table

        render_table(
            report, snapshot, streams.console, snapshot_origin, fail_on=fail_on, strict=strict
        )
        render_build_part(build, streams.console)

    def markdown(streams: Streams) -> None:
        from dlready.render.check_render import render_build_markdown, render_markdown

        streams.write(
            render_markdown(report, snapshot, snapshot_origin, fail_on=fail_on, strict=strict)
            + render_build_markdown(build)
        )

    data = report_jsonable(report, snapshot, str(fail_on), strict)
    data["build"] = build_jsonable(build)

    failures = report.failures(fail_on, strict)
    exit_code = ExitCode.NOT_READY if failures else ExitCode.OK
    return CommandResult(
        "check",
        exit_code,
        data=data,
        status=str(report.status),
        # Each reason behind exit 1; the text report says them on its Overall line, and the
        # emit path prints errors on stderr only from exit 2 on, so nothing is said twice.
        errors=tuple(_failure_problem(failure, fail_on) for failure in failures),
        warnings=tuple(
            Problem("probe_failed", error.message, detail={"probe": error.probe})
            for error in snapshot.errors
        ),
        text=text,
        markdown=markdown,
    )


def _failure_problem(failure: Failure, fail_on: FailOn) -> Problem:
    """One ``errors[]`` entry for a reason behind exit 1."""
    from dlready.result import Problem
    from dlready.spec.verdict import criterion_label

    detail: dict[str, Any] = {"part": failure.part, "status": str(failure.status)}
    if failure.code == "below_bar":
        bar = "recommended" if fail_on is FailOn.RECOMMENDED else "minimum"
        message = f"{failure.part} is below the {bar} bar (--fail-on {fail_on})"
    elif failure.code == "not_judged":
        detail["criteria"] = list(failure.criteria)
        what = ", ".join(criterion_label(name) for name in failure.criteria)
        message = f"{failure.part}: {what or 'the part'} could not be judged (--strict)"
    else:
        message = "no part of this machine could be judged"
    return Problem(failure.code, message, detail=detail)


def _list_profiles() -> CommandResult:
    from dlready.result import CommandResult
    from dlready.spec.profile import DEFAULT_PROFILE, builtin_profile_names, load_builtin_profile

    profiles = [
        {
            "name": name,
            "title": load_builtin_profile(name).title,
            "default": name == DEFAULT_PROFILE,
        }
        for name in builtin_profile_names()
    ]

    def text(streams: Streams) -> None:
        for entry in profiles:
            marker = " (default)" if entry["default"] else ""
            streams.write(f"{entry['name']}{marker}: {entry['title']}\n")

    return CommandResult("check", ExitCode.OK, data={"profiles": profiles}, text=text)
