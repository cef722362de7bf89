"""``dlready diff A.json B.json``: what changed between two saved check or fleet reports."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dlready.exitcodes import ExitCode

if TYPE_CHECKING:
    from dlready.report_diff import Difference


def diff_command(
    before: Annotated[Path, typer.Argument(help="The first saved report (check or fleet --json).")],
    after: Annotated[Path, typer.Argument(help="The second saved report of the same command.")],
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the differences as versioned JSON.")
    ] = False,
    include_volatile: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Also compare values that change on every run (time stamps, durations, free "
            "memory, temperatures, power draw).",
        ),
    ] = False,
) -> None:
    """Compare two saved `check --json` or `fleet --json` reports field by field.

    Two nodes, or one node before and after an upgrade: what changed, what appeared or
    disappeared, what could not be compared (read on one side only).
    Exit 0: the same; 1: different; 2: bad input (unreadable, not a report, two kinds).
    """
    from dlready.output import error_line
    from dlready.report_diff import ReportError, diff_reports, load_report

    try:
        documents = load_report(before), load_report(after)
        differences = diff_reports(*documents, include_volatile=include_volatile)
    except ReportError as exc:
        error_line(str(exc))
        raise typer.Exit(int(ExitCode.USAGE)) from None
    code = ExitCode.NOT_READY if differences else ExitCode.OK
    _emit(before, after, differences, as_json, code)
    raise typer.Exit(int(code))


def _emit(
    before: Path, after: Path, differences: list[Difference], as_json: bool, code: ExitCode
) -> None:
    from dlready.output import envelope, print_json, stdout_guard
    from dlready.report_diff import short

    counts: dict[str, int] = {}
    for difference in differences:
        counts[difference.kind] = counts.get(difference.kind, 0) + 1
    if as_json:
        data = {
            "before": str(before),
            "after": str(after),
            "counts": counts,
            "differences": [
                {
                    "path": d.path,
                    "kind": d.kind,
                    "before": d.before,
                    "after": d.after,
                    "reason": d.reason,
                }
                for d in differences
            ],
        }
        print_json(envelope("diff", code, data, status="same" if not differences else "different"))
        return
    lines = []
    for d in differences:
        if d.kind == "changed":
            lines.append(f"changed         {d.path}: {short(d.before)} -> {short(d.after)}")
        elif d.kind == "appeared":
            lines.append(f"appeared        {d.path}: {short(d.after)}")
        elif d.kind == "disappeared":
            lines.append(f"disappeared     {d.path}: {short(d.before)}")
        else:
            lines.append(f"not comparable  {d.path}: {d.reason}")
    if differences:
        summary = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(counts.items()))
        lines.append(f"{before} and {after} differ: {summary}")
    else:
        lines.append(f"{before} and {after} are the same (measured speeds within 10 %)")
    with stdout_guard():
        sys.stdout.write("\n".join(lines) + "\n")
