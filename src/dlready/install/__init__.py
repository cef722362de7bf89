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
        explain_no_command,
        judge_installed_torch,
        recommended_command_line,
    )
    from dlready.install.plan import Candidate, InstallPlan, InstallWishes, PinnedPackage
    from dlready.install.planner import plan_install
    from dlready.install.table import CompatTable, CompatTableError, load_compat_table
    from dlready.install.torch_fit import TorchFit

# Loaded on first use, with plain imports (PEP 562), so ``install-cmd`` (which imports the
# submodules it needs) does not pay for the judge, and ``check`` (which imports
# ``dlready.install.versions``) does not pay for the planner until it asks for a command.
_FACTS = {
    "Fact",
    "FactOverrides",
    "MachineFacts",
    "apply_overrides",
    "facts_from_overrides",
    "facts_from_snapshot",
    "validate_overrides",
}
_JUDGE = {"explain_no_command", "judge_installed_torch", "recommended_command_line"}
_PLAN = {"Candidate", "InstallPlan", "InstallWishes", "PinnedPackage"}
_TABLE = {"CompatTable", "CompatTableError", "load_compat_table"}


def __getattr__(name: str) -> Any:
    """Import the public names lazily (PEP 562)."""
    if name == "PlanError":
        from dlready.install import errors as module
    elif name in _FACTS:
        from dlready.install import facts as module  # type: ignore[no-redef]
    elif name in _JUDGE:
        from dlready.install import judge as module  # type: ignore[no-redef]
    elif name in _PLAN:
        from dlready.install import plan as module  # type: ignore[no-redef]
    elif name == "plan_install":
        from dlready.install import planner as module  # type: ignore[no-redef]
    elif name in _TABLE:
        from dlready.install import table as module  # type: ignore[no-redef]
    elif name == "TorchFit":
        from dlready.install import torch_fit as module  # type: ignore[no-redef]
    else:
        raise AttributeError(f"module 'dlready.install' has no attribute {name!r}")
    value = module.__dict__[name]
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
