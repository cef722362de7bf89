"""``install-cmd``'s human output: the command alone on stdout, the explanation on stderr.

The explanation is short by default and full with ``--explain``. Every line starts with
``# `` so that even ``dlready install-cmd 2>&1 | sh`` stays harmless.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from dlready import output
from dlready.install.archs import ARCH_RULES
from dlready.install.caveats import checked_line
from dlready.install.facts import Fact, MachineFacts
from dlready.install.plan import InstallPlan
from dlready.install.table import CompatTable, PublicSource
from dlready.render.text import wrap_comment

if TYPE_CHECKING:
    from dlready.result import Streams

PREFIX = "# "


def render_plan(plan: InstallPlan, table: CompatTable, explain: bool, streams: Streams) -> None:
    """The command on stdout byte for byte (rich could wrap it), the reasons on stderr."""
    streams.write(plan.command_line + "\n")
    lines = full_lines(plan, table) if explain else short_lines(plan, table)
    # Plain uncoloured text, so no rich Console: creating one costs ~19 ms, a tenth of this
    # command's time budget (benchmarks/bench_install_cmd.py). The explanation is best effort:
    # with stderr closed (`2>&-`) the command on stdout is still the result.
    width = output.stderr_terminal_columns()
    streams.diagnostic("\n".join(piece for line in lines for piece in wrap_comment(line, width)))


def _origin(fact: Fact[Any]) -> str:
    detail = f": {fact.detail}" if fact.detail else ""
    return f"{fact.origin}{detail}"


def _value(fact: Fact[Any]) -> str:
    value = fact.value
    if value is None or value == ():
        return "unknown"
    if isinstance(value, tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def fact_rows(facts: MachineFacts) -> list[tuple[str, str, str]]:
    """``(name, value, origin)`` for every fact the planner used."""
    rows = [
        ("os", _value(facts.os), _origin(facts.os)),
        ("arch", _value(facts.arch), _origin(facts.arch)),
        ("python", _value(facts.python), _origin(facts.python)),
        ("accelerator", _value(facts.accelerator), _origin(facts.accelerator)),
    ]
    if facts.accelerator.value == "cuda" or facts.driver_version.known:
        rows.append(("driver", _value(facts.driver_version), _origin(facts.driver_version)))
        cc = _value(facts.compute_capabilities)
        if facts.gpu_names:
            cc += f" ({'; '.join(facts.gpu_names)})"
        rows.append(("compute capability", cc, _origin(facts.compute_capabilities)))
    if facts.is_wsl.value:
        rows.append(("wsl", "yes", _origin(facts.is_wsl)))
    return rows


def short_lines(plan: InstallPlan, table: CompatTable) -> list[str]:
    """The default stderr text: what was chosen, from which facts, and the warnings."""
    facts = ", ".join(
        f"{name} {value} ({origin.split(':')[0]})" for name, value, origin in fact_rows(plan.facts)
    )
    lines = [
        f"torch {plan.torch} ({plan.variant}) for {plan.platform} with {plan.manager}",
        f"facts: {facts}",
    ]
    lines += [reason for reason in plan.reasons if not reason.startswith(f"torch {plan.torch}:")]
    lines += [f"warning: {warning}" for warning in plan.warnings]
    lines.append(f"({checked_line(table)}; --explain for the full reasoning)")
    return [PREFIX + line for line in lines]


def full_lines(plan: InstallPlan, table: CompatTable) -> list[str]:
    """The ``--explain`` text: facts with their origin, every candidate, reasons, sources."""
    lines = [
        f"dlready install-cmd: compatibility table checked on {table.checked_on}",
        f"plan: torch {plan.torch}, variant {plan.variant}, {plan.platform}, {plan.manager}",
        "facts (detected = probed on this machine, given = a flag, implied = follows from a flag):",
    ]
    width = max(len(name) for name, _, _ in fact_rows(plan.facts))
    for name, value, origin in fact_rows(plan.facts):
        lines.append(f"  {name.ljust(width)}  {value}  [{origin}]")
    if plan.candidates:
        lines.append("CUDA variants considered (newest first):")
        for candidate in plan.candidates:
            mark = "CHOSEN " if candidate.chosen else ("usable " if candidate.usable else "no     ")
            lines.append(f"  {mark}{candidate.variant:<8} {candidate.verdict}")
    lines.append("reasons:")
    lines += [f"  {reason}" for reason in plan.reasons]
    if plan.warnings:
        lines.append("warnings:")
        lines += [f"  {warning}" for warning in plan.warnings]
    lines.append("packages: " + " ".join(package.spec for package in plan.packages))
    if plan.index_flag:
        lines.append(f"index: {plan.index_flag} {plan.index_url}")
    if plan.channels:
        lines.append("channels: " + " ".join(plan.channels))
    lines.append(f"{checked_line(table)}; the public pages behind this plan:")
    lines += [f"  {source.title}: {source.url}" for source in _plan_sources(plan, table)]
    rules = table.public_sources.get("arch_rules")
    lines.append("GPU code rules" + (f" ({rules.title}: {rules.url})" if rules else "") + ":")
    lines += [f"  {index}. {rule}" for index, rule in enumerate(ARCH_RULES, start=1)]
    return [PREFIX + line for line in lines]


def _plan_sources(plan: InstallPlan, table: CompatTable) -> list[PublicSource]:
    topics = ["commands", "python"]
    if plan.variant.startswith("cu"):
        topics += ["drivers", "arch_lists"]
    if plan.manager == "conda":
        topics.append("conda")
    return [table.public_sources[topic] for topic in topics if topic in table.public_sources]
