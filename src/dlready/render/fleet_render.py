"""The fleet report for people: a plain-text table and Markdown (pure: reads the report only).

Plain text rather than rich tables: a fleet of 8,000 GPUs has 8,000 rows, and the table must
render in well under a second.
"""

from __future__ import annotations

from collections.abc import Sequence

from dlready.fleet.report import STEP_TITLES, CollectiveSpeed, FleetReport, RankRecord
from dlready.render.text import counted, format_number, format_percent, printable, wrap_line
from dlready.words import launcher_words

_COLUMNS = (
    "node",
    "rank",
    "host",
    "device",
    "driver",
    "torch",
    "status",
    "TFLOP/s",
    "vs median",
    "notes",
)


def _number(value: float | None) -> str:
    return "-" if value is None else format_number(value)


def _percent(value: float | None) -> str:
    return "-" if value is None else format_percent(value)


def _headline(report: FleetReport) -> str:
    """``2 ranks on 1 node, backend gloo, launched by torchrun``."""
    where = f" on {counted(len(report.nodes), 'node')}" if report.nodes else ", none heard from"
    return (
        f"{counted(report.world_size, 'rank')}{where}, "
        f"backend {report.backend or 'not started'}, "
        f"{launcher_words(report.launcher)}"
    )


def _step_text(status: str, seconds: float | None, message: str) -> str:
    """``ok (1.20 s)``, ``skipped: one node: ...``, ``failed (3.00 s): rank 2: ...``."""
    if status == "skipped":
        return f"skipped: {message}" if message else "skipped"
    took = "" if seconds is None else f" ({seconds:.2f} s)"
    return f"{status.replace('_', ' ')}{took}" + (f": {message}" if message else "")


def _expectation_text(scope: str, gbps: float | None, percent: float | None, source: str) -> str:
    if gbps is None:
        return f"{scope} link: no expected speed ({source})"
    reached = "" if percent is None else f", reached {format_percent(percent)}"
    return f"{scope} link: expected {format_number(gbps)} GB/s{reached} ({source})"


def _size(size_bytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= scale and size_bytes % scale == 0:
            return f"{size_bytes // scale} {unit}"
    return f"{size_bytes} B"


def _rank_rows(report: FleetReport) -> list[tuple[str, ...]]:
    drivers = {n.node: n.driver_version for n in report.nodes}
    rows: list[tuple[str, ...]] = []
    for rank in report.ranks:
        device = rank.device or "-"
        if rank.device_name:
            device = f"{device} {rank.device_name}"
        rows.append(
            (
                "-" if rank.node < 0 else str(rank.node),
                str(rank.rank),
                rank.hostname,
                device,
                drivers.get(rank.node) or "-",
                rank.torch_version or "-",
                rank.status,
                _number(rank.matmul_tflops),
                _percent(rank.matmul_percent_of_median),
                "; ".join(rank.notes),
            )
        )
    return rows


def _aligned(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row[:-1]):
            widths[i] = max(widths[i], len(cell))

    def line(cells: Sequence[str]) -> str:
        parts = [cell.ljust(widths[i]) for i, cell in enumerate(cells[:-1])]
        return "  ".join([*parts, cells[-1]]).rstrip()

    return [line(header), *(line(row) for row in rows)]


def _largest(speeds: Sequence[CollectiveSpeed]) -> list[CollectiveSpeed]:
    """Per group, the figure of the largest message (the one that shows the link)."""
    best: dict[tuple[str, str], CollectiveSpeed] = {}
    for speed in speeds:
        key = (speed.scope, speed.group)
        if key not in best or speed.size_bytes > best[key].size_bytes:
            best[key] = speed
    return list(best.values())


_SHARED_COLUMNS = {"driver": "driver {}", "torch": "torch {}"}
"""Columns said once, above the table, when every rank has the same value."""


def _fits(lines: Sequence[str], width: int | None) -> bool:
    return width is None or all(len(line) <= width for line in lines)


def _rank_section(report: FleetReport, width: int | None) -> list[str]:
    """The rank table, with what every rank shares said once above it; one line per rank
    when the table is wider than the terminal."""
    header = list(_COLUMNS)
    rows = [list(row) for row in _rank_rows(report)]
    shared: list[str] = []
    names = {rank.device_name for rank in report.ranks}
    if len(rows) > 1 and len(names) == 1 and None not in names:
        shared.append(printable(str(next(iter(names)))))
        device = header.index("device")
        for row, rank in zip(rows, report.ranks, strict=True):
            row[device] = rank.device or "-"
    for column, words in _SHARED_COLUMNS.items():
        index = header.index(column)
        values = {row[index] for row in rows}
        if len(rows) > 1 and len(values) == 1 and "-" not in values:
            shared.append(words.format(values.pop()))
            del header[index]
            for row in rows:
                del row[index]
    lines = [f"Every rank: {', '.join(shared)}"] if shared else []
    table = _aligned(header, rows)
    if _fits(table, width):
        return [*lines, *table]
    without_notes = _aligned(header[:-1], [row[:-1] for row in rows])
    if _fits(without_notes, width):  # the notes under the table, one line per rank that has one
        rank_column = header.index("rank")
        notes = [f"  rank {row[rank_column]}: {row[-1]}" for row in rows if row[-1]]
        return [*lines, *without_notes, *(["Notes on ranks", *notes] if notes else [])]
    return [*lines, *(_rank_line(header, row) for row in rows)]


def _rank_line(header: Sequence[str], row: Sequence[str]) -> str:
    """``rank 11: node 1, h100-0001, cuda:3, ok, 600 TFLOP/s, 76 % of the median; notes``."""
    cell = dict(zip(header, row, strict=True))
    where = ", ".join(
        cell[name] for name in ("node", "host", "device", "driver", "torch") if name in cell
    )
    speed = "" if cell["TFLOP/s"] == "-" else f", {cell['TFLOP/s']} TFLOP/s"
    if cell["vs median"] != "-":
        speed += f", {cell['vs median']} of the median"
    notes = f"; {cell['notes']}" if cell["notes"] else ""
    node = "node " if cell["node"] != "-" else ""
    return f"  rank {cell['rank']}: {node}{where}, {cell['status']}{speed}{notes}"


def render_text(report: FleetReport, width: int | None = None) -> str:
    """The terminal report: steps, fleet table, collective figures, findings.

    ``width``: the terminal's columns. What every rank shares (GPU model, driver, torch) is
    said once above the table, and a table still wider than the terminal becomes one line
    per rank (or per group), so that nothing wraps mid-cell. None: never narrowed.
    """
    out: list[str] = []
    out.append(f"dlready fleet: {_headline(report)}")
    out.append("")
    out.append("Steps")
    out.extend(
        f"  {STEP_TITLES.get(step.name, step.name)}: "
        + _step_text(step.status, step.seconds, step.message)
        for step in report.steps
    )
    out.append("")
    out.extend(_rank_section(report, width))
    if report.collective_checks:
        out.append("")
        out.append("Collective correctness")
        out.extend(f"  {c.op}: {c.status}: {c.message}" for c in report.collective_checks)
    if report.collective_speeds:
        out.append("")
        out.append(
            "all_reduce speed (largest message; algbw = size / time, busbw = algbw x 2(n-1)/n)"
        )
        largest = _largest(report.collective_speeds)
        rows = [
            (
                s.scope,
                s.group,
                str(len(s.ranks)),
                _size(s.size_bytes),
                f"{format_number(s.time_s * 1e3)} ms",
                format_number(s.algbw_gbps),
                format_number(s.busbw_gbps),
            )
            for s in largest
        ]
        table = [
            "  " + line
            for line in _aligned(
                ("scope", "group", "ranks", "size", "time", "algbw GB/s", "busbw GB/s"), rows
            )
        ]
        if _fits(table, width):
            out.extend(table)
        else:
            out.extend(
                f"  {s.scope}, {s.group}: {counted(len(s.ranks), 'rank')}, {_size(s.size_bytes)}, "
                f"{format_number(s.time_s * 1e3)} ms: algbw {format_number(s.algbw_gbps)} "
                f"GB/s, busbw {format_number(s.busbw_gbps)} GB/s"
                for s in largest
            )
        out.extend(
            "  " + _expectation_text(e.scope, e.gbps, e.percent, e.source)
            for e in report.link_expectations
        )
    if report.point_to_point:
        out.append("")
        out.append("Point to point between nodes")
        out.extend(
            f"  rank {leg.src_rank} (node {leg.src_node}, {leg.src_host}) -> rank {leg.dst_rank} "
            f"(node {leg.dst_node}, {leg.dst_host}): {_number(leg.gbps)} GB/s"
            + (
                ""
                if leg.percent_of_median is None
                else f" ({format_percent(leg.percent_of_median)} of the median)"
            )
            for leg in report.point_to_point
        )
    if report.notes:
        out.append("")
        out.append("Notes")
        out.extend(f"  - {note}" for note in report.notes)
    out.append("")
    out.extend(_findings_text(report))
    # Host and device names come from other machines: never let one repaint the terminal.
    lines = [piece for line in out for piece in wrap_line(printable(line), width)]
    return "\n".join(lines) + "\n"


def _findings_text(report: FleetReport) -> list[str]:
    if not report.findings:
        return ["Ready: every rank answered, matched its peers and computed correctly."]
    out = [f"Findings ({len(report.findings)})"]
    for finding in report.findings:
        out.append(f"  - {finding.message}")
        out.append(f"    fix: {finding.fix}")
    return out


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|") or "-"


def render_markdown(report: FleetReport) -> str:
    """The report as Markdown, to paste into a ticket."""
    out = [
        "## dlready fleet",
        "",
        f"{_headline(report)}.",
        "",
        "| step | status | seconds | note |",
        "|---|---|---|---|",
    ]
    out.extend(
        f"| {STEP_TITLES.get(s.name, s.name)} | {s.status.replace('_', ' ')} | "
        f"{'-' if s.seconds is None else f'{s.seconds:.2f}'} | {_md_cell(s.message)} |"
        for s in report.steps
    )
    out += ["", "| " + " | ".join(_COLUMNS) + " |", "|" + "---|" * len(_COLUMNS)]
    out.extend("| " + " | ".join(_md_cell(c) for c in row) + " |" for row in _rank_rows(report))
    if report.collective_speeds:
        out += [
            "",
            "| scope | group | ranks | size | algbw GB/s | busbw GB/s |",
            "|---|---|---|---|---|---|",
        ]
        out.extend(
            f"| {s.scope} | {_md_cell(s.group)} | {len(s.ranks)} | {_size(s.size_bytes)} | "
            f"{format_number(s.algbw_gbps)} | {format_number(s.busbw_gbps)} |"
            for s in _largest(report.collective_speeds)
        )
    if report.notes:
        out += ["", "### Notes", ""]
        out.extend(f"- {note}" for note in report.notes)
    out += ["", "### Findings", ""]
    if not report.findings:
        out.append("None: every rank answered, matched its peers and computed correctly.")
    for finding in report.findings:
        out.append(f"- {finding.message}")
        out.append(f"  - fix: {finding.fix}")
    return "\n".join(printable(line) for line in out) + "\n"


def status_counts(ranks: Sequence[RankRecord]) -> dict[str, int]:
    """How many ranks in each status."""
    counts: dict[str, int] = {}
    for rank in ranks:
        counts[rank.status] = counts.get(rank.status, 0) + 1
    return counts
