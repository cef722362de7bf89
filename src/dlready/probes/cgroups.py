"""cgroup v1/v2 CPU and memory limits, so a container is judged by what it may use.

A container limited to 8 GiB on a 512 GiB host must be judged as 8 GiB; ``psutil`` and
``/proc/meminfo`` show the host. Limits are hierarchical, so every ancestor of this process's
cgroup is read and the smallest limit wins.
"""

from __future__ import annotations

import posixpath

from msgspec import Struct

from dlready.model import Reading, Source
from dlready.probes.hostfs import HostFiles

CGROUP_ROOT = "/sys/fs/cgroup"
# v1 kernels report "unlimited" as the largest page-aligned signed 64-bit number.
_V1_UNLIMITED_FLOOR = 1 << 62

_V1_CPU_DIRS = ("cpu,cpuacct", "cpu", "cpuacct,cpu")
_V1_MEMORY_DIRS = ("memory",)


class CgroupMembership(Struct, frozen=True):
    """Which cgroup this process is in: the v2 path, and the v1 path per controller."""

    unified_path: str | None
    v1_paths: dict[str, str]

    @property
    def is_v2_only(self) -> bool:
        """True on a pure cgroup v2 host."""
        return self.unified_path is not None and not self.v1_paths


def read_membership(files: HostFiles) -> CgroupMembership | None:
    """Parse ``/proc/self/cgroup`` (``id:controllers:path`` per line)."""
    text = files.read_text("/proc/self/cgroup")
    if text is None:
        return None
    unified: str | None = None
    v1: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy_id, controllers, path = parts
        if hierarchy_id == "0" and controllers == "":
            unified = path
        else:
            for controller in controllers.split(","):
                if controller:
                    v1[controller] = path
    return CgroupMembership(unified_path=unified, v1_paths=v1)


def _ancestors(path: str) -> list[str]:
    """``/a/b`` -> [``/a/b``, ``/a``, ``/``]."""
    result = []
    current = posixpath.normpath(path or "/")
    while True:
        result.append(current)
        if current == "/":
            return result
        current = posixpath.dirname(current)


def _candidate_files(base_dir: str, path: str, filename: str) -> list[str]:
    """Files to read for one limit, leaf first. Inside a cgroup namespace the recorded path may
    not exist under the mount, so the mount's own files are tried as well."""
    return [
        posixpath.join(base_dir, ancestor.lstrip("/"), filename) for ancestor in _ancestors(path)
    ]


def _smallest(values: list[float]) -> float | None:
    return min(values) if values else None


def cpu_limit_cpus(files: HostFiles) -> Reading[float]:
    """The CPU quota in CPUs (``cpu.max`` or ``cfs_quota_us / cfs_period_us``); None = no limit."""
    membership = read_membership(files)
    if membership is None:
        return Reading.unsupported(Source.PROCFS, "/proc/self/cgroup is not readable")
    if membership.unified_path is None and not membership.v1_paths:
        return Reading.unsupported(Source.PROCFS, "no cgroup membership in /proc/self/cgroup")
    quotas: list[float] = []
    if membership.unified_path is not None:
        for file in _candidate_files(CGROUP_ROOT, membership.unified_path, "cpu.max"):
            text = files.read_text(file)
            if text is None:
                continue
            fields = text.split()
            if len(fields) == 2 and fields[0] != "max":
                try:
                    quotas.append(int(fields[0]) / int(fields[1]))
                except (ValueError, ZeroDivisionError):
                    continue
    for controller_dir in _V1_CPU_DIRS:
        path = membership.v1_paths.get("cpu")
        if path is None:
            break
        base = posixpath.join(CGROUP_ROOT, controller_dir)
        for quota_file in _candidate_files(base, path, "cpu.cfs_quota_us"):
            quota_text = files.read_text(quota_file)
            period_text = files.read_text(quota_file.replace("cfs_quota_us", "cfs_period_us"))
            if quota_text is None or period_text is None:
                continue
            try:
                quota, period = int(quota_text.strip()), int(period_text.strip())
            except ValueError:
                continue
            if quota > 0 and period > 0:
                quotas.append(quota / period)
    return Reading.read(_smallest(quotas), Source.SYSFS)


def memory_limit_bytes(files: HostFiles) -> Reading[int]:
    """The cgroup memory limit in bytes (``memory.max`` or v1 ``memory.limit_in_bytes``);
    None = no limit set."""
    membership = read_membership(files)
    if membership is None:
        return Reading.unsupported(Source.PROCFS, "/proc/self/cgroup is not readable")
    limits: list[float] = []
    if membership.unified_path is not None:
        for file in _candidate_files(CGROUP_ROOT, membership.unified_path, "memory.max"):
            text = files.read_text(file)
            if text is None or text.strip() == "max":
                continue
            try:
                limits.append(int(text.strip()))
            except ValueError:
                continue
    path = membership.v1_paths.get("memory")
    if path is not None:
        for controller_dir in _V1_MEMORY_DIRS:
            base = posixpath.join(CGROUP_ROOT, controller_dir)
            for file in _candidate_files(base, path, "memory.limit_in_bytes"):
                text = files.read_text(file)
                if text is None:
                    continue
                try:
                    value = int(text.strip())
                except ValueError:
                    continue
                if 0 < value < _V1_UNLIMITED_FLOOR:
                    limits.append(value)
    smallest = _smallest(limits)
    return Reading.read(None if smallest is None else int(smallest), Source.SYSFS)
