"""The one right PyTorch install command for a machine, and why (``dlready install-cmd``).

Public API (pure except :func:`load_compat_table`, which reads package data once):

- :func:`facts_from_snapshot` -> :class:`MachineFacts` (OS, arch, Python, accelerator, driver,
  compute capabilities, WSL; each with its origin).
- :func:`plan_install` (facts, :class:`InstallWishes`) -> :class:`InstallPlan`, or raises
  :class:`PlanError` (message, nearest_valid) for an invalid or impossible request.
- :func:`judge_installed_torch` (snapshot) -> :class:`TorchFit` (fits / mismatch / unknown /
  not_installed, problems, fix_command).
- :func:`recommended_command_line` (snapshot) -> the command line, or None.
- :func:`load_compat_table` -> :class:`CompatTable` (cached).

Nothing here imports torch, psutil or pynvml.
"""

from __future__ import annotations

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
from dlready.install.judge import TorchFit, judge_installed_torch, recommended_command_line
from dlready.install.planner import (
    Candidate,
    InstallPlan,
    InstallWishes,
    PinnedPackage,
    plan_install,
)
from dlready.install.table import CompatTable, CompatTableError, load_compat_table

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
    "facts_from_overrides",
    "facts_from_snapshot",
    "judge_installed_torch",
    "load_compat_table",
    "plan_install",
    "recommended_command_line",
    "validate_overrides",
]
