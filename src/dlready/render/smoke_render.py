"""Render a :class:`SmokeReport`: the summary table on stdout and the ``--json`` ``data``.

No torch. Colour comes from rich, which leaves it out off a terminal and under ``NO_COLOR``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from rich import box
from rich.console import Console, ConsoleOptions, RenderableType, RenderResult
from rich.markup import escape
from rich.segment import Segment
from rich.table import Table

from dlready.model import to_jsonable
from dlready.render.text import format_number, print_prose, printable
from dlready.smoke.report import CheckResult, CheckStatus, DeviceReport, SmokeReport
from dlready.words import arch_support_words

_STYLE = {
    CheckStatus.PASS: "green",
    CheckStatus.WARN: "yellow",
    CheckStatus.FAIL: "bold red",
    CheckStatus.SKIPPED: "dim",
    CheckStatus.TIMEOUT: "bold red",
}


def report_data(report: SmokeReport, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The ``data`` object of ``dlready smoke --json`` (schema in docs/smoke.md); ``environ``
    gives the torchrun rank (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``) when there is one."""
    data: dict[str, Any] = to_jsonable(report)
    data["counts"] = report.counts
    data["rank"] = torchrun_rank(environ or {})
    return data


def torchrun_rank(environ: Mapping[str, str]) -> dict[str, int] | None:
    """``{"rank": 1, "world_size": 4, "local_rank": 1}`` under torchrun, else None."""
    names = ("RANK", "WORLD_SIZE", "LOCAL_RANK")
    values = {name.lower(): environ.get(name, "") for name in names}
    if not all(value.isdigit() for value in values.values()):
        return None
    return {key: int(value) for key, value in values.items()}


_format_number = format_number  # one number format for every human renderer


def expected_text(result: CheckResult) -> str:
    """``95 % of 989.5 TFLOP/s`` / ``expected: unknown`` / empty for non-speed checks."""
    expected = result.expected
    if expected is None or result.status is CheckStatus.SKIPPED:
        return ""
    if expected.value is None:
        return "expected: unknown"
    if expected.percent is None:
        return f"expected {_format_number(expected.value)} {expected.unit}"
    return f"{expected.percent:.0f} % of {_format_number(expected.value)} {expected.unit}"


def device_words(device: DeviceReport) -> str:
    """The device a check ran on, in words: ``auto`` before the device was known is this
    machine (the device check never said which device it picked)."""
    if device.device:
        return device.device
    return "this machine" if device.requested == "auto" else device.requested


def device_heading(report: SmokeReport, device: DeviceReport) -> str:
    """One line naming the device and the build that ran on it."""
    info = device.info
    words = device_words(device)
    parts = [f"device {words}" if device.device or device.requested != "auto" else words]
    if info.get("name"):
        parts.append(str(info["name"]))
    if info.get("compute_capability"):
        arch = info.get("arch") or ""
        in_build = info.get("arch_in_build")
        parts.append(
            f"compute capability {info['compute_capability']} "
            f"({arch_support_words(str(arch), str(in_build))})"
        )
    if info.get("total_memory_bytes"):
        parts.append(f"{int(info['total_memory_bytes']) / 2**30:.1f} GiB")
    return " · ".join(parts)


def cudnn_version_text(version: int) -> str:
    """``torch.backends.cudnn.version()`` as people write it: 91900 -> 9.19.0, 8907 -> 8.9.7.

    cuDNN 9 encodes MAJOR*10000 + MINOR*100 + PATCH, cuDNN 8 and older MAJOR*1000 + MINOR*100 +
    PATCH (``CUDNN_VERSION`` in cudnn_version.h).
    """
    major_unit = 10000 if version >= 90000 else 1000
    major, rest = divmod(version, major_unit)
    return f"{major}.{rest // 100}.{rest % 100}"


def torch_heading(report: SmokeReport) -> str:
    """One line with the torch build."""
    torch = report.torch
    if torch is None:
        return "torch: not loaded"
    if torch.cuda:
        build = f"CUDA {torch.cuda}"
    elif torch.hip:
        build = f"ROCm/HIP {torch.hip}"
    else:
        build = "CPU-only build"
    cudnn = f" · cuDNN {cudnn_version_text(torch.cudnn)}" if torch.cudnn else ""
    return f"torch {torch.version} ({build}){cudnn} · import {torch.import_s:.1f} s"


def _rows(checks: tuple[CheckResult, ...]) -> list[tuple[str, CheckResult, int]]:
    """Rows of the table: runs of 3+ checks skipped for the same reason share one row."""
    rows: list[tuple[str, CheckResult, int]] = []
    index = 0
    while index < len(checks):
        result = checks[index]
        end = index + 1
        if result.status is CheckStatus.SKIPPED:
            while (
                end < len(checks)
                and checks[end].status is CheckStatus.SKIPPED
                and checks[end].message == result.message
            ):
                end += 1
        if end - index >= 3:
            label = f"{result.name} … {checks[end - 1].name}"
            rows.append((label, result, end - index))
        else:
            rows.extend((check.name, check, 1) for check in checks[index:end])
        index = end
    return rows


_NARROW_COLUMNS = 100
"""Below this the result column would be folded into a narrow strip: one line per check."""


def _lines(device: DeviceReport) -> list[tuple[str, str, str]]:
    """The table's rows as lines for narrow terminals and pipes: (styled head, plain head,
    the rest), for :func:`print_prose`."""
    lines = []
    for label, result, count in _rows(device.checks):
        style = _STYLE[result.status]
        expected = expected_text(result)
        message = f"{result.message} · {expected}" if expected else result.message
        if count > 1:
            message = f"{count} checks: {message}"
        rest = printable(f"{label} ({result.duration_s:.2f} s): {message}")
        lines.append((f"[{style}]{result.status}[/] ", f"{result.status} ", rest))
    return lines


def _table(device: DeviceReport) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    table.add_column("check", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("time", justify="right", no_wrap=True)
    table.add_column("result")
    for label, result, count in _rows(device.checks):
        style = _STYLE[result.status]
        expected = expected_text(result)
        message = f"{result.message} · {expected}" if expected else result.message
        if count > 1:
            message = f"{count} checks: {message}"
        table.add_row(
            escape(printable(label)),
            f"[{style}]{result.status}[/]",
            f"{result.duration_s:.2f} s",
            escape(printable(message)),
        )
    return table


class EndAtContent:
    """A renderable whose lines end at their last visible character: rich pads every table
    cell to its column's width, which leaves rows ending in spaces (copied along with them)."""

    def __init__(self, renderable: RenderableType) -> None:
        self.renderable = renderable

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for line in console.render_lines(self.renderable, options, pad=False):
            yield from _without_trailing_spaces(line)
            yield Segment.line()


def _without_trailing_spaces(line: list[Segment]) -> list[Segment]:
    kept = list(line)
    while kept and not kept[-1].control and not kept[-1].text.rstrip():
        kept.pop()  # a segment of padding only
    if kept and not kept[-1].control:
        last = kept[-1]
        kept[-1] = Segment(last.text.rstrip(), last.style)
    return kept


_TRAILING_COMMAND = re.compile(r"(.*?):\s+((?:pip3?|uv|conda|mamba|python3?)\s.+)", re.DOTALL)


def split_command(fix: str) -> tuple[str, str | None]:
    """``install the matching build: pip install ...`` -> the words, and the command."""
    match = _TRAILING_COMMAND.fullmatch(fix)
    if match is None:
        return fix, None
    return f"{match.group(1)}:", match.group(2)


def rank_label(environ: Mapping[str, str]) -> str | None:
    """``rank 1 of 4 (local rank 1)`` under torchrun (RANK, WORLD_SIZE, LOCAL_RANK), else None."""
    rank, world = environ.get("RANK"), environ.get("WORLD_SIZE")
    if rank is None or world is None:
        return None
    label = f"rank {printable(rank)} of {printable(world)}"
    local = environ.get("LOCAL_RANK")
    return f"{label} (local rank {printable(local)})" if local is not None else label


def render_report(report: SmokeReport, console: Console, rank: str | None = None) -> None:
    """The human report: headings, one table per device, problems with fixes, totals.

    ``rank`` (:func:`rank_label`) labels the heading and the totals line, so that the reports
    of several torchrun ranks on one terminal can be told apart.
    """
    where = f" · {rank}" if rank else ""
    console.print(
        escape(printable(f"dlready smoke ({report.mode}){where} · {torch_heading(report)}")),
        soft_wrap=True,
    )
    for device in report.devices:
        console.print()
        console.print(escape(printable(device_heading(report, device))), style="bold")
        if console.width < _NARROW_COLUMNS:
            for head_markup, head_plain, rest in _lines(device):
                print_prose(console, head_markup, head_plain, rest)
        else:
            console.print(EndAtContent(_table(device)))
    problems = [
        (device, result)
        for device in report.devices
        for result in device.checks
        if result.explanation or result.status in (CheckStatus.FAIL, CheckStatus.TIMEOUT)
    ]
    if problems:
        console.print()
        console.print("Problems", style="bold")
        for device, result in problems:
            on = device.device or device_words(device)
            style = _STYLE[result.status]
            # Wrapped at words on a terminal, whole on a pipe (print_prose).
            print_prose(
                console,
                f"[{style}]{result.status}[/] ",
                f"{result.status} ",
                printable(f"{result.name} on {on}: {result.explanation or result.message}"),
            )
            if result.fix:
                # A command on a line of its own, never hard-wrapped, so that it copies whole.
                words, command = split_command(result.fix)
                print_prose(console, "  fix: ", "  fix: ", printable(words))
                if command:
                    console.print(f"    {escape(printable(command))}", soft_wrap=True)
    for note in report.notes:
        print_prose(console, "note: ", "note: ", printable(note))
    counts = report.counts
    total = sum(counts.values())
    summary = ", ".join(f"{counts[s.value]} {s.value}" for s in CheckStatus if counts[s.value])
    console.print()
    prefix = f"{rank}: " if rank else ""
    totals = f"{prefix}{total} checks: {summary} · {report.wall_s:.1f} s"
    console.print(escape(printable(totals)), soft_wrap=True)
