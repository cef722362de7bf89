"""The NVIDIA kernel module's version, read from ``/proc`` and ``/sys`` without NVML.

When NVML fails (library and module of different versions, no permission), the loaded
module still says which driver the machine runs; install-cmd uses it to name the command
that will fit once the driver works.
"""

from __future__ import annotations

import re

from dlready.model import Reading, Source
from dlready.probes.hostfs import HostFiles, RealHostFiles

PROC_VERSION = "/proc/driver/nvidia/version"
SYS_VERSION = "/sys/module/nvidia/version"
# "NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 ..." or
# "NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.159.04  Release Build ..."
_NVRM = re.compile(r"Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)\b")
_VERSION = re.compile(r"^\d+\.\d+(?:\.\d+)?$")


def read_kernel_module_version(files: HostFiles) -> Reading[str]:
    """The loaded NVIDIA kernel module's version, from /proc, else /sys."""
    proc = files.read_text(PROC_VERSION)
    if proc:
        match = _NVRM.search(proc)
        if match:
            return Reading.read(match.group(1), Source.PROCFS)
    sys_text = (files.read_text(SYS_VERSION) or "").strip()
    if _VERSION.match(sys_text):
        return Reading.read(sys_text, Source.SYSFS)
    return Reading.unsupported(
        Source.PROCFS, f"no NVIDIA kernel module is loaded ({PROC_VERSION} is not readable)"
    )


def probe_kernel_module() -> Reading[str]:
    """This machine's NVIDIA kernel module version."""
    return read_kernel_module_version(RealHostFiles())
