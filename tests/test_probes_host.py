"""CPU, memory, cgroup, platform, PSU and torch-metadata probes, replayed from real recordings."""

from __future__ import annotations

import os

import pytest

from conftest import load_capture, load_procfiles
from dlready.model import CpuClass, OperatingSystem, ReadState, Source
from dlready.probes import affinity, cgroups
from dlready.probes.cpu import classify_cpu, probe_cpu
from dlready.probes.host_gateway import PsutilCpu, PsutilMemory, ReplayHost
from dlready.probes.hostfs import RealHostFiles, ReplayHostFiles
from dlready.probes.memory import parse_meminfo_bytes, probe_memory
from dlready.probes.pci import probe_pci_display_devices
from dlready.probes.platform_probe import probe_platform
from dlready.probes.psu import declared_capacity_w, parse_dmi39_capacity_w, read_dmi_capacity_w
from dlready.probes.torch_meta import probe_torch, torch_install_from_version_py

GIB = 1024**3


def replay(machine: str) -> tuple[ReplayHostFiles, ReplayHost]:
    return ReplayHostFiles.from_procfiles(load_procfiles(machine)), ReplayHost.from_capture(
        load_capture(machine)
    )


# --- CPU ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("brand", "expected"),
    [
        pytest.param("Intel(R) Core(TM) i5-10400 CPU @ 2.90GHz", CpuClass.CORE_I5, id="i5-10400"),
        pytest.param("Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz", CpuClass.CORE_I7, id="i7-8700"),
        pytest.param("12th Gen Intel(R) Core(TM) i9-12900K", CpuClass.CORE_I9, id="i9-12900K"),
        pytest.param("Intel(R) Core(TM) i3-8100 CPU @ 3.60GHz", CpuClass.CORE_I3, id="i3-8100"),
        pytest.param("Intel(R) Core(TM) Ultra 7 155H", CpuClass.CORE_ULTRA, id="ultra-7-155H"),
        pytest.param("AMD Ryzen 9 7950X 16-Core Processor", CpuClass.RYZEN_9, id="ryzen-9-7950X"),
        pytest.param("AMD Ryzen 5 3600 6-Core Processor", CpuClass.RYZEN_5, id="ryzen-5-3600"),
        pytest.param("AMD Ryzen 7 5800X3D 8-Core Processor", CpuClass.RYZEN_7, id="ryzen-7"),
        pytest.param("AMD Ryzen 3 3200G with Radeon Vega Graphics", CpuClass.RYZEN_3, id="ryzen-3"),
        pytest.param(
            "AMD Ryzen Threadripper PRO 5995WX 64-Cores", CpuClass.THREADRIPPER, id="threadripper"
        ),
        pytest.param("AMD EPYC", CpuClass.EPYC, id="epyc-vm-recorded"),
        pytest.param("AMD EPYC 9654 96-Core Processor", CpuClass.EPYC, id="epyc-9654"),
        pytest.param("Intel(R) Xeon(R) Processor", CpuClass.XEON, id="xeon-vm-recorded"),
        pytest.param("Intel(R) Xeon(R) Platinum 8480+", CpuClass.XEON, id="xeon-8480"),
        pytest.param("Apple M2", CpuClass.APPLE_M, id="apple-m2"),
        pytest.param("Neoverse-V2", CpuClass.OTHER, id="grace"),
    ],
)
def test_classify_cpu(brand: str, expected: CpuClass) -> None:
    assert classify_cpu(brand) is expected


def test_cpu_probe_on_the_recorded_vm_reports_unknown_clocks() -> None:
    files, host = replay("cpu-only-epyc-vm")
    cpu = probe_cpu(files, host)
    assert cpu.brand.value == "AMD EPYC"
    assert cpu.vendor.value == "AuthenticAMD"
    assert cpu.logical_cpus.value == 2
    assert cpu.physical_cores.value == 2
    assert cpu.usable_cpus.value == 2.0
    assert cpu.cpu_class.value == "epyc"
    # The VM has no cpufreq and psutil reports max 0: unknown, never a guess from "cpu MHz".
    assert cpu.max_clock_mhz.state is ReadState.UNSUPPORTED
    assert cpu.max_clock_mhz.value is None
    assert "virtual machines" in (cpu.max_clock_mhz.reason or "")
    assert cpu.base_clock_mhz.value is None
    assert cpu.dl_isa_flags.value is not None
    assert {"avx2", "avx512f", "avx512_bf16"} <= set(cpu.dl_isa_flags.value)
    assert "amx_tile" not in cpu.dl_isa_flags.value


def test_cpu_probe_on_the_h100_server_sees_amx() -> None:
    files, host = replay("h100-80gb-hbm3")
    cpu = probe_cpu(files, host)
    assert cpu.brand.value == "Intel(R) Xeon(R) Processor"
    assert cpu.logical_cpus.value == 16
    assert cpu.dl_isa_flags.value is not None
    assert {"amx_tile", "amx_bf16", "avx512_bf16"} <= set(cpu.dl_isa_flags.value)


def test_cpu_clocks_come_from_cpufreq_when_present() -> None:
    files, host = replay("cpu-only-epyc-vm")
    files = files.with_files(
        {
            "/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq": "4600000\n",
            "/sys/devices/system/cpu/cpu1/cpufreq/cpuinfo_max_freq": "4700000\n",
            "/sys/devices/system/cpu/cpu0/cpufreq/base_frequency": "3200000\n",
        }
    )
    cpu = probe_cpu(files, host)
    assert cpu.max_clock_mhz.value == 4700.0
    assert cpu.max_clock_mhz.source is Source.SYSFS
    assert cpu.base_clock_mhz.value == 3200.0


def test_cpu_base_clock_from_intel_brand_string() -> None:
    _, host = replay("cpu-only-epyc-vm")
    text = load_procfiles("cpu-only-epyc-vm").replace(
        "model name\t: AMD EPYC", "model name\t: Intel(R) Core(TM) i7-8700 CPU @ 3.20GHz"
    )
    cpu = probe_cpu(ReplayHostFiles.from_procfiles(text), host)
    assert cpu.base_clock_mhz.value == 3200.0
    assert cpu.cpu_class.value == "core-i7"


def test_cpu_quota_limits_usable_cpus() -> None:
    files, host = replay("cpu-only-epyc-vm")
    files = files.with_files({"/sys/fs/cgroup/cpu/cpu.cfs_quota_us": "150000\n"})
    cpu = probe_cpu(files, host)
    assert cpu.cgroup_cpu_limit_cpus.value == 1.5
    assert cpu.usable_cpus.value == 1.5


def test_cpu_fallback_without_proc_uses_psutil_and_cpuinfo() -> None:
    capture = load_capture("cpu-only-epyc-vm")
    host = ReplayHost.from_capture(capture, system="Darwin", machine="arm64")
    cpu = probe_cpu(ReplayHostFiles({}), host)
    assert cpu.brand.source is Source.PY_CPUINFO
    assert cpu.logical_cpus.value == 2
    assert cpu.max_clock_mhz.state is ReadState.UNSUPPORTED  # psutil max is 0.0 there
    assert cpu.cgroup_cpu_limit_cpus.state is ReadState.UNSUPPORTED


# --- cgroups and memory ------------------------------------------------------------------------


def test_meminfo_units() -> None:
    values = parse_meminfo_bytes("MemTotal:       24684092 kB\nHugePages_Total:       0\n")
    assert values == {"MemTotal": 24684092 * 1024, "HugePages_Total": 0}


def test_memory_on_the_recorded_vm() -> None:
    files, host = replay("cpu-only-epyc-vm")
    memory = probe_memory(files, host)
    assert memory.total_bytes.value == 24684092 * 1024
    # v1 "unlimited" (9223372036854771712) is no limit.
    assert memory.cgroup_limit_bytes.state is ReadState.READ
    assert memory.cgroup_limit_bytes.value is None
    assert memory.effective_total_bytes.value == memory.total_bytes.value


CONTAINER_LIMIT_BYTES = 8 * GIB


@pytest.mark.parametrize(
    ("machine", "limit_files"),
    [
        pytest.param(
            "cpu-only-epyc-vm",
            # cgroup v1: the recorded hierarchy, limit file at the process's own cgroup.
            {
                "/sys/fs/cgroup/memory/process_api/02e3d73b7812d0684e6dcfc374c88f22/"
                "memory.limit_in_bytes": f"{CONTAINER_LIMIT_BYTES}\n"
            },
            id="cgroup-v1-container",
        ),
        pytest.param(
            "h200-141gb",
            # cgroup v2: the recorded unified path, memory.max set by the container runtime.
            {
                "/sys/fs/cgroup/process_api/4e0a37cd3fd09b08c8d58828ed523afe/memory.max": (
                    f"{CONTAINER_LIMIT_BYTES}\n"
                )
            },
            id="cgroup-v2-container",
        ),
        pytest.param(
            "h200-141gb",
            # Inside a cgroup namespace the process sees its own cgroup as the mount's root.
            {"/sys/fs/cgroup/memory.max": f"{CONTAINER_LIMIT_BYTES}\n"},
            id="cgroup-v2-namespace-root",
        ),
    ],
)
def test_container_memory_limit_wins_over_host_ram(
    machine: str, limit_files: dict[str, str]
) -> None:
    files, host = replay(machine)
    memory = probe_memory(files.with_files(limit_files), host)
    assert memory.total_bytes.value is not None
    assert memory.total_bytes.value > 20 * GIB
    assert memory.cgroup_limit_bytes.value == CONTAINER_LIMIT_BYTES
    assert memory.effective_total_bytes.value == CONTAINER_LIMIT_BYTES


def test_cgroup_v2_cpu_max() -> None:
    files, _ = replay("h200-141gb")
    files = files.with_files(
        {"/sys/fs/cgroup/process_api/4e0a37cd3fd09b08c8d58828ed523afe/cpu.max": "400000 100000\n"}
    )
    assert cgroups.cpu_limit_cpus(files).value == 4.0
    unlimited = files.with_files({"/sys/fs/cgroup/cpu.max": "max 100000\n"})
    assert cgroups.cpu_limit_cpus(unlimited).value == 4.0


def test_memory_without_proc_uses_psutil() -> None:
    host = ReplayHost(psutil_memory=PsutilMemory(16 * GIB, 8 * GIB, 0), system="Windows")
    memory = probe_memory(ReplayHostFiles({}), host)
    assert memory.total_bytes.source is Source.PSUTIL
    assert memory.effective_total_bytes.value == 16 * GIB


def test_memory_without_any_source_fails_with_reason() -> None:
    memory = probe_memory(ReplayHostFiles({}), ReplayHost(system="Windows"))
    assert memory.total_bytes.state is ReadState.FAILED
    assert memory.total_bytes.reason


# --- platform -------------------------------------------------------------------------------


def test_platform_on_the_recorded_vm() -> None:
    files, host = replay("cpu-only-epyc-vm")
    info = probe_platform(files, host)
    assert info.os is OperatingSystem.LINUX
    assert info.os_release.value == "Debian GNU/Linux 12 (bookworm)"
    assert info.is_virtual_machine.value is True  # "hypervisor" cpu flag
    assert info.is_wsl.value is False


def test_platform_detects_wsl_and_containers() -> None:
    files, host = replay("cpu-only-epyc-vm")
    wsl = files.with_files(
        {"/proc/version": "Linux version 5.15.167.4-microsoft-standard-WSL2 (root@build)\n"}
    )
    assert probe_platform(wsl, host).is_wsl.value is True
    docker = files.with_files({"/.dockerenv": ""})
    assert probe_platform(docker, host).in_container.value is True


# --- PCI, PSU --------------------------------------------------------------------------------

# The H100's PCI identity as NVML recorded it: bus 0000:00:06.0, pciDeviceId 0x233010DE.
H100_PCI = {
    "/sys/bus/pci/devices/0000:00:06.0/class": "0x030200\n",
    "/sys/bus/pci/devices/0000:00:06.0/vendor": "0x10de\n",
    "/sys/bus/pci/devices/0000:00:06.0/device": "0x2330\n",
    "/sys/bus/pci/devices/0000:00:00.0/class": "0x060000\n",
    "/sys/bus/pci/devices/0000:00:00.0/vendor": "0x8086\n",
}


def test_pci_display_devices_are_found_without_a_driver() -> None:
    devices = probe_pci_display_devices(ReplayHostFiles(H100_PCI))
    assert devices.value is not None
    assert [(d.bus_id, d.vendor_id, d.device_id, d.driver) for d in devices.value] == [
        ("0000:00:06.0", "0x10de", "0x2330", None)
    ]


def _dmi39(capacity_w: int) -> bytes:
    # SMBIOS type 39, length 0x16: header, unit group, 7 string indexes, capacity WORD at 0x0C.
    body = bytes([39, 0x16, 0x00, 0x01, 1, 1, 2, 3, 4, 5, 6, 7])
    return body + capacity_w.to_bytes(2, "little") + bytes(8)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(_dmi39(1600), 1600, id="1600W"),
        pytest.param(_dmi39(0x8000), None, id="unknown-8000h"),
        pytest.param(b"\x27\x04", None, id="truncated"),
        pytest.param(bytes([38]) + _dmi39(900)[1:], None, id="wrong-type"),
    ],
)
def test_dmi39_capacity(raw: bytes, expected: int | None) -> None:
    assert parse_dmi39_capacity_w(raw) == expected


def test_dmi_redundant_supplies_count_once() -> None:
    files = ReplayHostFiles(
        {
            "/sys/firmware/dmi/entries/39-0/raw": _dmi39(1600),
            "/sys/firmware/dmi/entries/39-1/raw": _dmi39(1600),
            "/sys/firmware/dmi/entries/0-0/raw": b"\x00",
        }
    )
    assert read_dmi_capacity_w(files).value == 1600.0
    assert read_dmi_capacity_w(ReplayHostFiles({})).state is ReadState.UNSUPPORTED


def test_declared_psu_flag_wins_over_environment() -> None:
    assert declared_capacity_w(850, {"DLREADY_PSU_WATTS": "1200"}).value == 850
    env = declared_capacity_w(None, {"DLREADY_PSU_WATTS": "1200"})
    assert (env.value, env.source) == (1200.0, Source.ENVIRONMENT)
    assert declared_capacity_w(None, {}).state is ReadState.UNSUPPORTED
    with pytest.raises(ValueError, match="DLREADY_PSU_WATTS"):
        declared_capacity_w(None, {"DLREADY_PSU_WATTS": "lots"})
    with pytest.raises(ValueError, match="between 1 and 100000"):
        declared_capacity_w(None, {"DLREADY_PSU_WATTS": "-5"})


# --- torch metadata ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("version_py", "version", "variant", "cuda"),
    [
        pytest.param(
            "__version__ = '2.13.0+cpu'\ncuda: Optional[str] = None\nhip: Optional[str] = None\n",
            "2.13.0",
            "cpu",
            None,
            id="cpu-wheel-on-this-machine",
        ),
        pytest.param(
            # The H100 server's torch (collect_env: 2.11.0+cu130, CUDA 13.0).
            "__version__ = '2.11.0+cu130'\ncuda: Optional[str] = '13.0'\nhip: Optional[str] = None\n",
            "2.11.0",
            "cu130",
            "13.0",
            id="cu130-index-wheel",
        ),
        pytest.param(
            # PyPI's Linux wheel carries no local version but is a CUDA build.
            "__version__ = '2.9.0'\ncuda: Optional[str] = '12.8'\nhip: Optional[str] = None\n",
            "2.9.0",
            "cu128",
            "12.8",
            id="pypi-default-cuda",
        ),
        pytest.param(
            "__version__ = '2.9.0+rocm6.4'\ncuda: Optional[str] = None\nhip: Optional[str] = "
            "'6.4.43482'\n",
            "2.9.0",
            "rocm6.4",
            None,
            id="rocm",
        ),
        pytest.param(
            "__version__ = '2.2.2'\ncuda: Optional[str] = None\nhip: Optional[str] = None\n",
            "2.2.2",
            "cpu",
            None,
            id="macos-wheel",
        ),
    ],
)
def test_torch_metadata(version_py: str, version: str, variant: str, cuda: str | None) -> None:
    info = torch_install_from_version_py(version_py, "/site-packages/torch")
    assert info.installed
    assert info.version.value == version
    assert info.local_variant.value == variant
    assert info.cuda_version.value == cuda


def test_torch_probe_reads_the_installed_cpu_build_without_importing_it() -> None:
    import sys

    was_imported = "torch" in sys.modules
    info = probe_torch()
    assert info.installed
    assert info.version.value == "2.13.0"
    assert info.local_variant.value == "cpu"
    assert ("torch" in sys.modules) == was_imported


def test_real_hostfs_reads_and_lists() -> None:
    files = RealHostFiles()
    assert files.read_text("/proc/self/status") is not None
    assert files.read_text("/no/such/file") is None
    assert files.list_dir("/no/such/dir") is None
    assert "self" in (files.list_dir("/proc") or [])
    # /proc/sys refuses one large read; the kernel release must still come back.
    assert (files.read_text("/proc/sys/kernel/osrelease") or "").strip()


def test_replay_host_from_capture_carries_psutil() -> None:
    host = ReplayHost.from_capture(load_capture("h100-80gb-hbm3"))
    assert host.psutil_cpu() == PsutilCpu(16, 16, 2100.0, None)
    memory = host.psutil_memory()
    assert memory is not None
    assert memory.total_bytes == 135148564480


def test_usable_cpus_reads_the_affinity_mask_else_counts_the_cpus(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if hasattr(os, "sched_getaffinity"):
        assert affinity.affinity_cpus() == len(os.sched_getaffinity(0))
        assert affinity.usable_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert affinity.affinity_cpus() is None
    assert affinity.usable_cpus() == 6
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # the system cannot count them
    assert affinity.usable_cpus() == 1
