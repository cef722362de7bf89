"""OS, Python, container, WSL and virtual-machine detection."""

from __future__ import annotations

import re

from dlready.model import OperatingSystem, PlatformInfo, Reading, Source
from dlready.probes.host_gateway import HostBackend
from dlready.probes.hostfs import HostFiles

_CONTAINER_CGROUP_MARKERS = ("docker", "kubepods", "containerd", "libpod", "lxc", "crio")
_VM_VENDOR_MARKERS = (
    "kvm",
    "qemu",
    "vmware",
    "virtualbox",
    "xen",
    "microsoft corporation",
    "amazon ec2",
    "google compute engine",
    "openstack",
    "firecracker",
)


def operating_system(system: str) -> OperatingSystem:
    """Map ``platform.system()`` to the OS families dlready distinguishes."""
    return {
        "linux": OperatingSystem.LINUX,
        "windows": OperatingSystem.WINDOWS,
        "darwin": OperatingSystem.MACOS,
    }.get(system.lower(), OperatingSystem.OTHER)


def _os_release(files: HostFiles) -> Reading[str]:
    text = files.read_text("/etc/os-release") or files.read_text("/usr/lib/os-release")
    if text is None:
        return Reading.unsupported(Source.PROCFS, "no /etc/os-release")
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)"?', text, re.MULTILINE)
    return Reading.read(match.group(1) if match else None, Source.PROCFS)


def _in_container(files: HostFiles, environ: dict[str, str]) -> Reading[bool]:
    if files.read_text("/.dockerenv") is not None or files.read_text("/run/.containerenv"):
        return Reading.read(True, Source.PROCFS)
    if "KUBERNETES_SERVICE_HOST" in environ or environ.get("container"):
        return Reading.read(True, Source.ENVIRONMENT)
    cgroup = (files.read_text("/proc/1/cgroup") or "") + (
        files.read_text("/proc/self/cgroup") or ""
    )
    if any(marker in cgroup for marker in _CONTAINER_CGROUP_MARKERS):
        return Reading.read(True, Source.PROCFS)
    return Reading.read(False, Source.PROCFS)


def _is_wsl(files: HostFiles, environ: dict[str, str]) -> Reading[bool]:
    if "WSL_DISTRO_NAME" in environ or "WSL_INTEROP" in environ:
        return Reading.read(True, Source.ENVIRONMENT)
    version = (
        files.read_text("/proc/version") or files.read_text("/proc/sys/kernel/osrelease") or ""
    )
    return Reading.read("microsoft" in version.lower() or "wsl" in version.lower(), Source.PROCFS)


def _is_virtual_machine(files: HostFiles) -> Reading[bool]:
    vendor = " ".join(
        (files.read_text(path) or "").strip().lower()
        for path in ("/sys/class/dmi/id/sys_vendor", "/sys/class/dmi/id/product_name")
    )
    if any(marker in vendor for marker in _VM_VENDOR_MARKERS):
        return Reading.read(True, Source.SYSFS)
    if files.read_text("/sys/hypervisor/type"):
        return Reading.read(True, Source.SYSFS)
    cpuinfo = files.read_text("/proc/cpuinfo") or ""
    if re.search(r"^flags\s*:.*\bhypervisor\b", cpuinfo, re.MULTILINE):
        return Reading.read(True, Source.PROCFS)
    return Reading.read(False, Source.PROCFS)


def probe_platform(files: HostFiles, host: HostBackend) -> PlatformInfo:
    """Fill :class:`PlatformInfo`."""
    os_family = operating_system(host.system())
    environ = dict(host.environ())
    hostname = host.hostname()
    linux = os_family is OperatingSystem.LINUX
    not_linux: Reading[bool] = Reading.unsupported(Source.PLATFORM, "Linux-only detection")
    kernel = (files.read_text("/proc/sys/kernel/osrelease") or "").strip() if linux else ""
    return PlatformInfo(
        os=os_family,
        os_release=_os_release(files)
        if linux
        else Reading.unsupported(Source.PLATFORM, "os-release is Linux-only"),
        kernel=Reading.read(kernel, Source.PROCFS)
        if kernel
        else Reading.unsupported(Source.PROCFS, "kernel release not readable"),
        machine_arch=Reading.read(host.machine(), Source.PLATFORM),
        python_version=Reading.read(host.python_version(), Source.PLATFORM),
        hostname=Reading.read(hostname, Source.PLATFORM)
        if hostname
        else Reading.unsupported(Source.PLATFORM, "no host name"),
        in_container=_in_container(files, environ) if linux else not_linux,
        is_wsl=_is_wsl(files, environ) if linux else not_linux,
        is_virtual_machine=_is_virtual_machine(files) if linux else not_linux,
    )
