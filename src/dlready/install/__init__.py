"""The one right PyTorch install command for a machine, and why (``dlready install-cmd``).

Public API (pure except :func:`load_compat_table`, which reads package data once):

- :func:`facts_from_snapshot` -> :class:`MachineFacts` (OS, arch, Python, accelerator, driver,
  compute capabilities, WSL; each with its origin).
- :func:`plan_install` (facts, :class:`InstallWishes`) -> :class:`InstallPlan`, or raises
  :class:`PlanError` (message, nearest_valid) for an invalid or impossible request.
- :func:`judge_installed_torch` (snapshot) -> :class:`TorchFit` (fits / mismatch / unknown /
  not_installed, problems, fix_command).
- :func:`recommended_command_line` (snapshot) -> the command line, or None;
  :func:`explain_no_command` (snapshot) -> why it is None (one line), or None when there is one.
- :func:`load_compat_table` -> :class:`CompatTable` (cached).

Nothing here imports torch, psutil or pynvml.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from dlready.install.errors import PlanError
    from dlready.install.facts import (
        Fact,
        FactOverrides,
        MachineFacts,
        apply_overrides,
        facts_from_overrides,
        facts_from_snapshot,
        validate_overrides,
    )
    from dlready.install.judge import (
        TorchFit,
        explain_no_command,
        judge_installed_torch,
        recommended_command_line,
    )
    from dlready.install.plan import Candidate, InstallPlan, InstallWishes, PinnedPackage
    from dlready.install.planner import plan_install
    from dlready.install.table import CompatTable, CompatTableError, load_compat_table

# Loaded on first use, so ``install-cmd`` (which imports the submodules it needs) does not pay
# for the judge, and ``check`` does not pay for the command's explanation code.
_HOMES = {
    "PlanError": "errors",
    "Fact": "facts",
    "FactOverrides": "facts",
    "MachineFacts": "facts",
    "apply_overrides": "facts",
    "facts_from_overrides": "facts",
    "facts_from_snapshot": "facts",
    "validate_overrides": "facts",
    "TorchFit": "judge",
    "explain_no_command": "judge",
    "judge_installed_torch": "judge",
    "recommended_command_line": "judge",
    "Candidate": "plan",
    "InstallPlan": "plan",
    "InstallWishes": "plan",
    "PinnedPackage": "plan",
    "plan_install": "planner",
    "CompatTable": "table",
    "CompatTableError": "table",
    "load_compat_table": "table",
}


def __getattr__(name: str) -> Any:
    """Import the public names lazily (PEP 562)."""
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'dlready.install' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"dlready.install.{home}"), name)
    globals()[name] = value
    return value


__all__ = [
    "Candidate",
    "CompatTable",
    "CompatTableError",
    "Fact",
    "FactOverrides",
    "InstallPlan",
    "InstallWishes",
    "MachineFacts",
    "PinnedPackage",
    "PlanError",
    "TorchFit",
    "apply_overrides",
    "explain_no_command",
    "facts_from_overrides",
    "facts_from_snapshot",
    "judge_installed_torch",
    "load_compat_table",
    "plan_install",
    "recommended_command_line",
    "validate_overrides",
]
