"""Memory probe: ``/proc/meminfo`` and the cgroup limit on Linux, psutil elsewhere."""

from __future__ import annotations

from dlready.model import MemoryInfo, Reading, Source
from dlready.probes import cgroups
from dlready.probes.host_gateway import HostBackend
from dlready.probes.hostfs import HostFiles


def parse_meminfo_bytes(text: str) -> dict[str, int]:
    """``/proc/meminfo`` as bytes per key (the file's ``kB`` means KiB)."""
    values: dict[str, int] = {}
    for line in text.splitlines():
        key, sep, rest = line.partition(":")
        fields = rest.split()
        if not sep or not fields:
            continue
        try:
            number = int(fields[0])
        except ValueError:
            continue
        values[key.strip()] = number * 1024 if len(fields) > 1 and fields[1] == "kB" else number
    return values


def effective_total(total: Reading[int], limit: Reading[int]) -> Reading[int]:
    """What this process may really use: the smaller of RAM and the cgroup limit."""
    if not total.ok or total.value is None:
        return total
    if limit.ok and limit.value is not None and limit.value < total.value:
        return Reading.read(limit.value, Source.DERIVED)
    return Reading.read(total.value, Source.DERIVED)


def probe_memory(files: HostFiles, host: HostBackend) -> MemoryInfo:
    """Fill :class:`MemoryInfo`."""
    text = files.read_text("/proc/meminfo")
    if text is not None:
        meminfo = parse_meminfo_bytes(text)
        total = _meminfo_reading(meminfo, "MemTotal")
        limit = cgroups.memory_limit_bytes(files)
        return MemoryInfo(
            total_bytes=total,
            available_bytes=_meminfo_reading(meminfo, "MemAvailable"),
            swap_total_bytes=_meminfo_reading(meminfo, "SwapTotal"),
            cgroup_limit_bytes=limit,
            effective_total_bytes=effective_total(total, limit),
        )
    ps = host.psutil_memory()
    if ps is None:
        reason = "neither /proc/meminfo nor psutil is available"
        return MemoryInfo(
            total_bytes=Reading.failed(Source.PSUTIL, reason),
            available_bytes=Reading.failed(Source.PSUTIL, reason),
            swap_total_bytes=Reading.failed(Source.PSUTIL, reason),
            effective_total_bytes=Reading.failed(Source.PSUTIL, reason),
        )
    total_ps = Reading.read(ps.total_bytes, Source.PSUTIL)
    no_limit: Reading[int] = Reading.unsupported(Source.PLATFORM, "cgroups exist only on Linux")
    return MemoryInfo(
        total_bytes=total_ps,
        available_bytes=Reading.read(ps.available_bytes, Source.PSUTIL),
        swap_total_bytes=Reading.read(ps.swap_total_bytes, Source.PSUTIL),
        cgroup_limit_bytes=no_limit,
        effective_total_bytes=effective_total(total_ps, no_limit),
    )


def _meminfo_reading(meminfo: dict[str, int], key: str) -> Reading[int]:
    if key in meminfo:
        return Reading.read(meminfo[key], Source.PROCFS)
    return Reading.unsupported(Source.PROCFS, f"no {key} in /proc/meminfo")
