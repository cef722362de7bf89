"""Render a :class:`SmokeReport`: the summary table on stdout and the ``--json`` ``data``.

No torch. Colour comes from rich, which leaves it out off a terminal and under ``NO_COLOR``.
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlready.model import to_jsonable
from dlready.smoke.report import CheckResult, CheckStatus, DeviceReport, SmokeReport

_STYLE = {
    CheckStatus.PASS: "green",
    CheckStatus.WARN: "yellow",
    CheckStatus.FAIL: "bold red",
    CheckStatus.SKIPPED: "dim",
    CheckStatus.TIMEOUT: "bold red",
}


def report_data(report: SmokeReport) -> dict[str, Any]:
    """The ``data`` object of ``dlready smoke --json`` (schema in docs/smoke.md)."""
    data: dict[str, Any] = to_jsonable(report)
    data["counts"] = report.counts
    return data


def _format_number(value: float) -> str:
    """989.5, 3,350, 63.02, 4.4: four significant digits, thousands separated."""
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


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


def device_heading(report: SmokeReport, device: DeviceReport) -> str:
    """One line naming the device and the build that ran on it."""
    info = device.info
    parts = [f"device {device.device or device.requested}"]
    if info.get("name"):
        parts.append(str(info["name"]))
    if info.get("compute_capability"):
        arch = info.get("arch") or ""
        in_build = info.get("arch_in_build")
        parts.append(
            f"compute capability {info['compute_capability']} ({arch} {in_build} in this build)"
        )
    if info.get("total_memory_bytes"):
        parts.append(f"{int(info['total_memory_bytes']) / 2**30:.1f} GiB")
    return " · ".join(parts)


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
    cudnn = f" · cuDNN {torch.cudnn}" if torch.cudnn else ""
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
            escape(label),
            f"[{style}]{result.status}[/]",
            f"{result.duration_s:.2f} s",
            escape(message),
        )
    return table


def render_report(report: SmokeReport, console: Console) -> None:
    """The human report: headings, one table per device, problems with fixes, totals."""
    console.print(escape(f"dlready smoke ({report.mode}) · {torch_heading(report)}"))
    for device in report.devices:
        console.print()
        console.print(escape(device_heading(report, device)), style="bold")
        console.print(_table(device))
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
            where = device.device or device.requested
            style = _STYLE[result.status]
            console.print(
                f"[{style}]{result.status}[/] {escape(result.name)} on {escape(where)}: "
                f"{escape(result.explanation or result.message)}"
            )
            if result.fix:
                console.print(f"  fix: {escape(result.fix)}")
    for note in report.notes:
        console.print(f"note: {escape(note)}")
    counts = report.counts
    total = sum(counts.values())
    summary = ", ".join(f"{counts[s.value]} {s.value}" for s in CheckStatus if counts[s.value])
    console.print()
    console.print(escape(f"{total} checks: {summary} · {report.wall_s:.1f} s"))
