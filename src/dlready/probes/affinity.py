"""The CPUs this process may run on: the one reading of the scheduler's affinity mask.

Kept in a module of its own, with nothing but ``os``, because ``check``'s head start asks it
before anything else is imported (:mod:`dlready.head_start`).
"""

from __future__ import annotations

import os


def affinity_cpus() -> int | None:
    """CPUs this process may run on (the Linux affinity mask), or None where there is none."""
    getter = getattr(os, "sched_getaffinity", None)
    if getter is None:
        return None
    try:
        return len(getter(0))
    except OSError:
        return None


def usable_cpus() -> int:
    """The affinity mask's CPUs, else every CPU the system counts, else 1."""
    return affinity_cpus() or os.cpu_count() or 1
