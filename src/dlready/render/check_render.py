"""Renderers for ``dlready check``: a rich table for people, Markdown for bug reports, JSON.

Renderers read the snapshot and the report; they never probe. Every string that came from
the machine, a snapshot or a spec file goes through :func:`printable` (control characters
shown as escapes) before it is printed.
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

from msgspec import Struct
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlready.model import GpuInfo, GpuVendor, MachineSnapshot
from dlready.render.text import format_number, gpu_range_label, print_prose, printable
from dlready.spec.bar import FailOn
from dlready.spec.build import BuildPart
from dlready.spec.verdict import (
    AT_MOST_CRITERIA,
    CheckReport,
    ComponentVerdict,
    Criterion,
    Status,
    criterion_label,
    threshold_labels,
)
from dlready.words import os_words, plain_error_text, stack_state_words, vendor_words

GIB = 1024**3

STATUS_LABELS = {
    Status.BELOW_MINIMUM: "BELOW MIN",
    Status.UNKNOWN: "not judged",
    Status.MEETS_MINIMUM: "meets min",
    Status.MEETS_RECOMMENDED: "meets rec",
}
_STATUS_STYLES = {
    Status.BELOW_MINIMUM: "bold red",
    Status.UNKNOWN: "yellow",
    Status.MEETS_MINIMUM: "cyan",
    Status.MEETS_RECOMMENDED: "green",
}
_GPU_SUBJECT = re.compile(r"GPU (\d+): (.*)", re.DOTALL)
_GPU_CRITERION = re.compile(r"gpu(\d+)_(.*)")


_SINGULAR_UNITS = {"CPUs": "CPU", "lanes": "lane", "jobs": "job"}


def _fmt(value: float | str | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = format_number(float(value)) if isinstance(value, (int, float)) else str(value)
    if isinstance(value, (int, float)) and value == 1:
        unit = _SINGULAR_UNITS.get(unit, unit)  # "1 CPU", not "1 CPUs"
    return printable(f"{text} {unit}".strip())


def _threshold(criterion: Criterion, value: float | str | None) -> str:
    """A threshold in a table cell: a maximum reads ``≤ 90 °C``, not a bare minimum."""
    text = _fmt(value, criterion.unit)
    return f"≤ {text}" if value is not None and criterion.name in AT_MOST_CRITERIA else text


def _gib(size_bytes: float) -> str:
    """Bytes as GiB, rounded as the verdict rounds them, so the summary and the table agree."""
    return f"{format_number(round(size_bytes / GIB, 2))} GiB"


# --- what this machine has --------------------------------------------------------------------


def _gpu_name(gpu: GpuInfo) -> str:
    if gpu.name.ok and gpu.name.value:
        return printable(gpu.name.value)
    return f"{vendor_words(gpu.vendor)} GPU (name unreadable)"


def _gpu_static_bits(gpu: GpuInfo) -> tuple[str, ...]:
    """What identical cards share: memory, architecture, PCIe link, power limit."""
    bits = []
    if gpu.memory_total_bytes.ok and gpu.memory_total_bytes.value:
        bits.append(_gib(gpu.memory_total_bytes.value))
    if gpu.compute_capability.ok:
        bits.append(f"sm_{printable(gpu.compute_capability.value).replace('.', '')}")
    generation, width = gpu.pcie_generation_current, gpu.pcie_width_current
    if generation.ok and width.ok:
        link = f"PCIe Gen{generation.value} x{width.value}"
        if gpu.pcie_generation_max.ok and gpu.pcie_generation_max.value != generation.value:
            link += f" (card: Gen{gpu.pcie_generation_max.value})"
        bits.append(link)
    limit = gpu.power_limit_enforced_w
    if limit.ok and limit.value:
        bits.append(f"power limit {format_number(limit.value)} W")
    if gpu.error:
        bits.append("not working (see below)")
    return tuple(bits)


def _span(values: Sequence[float], unit: str) -> str:
    low, high = min(values), max(values)
    if round(low) == round(high):
        return f"{format_number(round(low))} {unit}"
    return f"{format_number(round(low))}-{format_number(round(high))} {unit}"


def _gpu_live_bits(gpus: Sequence[GpuInfo]) -> list[str]:
    """Readings that differ from moment to moment (temperature, power draw), as a range."""
    bits = []
    temps = [g.temperature_c.value for g in gpus if g.temperature_c.ok and g.temperature_c.value]
    if temps and len(temps) == len(gpus):
        bits.append(f"{_span(temps, '°C')} now")
    draws = [g.power_draw_w.value for g in gpus if g.power_draw_w.ok and g.power_draw_w.value]
    if draws and len(draws) == len(gpus):
        bits.append(f"drawing {_span(draws, 'W')}")
    return bits


def _gpu_groups(gpus: Sequence[GpuInfo]) -> list[list[GpuInfo]]:
    """Identical cards (same name, memory, architecture, link, power limit) share a group,
    placed where its first card is; a card that does not work stays on its own."""
    groups: dict[object, list[GpuInfo]] = {}
    for gpu in gpus:
        key = (_gpu_name(gpu), _gpu_static_bits(gpu)) if not gpu.error else gpu.index
        groups.setdefault(key, []).append(gpu)
    return list(groups.values())


def _human(text: str) -> str:
    """Text from the machine or a finding as people read it: NVML's exception names become
    words (JSON keeps them), control characters escapes."""
    return printable(plain_error_text(text))


def _driver_text(stack_state: str, version: str | None, cuda: str | None, reason: str) -> str:
    if stack_state != "ok":  # the reason says it in words; the state's words are the fallback
        return _human(reason) if reason else stack_state_words(stack_state)
    text = f"driver {printable(version)}" if version else "driver version unreadable"
    return f"{text}, CUDA {printable(cuda)}" if cuda else text


def machine_summary(
    snapshot: MachineSnapshot, report: CheckReport | None = None
) -> list[tuple[str, str]]:
    """Short "what this machine has" lines, shared by the table and Markdown renderers.

    A driver whose reason a judged part of ``report`` gives (with its fix) is summed up in a
    few words here: each reason is said once."""
    said = " ".join(c.advice for c in report.components) if report is not None else ""
    cpu, memory, plat = snapshot.cpu, snapshot.memory, snapshot.platform
    lines = []
    os_text = printable(plat.os_release.value) if plat.os_release.ok else os_words(plat.os)
    extras = [
        label
        for label, reading in (
            ("container", plat.in_container),
            ("WSL", plat.is_wsl),
            ("virtual machine", plat.is_virtual_machine),
        )
        if reading.ok and reading.value
    ]
    arch = printable(plat.machine_arch.value or "?")
    python = printable(plat.python_version.value or "?")
    lines.append(
        (
            "System",
            f"{os_text} ({arch}), Python {python}" + (f"; {', '.join(extras)}" if extras else ""),
        )
    )
    cpu_bits = [printable(cpu.brand.value) if cpu.brand.value else "unknown CPU"]
    if cpu.usable_cpus.ok and cpu.usable_cpus.value is not None:
        cpu_bits.append(f"{cpu.usable_cpus.value:g} usable CPUs")
    if cpu.max_clock_mhz.ok and cpu.max_clock_mhz.value is not None:
        cpu_bits.append(f"max {format_number(round(cpu.max_clock_mhz.value))} MHz")
    else:
        cpu_bits.append("max clock unknown")
    if cpu.dl_isa_flags.ok and cpu.dl_isa_flags.value:
        cpu_bits.append(printable(" ".join(cpu.dl_isa_flags.value)))
    if cpu.package_temperature_c.ok and cpu.package_temperature_c.value is not None:
        cpu_bits.append(f"{cpu.package_temperature_c.value:.0f} °C now")
    lines.append(("CPU", ", ".join(cpu_bits)))
    if memory.effective_total_bytes.ok and memory.effective_total_bytes.value:
        text = f"{_gib(memory.effective_total_bytes.value)} usable"
        if memory.total_bytes.ok and memory.total_bytes.value != memory.effective_total_bytes.value:
            text += f" (host {_gib(memory.total_bytes.value or 0)})"
        lines.append(("Memory", text))
    for stack in snapshot.driver_stacks:
        if stack.state.value == "not_applicable":
            continue
        if stack.vendor is GpuVendor.NVIDIA or stack.state.value == "ok":
            text = _driver_text(
                stack.state.value,
                stack.driver_version.value if stack.driver_version.ok else None,
                stack.cuda_driver_version.value if stack.cuda_driver_version.ok else None,
                "" if stack.reason and stack.reason in said else stack.reason or "",
            )
            vendor = vendor_words(stack.vendor)
            if stack.vendor is GpuVendor.APPLE and stack.state.value == "ok":
                # Apple's GPU driver is part of macOS: the version read is the system's.
                version = stack.driver_version.value if stack.driver_version.ok else None
                text = f"Metal, part of macOS {printable(version)}" if version else "Metal"
                lines.append(("Apple GPU", text))
                continue
            lines.append((f"{vendor} driver", text))
    for group in _gpu_groups(snapshot.gpus):
        first = group[0]
        name = _gpu_name(first) if len(group) == 1 else f"{len(group)}x {_gpu_name(first)}"
        bits = [name, *_gpu_static_bits(first), *_gpu_live_bits(group)]
        lines.append((gpu_range_label([g.index for g in group]), ", ".join(bits)))
    torch = snapshot.torch
    if torch.installed and torch.version.ok:
        build = printable(torch.local_variant.value or "unknown build")
        lines.append(("PyTorch", f"{printable(torch.version.value)} ({build})"))
    elif torch.installed:
        lines.append(("PyTorch", "installed, version unreadable"))
    else:
        lines.append(("PyTorch", "not installed"))
    return lines


# --- judged parts, with identical GPUs grouped --------------------------------------------------


class DisplayPart(Struct, frozen=True):
    """One part as people read it: identical GPUs share one."""

    label: str
    """Short: CPU, RAM, GPU 0-3, PSU, Cooling, PyTorch."""
    title: str
    """Long: the CPU's brand, ``GPU 0-3 (4x NVIDIA GeForce RTX 4090)``."""
    component: ComponentVerdict
    rows: tuple[tuple[str, Criterion], ...]


def short_subject(component: ComponentVerdict) -> str:
    """Short row label: CPU, RAM, GPU 0, PSU, Cooling, PyTorch."""
    if component.component == "gpu":
        return component.subject.split(":")[0]
    return {"cpu": "CPU", "memory": "RAM", "psu": "PSU"}.get(component.component, component.subject)


def _gpu_key(component: ComponentVerdict) -> tuple[object, ...] | None:
    match = _GPU_SUBJECT.fullmatch(component.subject)
    if component.component != "gpu" or match is None:
        return None
    # Same card, same verdict, same words: a broken GPU's advice names its index, so it
    # always keeps its own row.
    return (match.group(2), component.status, component.criteria, component.advice, component.notes)


def _same_reading(first: Criterion, second: Criterion) -> bool:
    return (first.status, first.measured, first.minimum, first.recommended) == (
        second.status,
        second.measured,
        second.minimum,
        second.recommended,
    )


def _cooling_rows(criteria: Sequence[Criterion]) -> tuple[tuple[str, Criterion], ...]:
    """Per-GPU cooling rows, identical but for the GPU index, share one row."""
    rows: list[tuple[list[int], Criterion]] = []
    for criterion in criteria:
        match = _GPU_CRITERION.fullmatch(criterion.name)
        if rows and match:
            indices, previous = rows[-1]
            previous_match = _GPU_CRITERION.fullmatch(previous.name)
            if (
                previous_match
                and previous_match.group(2) == match.group(2)
                and _same_reading(previous, criterion)
            ):
                indices.append(int(match.group(1)))
                continue
        rows.append(([int(match.group(1))] if match else [], criterion))
    labelled = []
    for indices, criterion in rows:
        label = criterion_label(criterion.name)
        if len(indices) > 1:
            label = label.replace(f"GPU {indices[0]}", gpu_range_label(indices), 1)
        labelled.append((label, criterion))
    return tuple(labelled)


def display_parts(report: CheckReport) -> list[DisplayPart]:
    """The report's parts in order, identical neighbouring GPUs merged into one."""
    slots: list[DisplayPart | list[ComponentVerdict]] = []
    gpu_groups: dict[tuple[object, ...], list[ComponentVerdict]] = {}
    for component in report.components:
        key = _gpu_key(component)
        if key is not None:
            if key not in gpu_groups:
                gpu_groups[key] = []
                slots.append(gpu_groups[key])
            gpu_groups[key].append(component)
            continue
        rows = (
            _cooling_rows(component.criteria)
            if component.component == "cooling"
            else tuple((criterion_label(c.name), c) for c in component.criteria)
        )
        title = printable(component.subject)
        if component.component == "cpu":
            title = f"CPU ({title})"
        slots.append(DisplayPart(short_subject(component), title, component, rows))
    return [slot if isinstance(slot, DisplayPart) else _gpu_part(slot) for slot in slots]


def _gpu_part(group: Sequence[ComponentVerdict]) -> DisplayPart:
    first = group[0]
    rows = tuple((criterion_label(c.name), c) for c in first.criteria)
    if len(group) == 1:
        return DisplayPart(short_subject(first), printable(first.subject), first, rows)
    matches = [_GPU_SUBJECT.fullmatch(c.subject) for c in group]
    label = gpu_range_label([int(m.group(1)) for m in matches if m])
    name = matches[0].group(2) if matches[0] else first.subject
    return DisplayPart(label, f"{label} ({len(group)}x {printable(name)})", first, rows)


def not_judged(report: CheckReport) -> list[str]:
    """What could not be judged: whole parts, and criteria of judged parts."""
    items = []
    for part in display_parts(report):
        if part.component.status is Status.UNKNOWN:
            items.append(part.label)
        else:
            # Cooling's criteria name their own subject ("CPU package temperature").
            prefix = "" if part.component.component == "cooling" else f"{part.label} "
            items += [f"{prefix}{criterion_label(n)}" for n in part.component.not_judged]
    return items


def overall_text(
    report: CheckReport, fail_on: FailOn = FailOn.MINIMUM, strict: bool = False
) -> str:
    """``meets min · not judged: CPU max clock, PSU``, and why it fails when the status alone
    does not say it (``· fails --strict: 2 items not judged``)."""
    bits = [STATUS_LABELS[report.status]]
    missing = not_judged(report)
    if missing:
        bits.append(f"not judged: {', '.join(missing)}")
    codes = {failure.code: failure for failure in report.failures(fail_on, strict)}
    if "below_bar" in codes and report.status is not Status.BELOW_MINIMUM:
        bits.append(f"below the recommended bar (--fail-on {fail_on})")
    if "not_judged" in codes:
        items = "1 item" if len(missing) == 1 else f"{len(missing)} items"
        bits.append(f"fails --strict: {items} not judged")
    if "nothing_judged" in codes:
        bits.append("fails: nothing could be judged")
    return " · ".join(bits)


def _snapshot_line(snapshot: MachineSnapshot, snapshot_origin: str) -> str:
    host = snapshot.platform.hostname
    host_text = printable(host.value) if host.ok and host.value else "an unnamed host"
    return (
        f"Saved snapshot {printable(snapshot_origin)} of {host_text}, captured "
        f"{printable(snapshot.captured_at)} by dlready {printable(snapshot.dlready_version)}: "
        "re-judged, not probed now."
    )


# --- the table for people ---------------------------------------------------------------------


_HEADERS = ("Part / criterion", "Status", "Measured", "Minimum", "Recommended")
_BUILD_HEADERS = ("Part / tool", "Status", "Found", "Expected / allowed", "Recommended")


def _table(parts: Sequence[DisplayPart], headers: Sequence[str] = _HEADERS) -> Table:
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False, expand=False)
    for header in headers:
        table.add_column(header, no_wrap=True)
    for part in parts:
        style = _STATUS_STYLES[part.component.status]
        status = f"[{style}]{STATUS_LABELS[part.component.status]}[/]"
        table.add_row(f"[bold]{escape(part.label)}[/]", status, "", "", "")
        for label, criterion in part.rows:
            crit_style = _STATUS_STYLES[criterion.status]
            table.add_row(
                f"  {escape(printable(label))}",
                f"[{crit_style}]{STATUS_LABELS[criterion.status]}[/]",
                escape(_fmt(criterion.measured, criterion.unit)),
                escape(_threshold(criterion, criterion.minimum)),
                escape(_threshold(criterion, criterion.recommended)),
            )
    return table


def _natural_width(table: Table) -> int:
    """The table's width with nothing wrapped or cut."""
    wide = Console(width=10_000, file=io.StringIO(), color_system=None)
    with wide.capture() as capture:
        wide.print(table)
    return max((len(line.rstrip()) for line in capture.get().splitlines()), default=0)


def _print_stacked(parts: Sequence[DisplayPart], console: Console) -> None:
    """The same facts as the table, one line each, for terminals too narrow for it."""
    for part in parts:
        style = _STATUS_STYLES[part.component.status]
        console.print(
            f"[bold]{escape(part.label)}[/]: [{style}]{STATUS_LABELS[part.component.status]}[/]"
        )
        for label, criterion in part.rows:
            limits = ", ".join(
                f"{name} {_fmt(value, criterion.unit)}"
                for name, value in zip(
                    threshold_labels(criterion.name),
                    (criterion.minimum, criterion.recommended),
                    strict=True,
                )
                if value is not None
            )
            measured = (
                f", {_fmt(criterion.measured, criterion.unit)}"
                if criterion.measured is not None
                else ""
            )
            console.print(
                f"  {escape(printable(label))}: {STATUS_LABELS[criterion.status]}{escape(measured)}"
            )
            if limits:
                console.print(f"    {escape(limits)}")


def render_table(
    report: CheckReport,
    snapshot: MachineSnapshot,
    console: Console,
    snapshot_origin: str | None = None,
    *,
    fail_on: FailOn = FailOn.MINIMUM,
    strict: bool = False,
) -> None:
    """Print the human report. ``snapshot_origin``: the file a saved snapshot came from."""
    console.print(f"[bold]dlready check[/] · profile [bold]{escape(printable(report.profile))}[/]")
    # Prose is wrapped at words on a terminal, `commands` and paths kept whole (print_prose);
    # a pipe gets whole lines.
    print_prose(console, "  ", "  ", printable(report.profile_title))
    if snapshot_origin is not None:
        line = escape(_snapshot_line(snapshot, snapshot_origin))
        console.print(f"[yellow]{line}[/]", soft_wrap=True)  # a path: never hard-wrapped
    for label, text in machine_summary(snapshot, report):
        print_prose(console, f"  [dim]{escape(label)}:[/] ", f"  {label}: ", text)
    parts = display_parts(report)
    table = _table(parts)
    if _natural_width(table) <= console.width:
        console.print(table)
    else:
        _print_stacked(parts, console)
    for part in parts:
        component = part.component
        label = escape(part.label)
        if component.advice:
            style = _STATUS_STYLES[component.status]
            print_prose(
                console,
                f"[{style}]•[/] [bold]{label}[/]: ",
                f"• {part.label}: ",
                _human(component.advice),
            )
        for note in component.notes:
            print_prose(console, f"[dim]•[/] [bold]{label}[/]: ", f"• {part.label}: ", _human(note))
    budget = report.power_budget
    psu = next((c for c in report.components if c.component == "psu"), None)
    if psu is not None and psu.criteria:  # not on a Mac, where there is no PSU to size
        budget_text = (
            f"GPUs {format_number(budget.gpu_w)} W + CPU {format_number(round(budget.cpu_w))} W "
            f"+ base {format_number(budget.base_w)} W = {format_number(round(budget.parts_w))} W; "
            f"PSU minimum {format_number(budget.minimum_w)} W"
            + (f" (book rule {format_number(budget.book_rule_w)} W)" if budget.book_rule_w else "")
        )
        print_prose(console, "[dim]Power budget:[/] ", "Power budget: ", budget_text)
    for note in report.notes:
        print_prose(console, "[yellow]note:[/] ", "note: ", _human(note))
    heading, commands = install_commands(report)
    if commands:
        console.print(f"[dim]{escape(heading)}[/]", soft_wrap=True)
    for command in commands:
        # On a line of its own and never wrapped: this line is meant to be copied.
        console.print(f"  {escape(printable(command))}", soft_wrap=True)
    style = _STATUS_STYLES[report.status]
    status, _, rest = overall_text(report, fail_on, strict).partition(" · ")
    print_prose(
        console,
        f"Overall: [{style}]{status}[/]" + (" · " if rest else ""),
        f"Overall: {status}" + (" · " if rest else ""),
        rest,
    )


def install_commands(report: CheckReport) -> tuple[str, list[str]]:
    """The PyTorch command(s) to run, once, with their heading: the one to reinstall with
    when the installed torch does not fit, else the newest for this machine; when none fits,
    the ``install-cmd`` commands that would give one."""
    software = next((c for c in report.components if c.component == "software"), None)
    if report.install_command:
        reinstall = software is not None and software.advice.endswith("the command below.")
        heading = (
            "Reinstall PyTorch for this machine with:"
            if reinstall
            else "Newest PyTorch for this machine:"
        )
        return heading, [report.install_command]
    if report.install_alternatives:
        heading = (
            "No PyTorch build fits this machine as it is; each of these prints one that would:"
        )
        return heading, list(report.install_alternatives)
    return "", []


# --- Markdown ---------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return printable(text).replace("|", "\\|")


def render_markdown(
    report: CheckReport,
    snapshot: MachineSnapshot,
    snapshot_origin: str | None = None,
    *,
    fail_on: FailOn = FailOn.MINIMUM,
    strict: bool = False,
) -> str:
    """A Markdown report to paste into a bug report."""
    lines = [
        f"## dlready check: {_md_cell(overall_text(report, fail_on, strict))}",
        "",
        f"Profile `{_md_cell(report.profile)}`: {_md_cell(report.profile_title)}",
        "",
    ]
    if snapshot_origin is not None:
        lines += [_md_cell(_snapshot_line(snapshot, snapshot_origin)), ""]
    lines += [
        f"- **{_md_cell(label)}**: {_md_cell(text)}"
        for label, text in machine_summary(snapshot, report)
    ]
    lines += [
        "",
        "| Part | Criterion | Status | Measured | Minimum | Recommended |",
        "|---|---|---|---|---|---|",
    ]
    for part in display_parts(report):
        status = STATUS_LABELS[part.component.status]
        lines.append(f"| **{_md_cell(part.title)}** | | **{status}** | | | |")
        for label, criterion in part.rows:
            lines.append(
                f"| | {_md_cell(label)} | {STATUS_LABELS[criterion.status]} "
                f"| {_md_cell(_fmt(criterion.measured, criterion.unit))} "
                f"| {_md_cell(_threshold(criterion, criterion.minimum))} "
                f"| {_md_cell(_threshold(criterion, criterion.recommended))} |"
            )
    findings = [
        f"**{_md_cell(part.label)}**: {_md_cell(plain_error_text(text))}"
        for part in display_parts(report)
        for text in ([part.component.advice] if part.component.advice else [])
        + list(part.component.notes)
    ] + [_md_cell(plain_error_text(note)) for note in report.notes]
    if findings:
        lines += ["", "Findings:", ""] + [f"- {finding}" for finding in findings]
    heading, commands = install_commands(report)
    if commands:
        lines += ["", heading, "", "```", *(printable(c) for c in commands), "```"]
    lines += [
        "",
        f"<sub>dlready {_md_cell(snapshot.dlready_version)}, captured "
        f"{_md_cell(snapshot.captured_at)}</sub>",
        "",
    ]
    return "\n".join(lines)


# --- the build tools part (shown apart when it does not count toward the verdict) -------------


def render_build_part(build: BuildPart, console: Console) -> None:
    """The build tools, when they are not already among the report's components."""
    if build.counts:
        return
    verdict = build.verdict
    print_prose(
        console,
        "",
        "",
        "Compiling extensions (flash-attn, apex, DeepSpeed ops): not part of the verdict "
        "unless the profile's [build] required = true or --fail-on build.",
        style="dim",
    )
    if verdict.criteria:
        rows = tuple((criterion_label(c.name), c) for c in verdict.criteria)
        parts = [DisplayPart("Build tools", "Build tools", verdict, rows)]
        table = _table(parts, _BUILD_HEADERS)
        if _natural_width(table) <= console.width:
            console.print(table)
        else:
            _print_stacked(parts, console)
    findings = [c.advice for c in verdict.criteria if c.advice] or (
        [verdict.advice] if verdict.advice else []
    )
    for text in findings:
        print_prose(console, "[dim]•[/] [bold]Build[/]: ", "• Build: ", _human(text))
    for note in verdict.notes:
        print_prose(console, "[dim]•[/] [bold]Build[/]: ", "• Build: ", printable(note))


def render_build_markdown(build: BuildPart) -> str:
    """The build tools section of the Markdown report (empty when it is among the components)."""
    if build.counts:
        return ""
    verdict = build.verdict
    lines = [
        "",
        "### Build tools (not part of the verdict)",
        "",
        "| Tool | Status | Found | Expected | Advice |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {criterion_label(c.name)} | {STATUS_LABELS[c.status]} | {_md_cell(_fmt(c.measured))} "
        f"| {_md_cell(_threshold(c, c.minimum))} | {_md_cell(c.advice)} |"
        for c in verdict.criteria
    ]
    if not verdict.criteria and verdict.advice:
        lines.append(
            f"| - | {STATUS_LABELS[verdict.status]} | - | - | {_md_cell(verdict.advice)} |"
        )
    lines += [f"- {_md_cell(note)}" for note in verdict.notes]
    return "\n".join(lines) + "\n"
