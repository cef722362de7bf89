"""The only module that imports psutil and py-cpuinfo, and asks the OS about this process.

On Linux the CPU and memory probes read ``/proc`` and ``/sys`` (through :mod:`hostfs`) and need
neither library: psutil costs ~25 ms to import and py-cpuinfo's ``get_cpu_info()`` ~1.1 s.
Both remain the source on macOS and Windows, and the fallback where ``/proc`` is missing.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Mapping
from typing import Any, Protocol

from msgspec import Struct

from dlready.probes.affinity import affinity_cpus


class PsutilCpu(Struct, frozen=True):
    """What psutil knows about the CPU."""

    logical_cpus: int | None
    physical_cores: int | None
    current_mhz: float | None
    max_mhz: float | None


class PsutilMemory(Struct, frozen=True):
    """What psutil knows about memory."""

    total_bytes: int
    available_bytes: int
    swap_total_bytes: int


class HostBackend(Protocol):
    """Facts about the OS and this process that are not files."""

    def system(self) -> str:
        """``platform.system()``: Linux, Darwin, Windows."""
        ...

    def machine(self) -> str:
        """``platform.machine()``: x86_64, aarch64, arm64, AMD64."""
        ...

    def python_version(self) -> str:
        """X.Y.Z of the running interpreter."""
        ...

    def hostname(self) -> str | None:
        """The host name, or None."""
        ...

    def environ(self) -> Mapping[str, str]:
        """The process environment."""
        ...

    def affinity_cpus(self) -> int | None:
        """CPUs this process may run on, or None where the OS cannot say."""
        ...

    def os_cpu_count(self) -> int | None:
        """``os.cpu_count()``."""
        ...

    def psutil_cpu(self) -> PsutilCpu | None:
        """CPU counts and clocks from psutil, or None when psutil is unusable."""
        ...

    def psutil_memory(self) -> PsutilMemory | None:
        """Memory from psutil, or None when psutil is unusable."""
        ...

    def psutil_temperatures_c(self) -> dict[str, list[tuple[str, float]]] | None:
        """Sensor name -> [(label, °C)], or None where unsupported."""
        ...

    def cpuinfo(self) -> dict[str, Any] | None:
        """py-cpuinfo's full report (slow: about 1 s), or None when it fails."""
        ...


class RealHost:
    """This machine."""

    def system(self) -> str:
        """``platform.system()``."""
        return platform.system()

    def machine(self) -> str:
        """``platform.machine()``."""
        return platform.machine()

    def python_version(self) -> str:
        """X.Y.Z of the running interpreter."""
        return platform.python_version()

    def hostname(self) -> str | None:
        """The host name, or None."""
        try:
            return platform.node() or None
        except OSError:
            return None

    def environ(self) -> Mapping[str, str]:
        """The process environment."""
        return os.environ

    def affinity_cpus(self) -> int | None:
        """CPUs this process may run on (Linux affinity mask), else None."""
        return affinity_cpus()

    def os_cpu_count(self) -> int | None:
        """``os.cpu_count()``."""
        return os.cpu_count()

    def psutil_cpu(self) -> PsutilCpu | None:
        """CPU counts and clocks from psutil."""
        try:
            import psutil

            freq = psutil.cpu_freq()
            return PsutilCpu(
                logical_cpus=psutil.cpu_count(logical=True),
                physical_cores=psutil.cpu_count(logical=False),
                current_mhz=float(freq.current) if freq and freq.current else None,
                max_mhz=float(freq.max) if freq and freq.max else None,
            )
        except Exception:  # noqa: BLE001  # any psutil failure degrades to "unknown"
            return None

    def psutil_memory(self) -> PsutilMemory | None:
        """Memory from psutil."""
        try:
            import psutil

            memory = psutil.virtual_memory()
            swap = psutil.swap_memory()
            return PsutilMemory(int(memory.total), int(memory.available), int(swap.total))
        except Exception:  # noqa: BLE001  # any psutil failure degrades to "unknown"
            return None

    def psutil_temperatures_c(self) -> dict[str, list[tuple[str, float]]] | None:
        """Temperature sensors from psutil, where the platform has them."""
        try:
            import psutil

            sensors = getattr(psutil, "sensors_temperatures", None)
            if sensors is None:
                return None
            return {
                name: [(entry.label, float(entry.current)) for entry in entries]
                for name, entries in sensors().items()
            }
        except Exception:  # noqa: BLE001  # sensors are optional; failure means unknown
            return None

    def cpuinfo(self) -> dict[str, Any] | None:
        """py-cpuinfo's report; slow, so only a fallback where nothing faster exists."""
        try:
            import cpuinfo

            info: dict[str, Any] = cpuinfo.get_cpu_info()
            return info
        except Exception:  # noqa: BLE001  # py-cpuinfo fails on exotic platforms
            return None


class ReplayHost:
    """A recorded host: the fixtures' ``capture.json`` plus the facts a test sets."""

    def __init__(
        self,
        *,
        system: str = "Linux",
        machine: str = "x86_64",
        python_version: str = "3.11.7",
        hostname: str | None = "replay",
        environ: Mapping[str, str] | None = None,
        affinity_cpus: int | None = None,
        os_cpu_count: int | None = None,
        psutil_cpu: PsutilCpu | None = None,
        psutil_memory: PsutilMemory | None = None,
        temperatures_c: dict[str, list[tuple[str, float]]] | None = None,
        cpuinfo: dict[str, Any] | None = None,
    ) -> None:
        self._system = system
        self._machine = machine
        self._python_version = python_version
        self._hostname = hostname
        self._environ = dict(environ or {})
        self._affinity_cpus = affinity_cpus
        self._os_cpu_count = os_cpu_count
        self._psutil_cpu = psutil_cpu
        self._psutil_memory = psutil_memory
        self._temperatures_c = temperatures_c
        self._cpuinfo = cpuinfo

    @classmethod
    def from_capture(cls, capture: Mapping[str, Any], **overrides: Any) -> ReplayHost:
        """Build from a fixture's ``capture.json`` (its psutil and py-cpuinfo sections)."""
        ps = capture.get("psutil") or {}
        freq = ps.get("freq") or {}
        vm = ps.get("vm") or {}
        swap = ps.get("swap") or {}
        python = str(capture.get("python", "3.11.7")).split()[0]
        plat = str(capture.get("platform", "Linux-x86_64"))
        machine = "aarch64" if "aarch64" in plat else "x86_64"
        info = capture.get("cpuinfo")
        values: dict[str, Any] = {
            "system": plat.split("-", 1)[0],
            "machine": machine,
            "python_version": python,
            "affinity_cpus": ps.get("affinity"),
            "os_cpu_count": ps.get("logical"),
            "psutil_cpu": PsutilCpu(
                logical_cpus=ps.get("logical"),
                physical_cores=ps.get("physical"),
                current_mhz=freq.get("current") or None,
                max_mhz=freq.get("max") or None,
            )
            if ps
            else None,
            "psutil_memory": PsutilMemory(vm["total"], vm["available"], swap.get("total", 0))
            if vm
            else None,
            "cpuinfo": info if isinstance(info, dict) and "error" not in info else None,
        }
        values.update(overrides)
        return cls(**values)

    def system(self) -> str:
        """Recorded ``platform.system()``."""
        return self._system

    def machine(self) -> str:
        """Recorded ``platform.machine()``."""
        return self._machine

    def python_version(self) -> str:
        """Recorded interpreter version."""
        return self._python_version

    def hostname(self) -> str | None:
        """Recorded host name."""
        return self._hostname

    def environ(self) -> Mapping[str, str]:
        """Recorded environment."""
        return self._environ

    def affinity_cpus(self) -> int | None:
        """Recorded affinity count."""
        return self._affinity_cpus

    def os_cpu_count(self) -> int | None:
        """Recorded ``os.cpu_count()``."""
        return self._os_cpu_count

    def psutil_cpu(self) -> PsutilCpu | None:
        """Recorded psutil CPU facts."""
        return self._psutil_cpu

    def psutil_memory(self) -> PsutilMemory | None:
        """Recorded psutil memory facts."""
        return self._psutil_memory

    def psutil_temperatures_c(self) -> dict[str, list[tuple[str, float]]] | None:
        """Recorded sensors."""
        return self._temperatures_c

    def cpuinfo(self) -> dict[str, Any] | None:
        """Recorded py-cpuinfo report."""
        return self._cpuinfo
