"""``dlready diff A.json B.json``: what changed between two saved check or fleet reports."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from dlready.exitcodes import ExitCode

if TYPE_CHECKING:
    from dlready.result import CommandResult, Streams


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
    """
    from dlready import result

    result.run("diff", lambda: _diff(before, after, include_volatile), as_json=as_json)


def _diff(before: Path, after: Path, include_volatile: bool) -> CommandResult:
    from dlready.report_diff import ReportError, diff_reports, load_report
    from dlready.result import CommandError, CommandResult, Problem

    try:
        documents = load_report(before), load_report(after)
        differences = diff_reports(*documents, include_volatile=include_volatile)
    except ReportError as exc:
        raise CommandError(ExitCode.USAGE, Problem("bad_input", str(exc))) from None
    counts: dict[str, int] = {}
    for difference in differences:
        counts[difference.kind] = counts.get(difference.kind, 0) + 1
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

    def text(streams: Streams) -> None:
        from dlready.render.diff_render import diff_lines
        from dlready.render.text import wrap_line

        # Wrapped at words on a terminal; a pipe or a file gets one whole line per difference.
        console = streams.console
        width = console.width if console.is_terminal else None
        lines = diff_lines(before, after, differences, counts)
        streams.write("\n".join(piece for line in lines for piece in wrap_line(line, width)) + "\n")

    return CommandResult(
        "diff",
        ExitCode.NOT_READY if differences else ExitCode.OK,
        data=data,
        status="different" if differences else "same",
        text=text,
    )
