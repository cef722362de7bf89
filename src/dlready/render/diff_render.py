"""``dlready diff``'s human output: one line per difference, then the verdict."""

from __future__ import annotations

import math
from pathlib import Path

from dlready.render.text import format_number, printable
from dlready.report_diff import Difference, short


def diff_lines(
    before: Path, after: Path, differences: list[Difference], counts: dict[str, int]
) -> list[str]:
    """One line per difference, then the verdict line."""

    def shown(value: object) -> str:
        # A number people read goes through the one number format; the rest as JSON.
        if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            return format_number(value)
        return printable(short(value))

    lines = []
    for d in differences:
        path = printable(d.path)
        if d.kind == "changed":
            lines.append(f"changed         {path}: {shown(d.before)} -> {shown(d.after)}")
        elif d.kind == "appeared":
            lines.append(f"appeared        {path}: {shown(d.after)}")
        elif d.kind == "disappeared":
            lines.append(f"disappeared     {path}: {shown(d.before)}")
        else:
            # What was read on the other side is shown, never hidden by the side that failed.
            read = [
                f"{side}: {shown(value)}"
                for side, value in (("before", d.before), ("after", d.after))
                if value is not None
            ]
            lines.append(f"not comparable  {path}: {'; '.join([printable(d.reason), *read])}")
    if differences:
        summary = ", ".join(f"{n} {kind.replace('_', ' ')}" for kind, n in sorted(counts.items()))
        lines.append(f"{before} and {after} differ: {summary}")
    else:
        lines.append(f"{before} and {after} are the same (measured speeds within 10 %)")
    return lines
