"""Faults injected into fleet ranks (``DLREADY_FLEET_TEST_HOOK=fleet_hooks:NAME``).

The fleet's runtime calls the named function with its :class:`~dlready.fleet.runtime.Hooks`
and the rank right after torch is imported, so a test can make one rank contribute a wrong
value, or die or stop itself at a chosen point, inside the real processes.
:func:`terminate_when_torch_loads` acts earlier, before the runtime exists.
"""

from __future__ import annotations

import importlib.abc
import os
import signal
import sys
from typing import Any


def corrupt_rank_1(hooks: Any, rank: int) -> None:
    """Rank 1 adds 1 to everything it contributes to all_reduce and all_gather."""
    if rank != 1:
        return

    def contribution(op: str, _rank: int, tensor: Any) -> Any:
        if op in ("all_reduce", "all_gather"):
            return tensor + 1
        return tensor

    hooks.contribution = contribution


def _signal_at_collectives(hooks: Any, rank: int, victim: int, signum: int) -> None:
    if rank != victim:
        return

    def contribution(op: str, _rank: int, tensor: Any) -> Any:
        if op == "all_reduce":
            os.kill(os.getpid(), signum)
        return tensor

    hooks.contribution = contribution


def kill_rank_1_in_collectives(hooks: Any, rank: int) -> None:
    """Rank 1 is killed (SIGKILL, as the out-of-memory killer does) as the collectives start."""
    _signal_at_collectives(hooks, rank, 1, signal.SIGKILL)


def stop_rank_1_in_collectives(hooks: Any, rank: int) -> None:
    """Rank 1 is stopped (SIGSTOP) as the collectives start; the test continues or kills it."""
    _signal_at_collectives(hooks, rank, 1, signal.SIGSTOP)


def cancel_torchrun_in_collectives(hooks: Any, rank: int) -> None:
    """Rank 1 sends SIGTERM to torchrun (its parent) as the collectives start, as a person
    or a scheduler cancelling the job does: every rank is alive and gets the signal."""
    if rank != 1:
        return

    def contribution(op: str, _rank: int, tensor: Any) -> Any:
        if op == "all_reduce":
            os.kill(os.getppid(), signal.SIGTERM)
        return tensor

    hooks.contribution = contribution


class _SignalAtTorchImport(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any, target: Any = None) -> None:
        if name == "torch":
            sys.meta_path.remove(self)
            os.kill(os.getpid(), signal.SIGTERM)


def terminate_when_torch_loads() -> None:
    """This process gets SIGTERM as ``import torch`` begins, as torchrun sends it to every rank
    when one dies while the others are still loading torch."""
    sys.meta_path.insert(0, _SignalAtTorchImport())
