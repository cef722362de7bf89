"""Renderers for ``dlready check``: a rich table for people, Markdown for bug reports, JSON.

Renderers read the snapshot and the report; they never probe.
"""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlready.model import GpuVendor, MachineSnapshot
from dlready.spec.build import BuildPart
from dlready.spec.verdict import CheckReport, ComponentVerdict, Criterion, Status

GIB = 1024**3

STATUS_LABELS = {
    Status.BELOW_MINIMUM: "BELOW MIN",
    Status.UNKNOWN: "UNKNOWN",
    Status.MEETS_MINIMUM: "meets min",
    Status.MEETS_RECOMMENDED: "meets rec",
}
_CRITERION_LABELS = {
    "usable_cpus": "usable CPUs",
    "max_clock_mhz": "max clock",
    "effective_total_gib": "usable RAM",
    "ratio_to_total_vram": "RAM / VRAM",
    "vram_gib": "VRAM",
    "compute_capability": "compute cap.",
    "fp32_tflops": "FP32 peak",
    "pcie_width_lanes": "PCIe width",
    "capacity_w": "PSU rating",
    "cpu_package_c": "CPU package",
}
_STATUS_STYLES = {
    Status.BELOW_MINIMUM: "bold red",
    Status.UNKNOWN: "yellow",
    Status.MEETS_MINIMUM: "cyan",
    Status.MEETS_RECOMMENDED: "green",
}


def _fmt(value: float | str | None, unit: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        text = f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"
    else:
        text = str(value)
    return f"{text} {unit}".strip()


def machine_summary(snapshot: MachineSnapshot) -> list[tuple[str, str]]:
    """Short "what this machine has" lines, shared by the table and Markdown renderers."""
    cpu, memory, plat = snapshot.cpu, snapshot.memory, snapshot.platform
    lines = []
    os_text = plat.os_release.value if plat.os_release.ok else str(plat.os)
    extras = [
        label
        for label, reading in (
            ("container", plat.in_container),
            ("WSL", plat.is_wsl),
            ("VM", plat.is_virtual_machine),
        )
        if reading.ok and reading.value
    ]
    arch = plat.machine_arch.value or "?"
    python = plat.python_version.value or "?"
    lines.append(
        (
            "System",
            f"{os_text} ({arch}), Python {python}" + (f"; {', '.join(extras)}" if extras else ""),
        )
    )
    cpu_bits = [cpu.brand.value or "unknown CPU"]
    if cpu.usable_cpus.ok:
        cpu_bits.append(f"{cpu.usable_cpus.value:g} usable CPUs")
    if cpu.max_clock_mhz.ok:
        cpu_bits.append(f"max {cpu.max_clock_mhz.value:.0f} MHz")
    else:
        cpu_bits.append("max clock unknown")
    if cpu.dl_isa_flags.ok and cpu.dl_isa_flags.value:
        cpu_bits.append(" ".join(cpu.dl_isa_flags.value))
    lines.append(("CPU", ", ".join(cpu_bits)))
    if memory.effective_total_bytes.ok and memory.effective_total_bytes.value:
        text = f"{memory.effective_total_bytes.value / GIB:.1f} GiB usable"
        if memory.total_bytes.ok and memory.total_bytes.value != memory.effective_total_bytes.value:
            text += f" (host {memory.total_bytes.value / GIB:.1f} GiB)"  # type: ignore[operator]
        lines.append(("Memory", text))
    for stack in snapshot.driver_stacks:
        if stack.state.value == "not_applicable":
            continue
        if stack.vendor is GpuVendor.NVIDIA or stack.state.value == "ok":
            text = str(stack.state)
            if stack.driver_version.ok:
                text = f"driver {stack.driver_version.value}"
                if stack.cuda_driver_version.ok:
                    text += f", CUDA {stack.cuda_driver_version.value}"
            elif stack.reason:
                text += f": {stack.reason}"
            lines.append((f"{stack.vendor} driver", text))
    for gpu in snapshot.gpus:
        name = gpu.name.value if gpu.name.ok else f"{gpu.vendor} GPU"
        bits = [str(name)]
        if gpu.memory_total_bytes.ok and gpu.memory_total_bytes.value:
            bits.append(f"{gpu.memory_total_bytes.value / GIB:.1f} GiB")
        if gpu.compute_capability.ok:
            bits.append(f"sm_{str(gpu.compute_capability.value).replace('.', '')}")
        if gpu.error:
            bits.append(f"error: {gpu.error}")
        lines.append((f"GPU {gpu.index}", ", ".join(bits)))
    torch = snapshot.torch
    if torch.installed and torch.version.ok:
        lines.append(
            ("PyTorch", f"{torch.version.value} ({torch.local_variant.value or 'unknown build'})")
        )
    else:
        lines.append(("PyTorch", "not installed"))
    return lines


def _criterion_label(criterion: Criterion) -> str:
    name = criterion.name
    if name in _CRITERION_LABELS:
        return _CRITERION_LABELS[name]
    if name.startswith("gpu") and name.endswith("_slowdown_margin_c"):
        return f"GPU {name[3:].split('_')[0]} temp margin"
    if name.startswith("gpu") and name.endswith("_thermal_throttling"):
        return f"GPU {name[3:].split('_')[0]} throttling"
    return name.replace("_", " ")


def short_subject(component: ComponentVerdict) -> str:
    """Short row label: CPU, RAM, GPU 0, PSU, Cooling, PyTorch."""
    if component.component == "gpu":
        return component.subject.split(":")[0]
    return {"cpu": "CPU", "memory": "RAM", "psu": "PSU"}.get(component.component, component.subject)


def render_table(report: CheckReport, snapshot: MachineSnapshot, console: Console) -> None:
    """Print the human report."""
    console.print(
        f"[bold]dlready check[/] · profile [bold]{escape(report.profile)}[/]: {escape(report.profile_title)}"
    )
    # Prose is soft-wrapped (the terminal folds it, a pipe gets whole lines), so commands in
    # it can be copied and pasted intact.
    for label, text in machine_summary(snapshot):
        console.print(f"  [dim]{escape(label)}:[/] {escape(text)}", soft_wrap=True)
    table = Table(show_lines=False, expand=False, pad_edge=False)
    for header in ("Part", "Criterion", "Status", "Measured", "Minimum", "Recommended"):
        table.add_column(header, overflow="fold")
    for component in report.components:
        _add_component_rows(table, component)
    console.print(table)
    for component in report.components:
        if component.advice and component.status is not Status.MEETS_RECOMMENDED:
            style = _STATUS_STYLES[component.status]
            label = escape(short_subject(component))
            console.print(
                f"[{style}]•[/] [bold]{label}[/]: {escape(component.advice)}", soft_wrap=True
            )
        for note in component.notes:
            console.print(
                f"[dim]•[/] [bold]{escape(short_subject(component))}[/]: {escape(note)}",
                soft_wrap=True,
            )
    budget = report.power_budget
    budget_text = (
        f"GPUs {budget.gpu_w:.0f} W + CPU {budget.cpu_w:.0f} W + base {budget.base_w:.0f} W = "
        f"{budget.parts_w:.0f} W; PSU minimum {budget.minimum_w:.0f} W"
        + (f" (book rule {budget.book_rule_w:.0f} W)" if budget.book_rule_w else "")
    )
    psu = next((c for c in report.components if c.component == "psu"), None)
    if psu is not None and psu.criteria:  # not in a VM or on a Mac, where there is no PSU to size
        console.print(f"[dim]Power budget:[/] {budget_text}", soft_wrap=True)
    for note in report.notes:
        console.print(f"[yellow]note:[/] {escape(note)}", soft_wrap=True)
    if report.install_command:
        console.print("[dim]Newest PyTorch for this machine:[/]")
        # On a line of its own and never wrapped: this line is meant to be copied.
        console.print(f"  {escape(report.install_command)}", soft_wrap=True)
    style = _STATUS_STYLES[report.status]
    console.print(
        f"Overall: [{style}]{STATUS_LABELS[report.status]}[/]{escape(_unknown_suffix(report))}"
    )


def _unknown_suffix(report: CheckReport) -> str:
    if not report.unknown_parts:
        return ""
    return f" ({len(report.unknown_parts)} not judged: {', '.join(report.unknown_parts)})"


def _add_component_rows(table: Table, component: ComponentVerdict) -> None:
    style = _STATUS_STYLES[component.status]
    if not component.criteria:
        table.add_row(
            escape(short_subject(component)),
            "-",
            f"[{style}]{STATUS_LABELS[component.status]}[/]",
            "-",
            "-",
            "-",
        )
        return
    for position, criterion in enumerate(component.criteria):
        crit_style = _STATUS_STYLES[criterion.status]
        table.add_row(
            escape(short_subject(component)) if position == 0 else "",
            _criterion_label(criterion),
            f"[{crit_style}]{STATUS_LABELS[criterion.status]}[/]",
            escape(_fmt(criterion.measured, criterion.unit)),
            escape(_fmt(criterion.minimum, criterion.unit)),
            escape(_fmt(criterion.recommended, criterion.unit)),
        )


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(report: CheckReport, snapshot: MachineSnapshot) -> str:
    """A Markdown report to paste into a bug report."""
    lines = [
        f"## dlready check: {STATUS_LABELS[report.status]}{_unknown_suffix(report)}",
        "",
        f"Profile `{report.profile}`: {report.profile_title}",
        "",
    ]
    lines += [
        f"- **{_md_cell(label)}**: {_md_cell(text)}" for label, text in machine_summary(snapshot)
    ]
    lines += [
        "",
        "| Component | Criterion | Status | Measured | Minimum | Recommended | Advice |",
        "|---|---|---|---|---|---|---|",
    ]
    for component in report.components:
        rows = component.criteria or (None,)
        for criterion in rows:
            if criterion is None:
                lines.append(
                    f"| {_md_cell(component.subject)} | - | {STATUS_LABELS[component.status]} | - | - | - "
                    f"| {_md_cell(component.advice)} |"
                )
                continue
            lines.append(
                f"| {_md_cell(component.subject)} | {_criterion_label(criterion)} "
                f"| {STATUS_LABELS[criterion.status]} | {_md_cell(_fmt(criterion.measured, criterion.unit))} "
                f"| {_md_cell(_fmt(criterion.minimum, criterion.unit))} "
                f"| {_md_cell(_fmt(criterion.recommended, criterion.unit))} | {_md_cell(criterion.advice)} |"
            )
    notes = [f"{c.subject}: {n}" for c in report.components for n in c.notes] + list(report.notes)
    if notes:
        lines += ["", "Notes:", ""] + [f"- {_md_cell(n)}" for n in notes]
    if report.install_command:
        lines += ["", "Newest PyTorch for this machine:", "", "```", report.install_command, "```"]
    lines += [
        "",
        f"<sub>dlready {snapshot.dlready_version}, captured {snapshot.captured_at}</sub>",
        "",
    ]
    return "\n".join(lines)


# --- the build tools part (shown apart when it does not count toward the verdict) -------------

# Kept beside the build renderers and merged in, so both tables label these criteria alike.
_CRITERION_LABELS.update(
    {
        "torch_cuda": "PyTorch's CUDA",
        "nvcc": "nvcc",
        "cuda_home": "CUDA_HOME",
        "host_compiler": "host compiler",
        "ninja": "ninja",
        "python_headers": "Python.h",
        "compile_jobs_ram": "compile jobs / RAM",
    }
)


def render_build_part(build: BuildPart, console: Console) -> None:
    """The build tools, when they are not already among the report's components."""
    if build.counts:
        return
    verdict = build.verdict
    console.print(
        "[bold]Build tools[/] [dim]"
        + escape(
            "(compiling extensions such as flash-attn; not part of the verdict unless the "
            "profile's [build] required = true or --fail-on build)"
        )
        + "[/]",
        soft_wrap=True,
    )
    table = Table(show_lines=False, expand=False, pad_edge=False)
    for header in ("Tool", "Status", "Found", "Expected"):
        table.add_column(header, overflow="fold")
    for criterion in verdict.criteria:
        style = _STATUS_STYLES[criterion.status]
        table.add_row(
            _criterion_label(criterion),
            f"[{style}]{STATUS_LABELS[criterion.status]}[/]",
            escape(_fmt(criterion.measured)),
            escape(_fmt(criterion.minimum)),
        )
    if verdict.criteria:
        console.print(table)
    findings = [c.advice for c in verdict.criteria if c.advice] or (
        [verdict.advice] if verdict.advice else []
    )
    for text in findings:
        console.print(f"[dim]•[/] [bold]Build[/]: {escape(text)}", soft_wrap=True)
    for note in verdict.notes:
        console.print(f"[dim]•[/] [bold]Build[/]: {escape(note)}", soft_wrap=True)


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
        f"| {_criterion_label(c)} | {STATUS_LABELS[c.status]} | {_md_cell(_fmt(c.measured))} "
        f"| {_md_cell(_fmt(c.minimum))} | {_md_cell(c.advice)} |"
        for c in verdict.criteria
    ]
    if not verdict.criteria and verdict.advice:
        lines.append(
            f"| - | {STATUS_LABELS[verdict.status]} | - | - | {_md_cell(verdict.advice)} |"
        )
    lines += [f"- {_md_cell(note)}" for note in verdict.notes]
    return "\n".join(lines) + "\n"
