"""A head start for ``dlready check``: probe the machine in a forked child while the command
line is still loading.

A cold ``check`` spends about two thirds of its time importing and running its command line
(typer), its judge and the install planner, and the rest importing and running the probes,
which do not depend on how the result will be judged or printed. On two or more cores both
can run at once: :func:`start` (called by :mod:`dlready.launch` when the arguments ask for a
``check`` that probes this machine) forks a child that probes exactly as ``check`` would
(:func:`probe_this_machine`), and :func:`take` hands the snapshot over when ``check`` asks
for the same probe. (The install planner stays in the parent: the child would then finish
after the parent needs it; ``benchmarks/bench_check.py`` measures it.)

It is only a head start, never a second opinion: when no child was started, it probed with
other settings, failed, crashed or ran out of time, :func:`take` returns None and ``check``
probes in its own process as it always did (and reports any failure from there).
"""

from __future__ import annotations

import atexit
import contextlib
from collections.abc import Callable

# Imported before the fork on purpose: the parent needs the model anyway, and the child then
# inherits it instead of importing it a second time on the other core (~15 ms, msgspec with it).
from dlready.model import MachineSnapshot
from dlready.probes.affinity import usable_cpus
from dlready.probes.isolated import ChildProbe, Finished, can_isolate

HEAD_START_TIMEOUT_S = 60.0
"""Generous on purpose: the probes inside bound themselves (NVML, the build tools' programs);
this only ends a child stuck for some other reason, and ``check`` then probes again."""

_pending: tuple[float | None, ChildProbe[MachineSnapshot]] | None = None


def probe_this_machine(
    psu_watts: float | None, meanwhile: Callable[[], object] | None = None
) -> MachineSnapshot:
    """The probe ``check`` runs, here in the child and in ``check`` without a head start.

    Raises:
        ValueError: when ``--psu-watts`` or ``DLREADY_PSU_WATTS`` is not a plausible wattage.
    """
    from dlready.probes.collect import collect_snapshot

    return collect_snapshot(psu_watts=psu_watts, validate_psu=True, meanwhile=meanwhile)


def start(psu_watts: float | None = None) -> bool:
    """Fork the child now, if this machine has a second core for it; whether it started."""
    global _pending
    if _pending is not None or not can_isolate() or usable_cpus() < 2:
        return False
    try:
        child: ChildProbe[MachineSnapshot] = ChildProbe(
            lambda: probe_this_machine(psu_watts), HEAD_START_TIMEOUT_S, own_group=True
        )
    except OSError:  # no process to spare (a process limit, a full pipe table): no head start
        return False
    _pending = (psu_watts, child)
    atexit.register(child.kill)  # a usage error or --help: the child must not outlive us
    return True


def take(
    psu_watts: float | None, meanwhile: Callable[[], object] | None = None
) -> MachineSnapshot | None:
    """The head start's snapshot if it probed with these settings and finished, else None.

    ``meanwhile`` runs first, while the child may still be at work; what it raises is left
    for the caller to meet again later.
    """
    global _pending
    if _pending is None:
        return None
    started_with, child = _pending
    _pending = None
    if started_with != psu_watts:
        child.kill()
        return None
    if meanwhile is not None:
        with contextlib.suppress(Exception):  # see the docstring
            meanwhile()
    outcome = child.result()
    return outcome.value if isinstance(outcome, Finished) else None
