"""CPU probe: ``/proc`` and ``/sys`` on Linux, psutil and py-cpuinfo elsewhere."""

from __future__ import annotations

import re
from typing import Any

from dlready.model import CpuClass, CpuInfo, Reading, Source
from dlready.probes import cgroups
from dlready.probes.host_gateway import HostBackend
from dlready.probes.hostfs import HostFiles

# Instruction-set extensions that change deep-learning speed on the CPU, by /proc/cpuinfo name.
# x86: AVX2/FMA for fp32 kernels, AVX-512 with its BF16/VNNI forms, AMX tiles (Sapphire Rapids+).
# ARM: NEON ("asimd"), SVE/SVE2, BF16 and int8 matrix multiply.
_DL_ISA_FLAGS = {
    "avx2": "avx2",
    "fma": "fma",
    "avx512f": "avx512f",
    "avx512_bf16": "avx512_bf16",
    "avx512_vnni": "avx512_vnni",
    "avx512_fp16": "avx512_fp16",
    "avx_vnni": "avx_vnni",
    "amx_tile": "amx_tile",
    "amx_bf16": "amx_bf16",
    "amx_int8": "amx_int8",
    "asimd": "neon",
    "asimddp": "neon_dotprod",
    "sve": "sve",
    "sve2": "sve2",
    "bf16": "bf16",
    "i8mm": "i8mm",
}

# Order matters: the first pattern that matches the brand string wins.
_CPU_CLASS_PATTERNS: tuple[tuple[str, CpuClass], ...] = (
    (r"threadripper", CpuClass.THREADRIPPER),
    (r"\bepyc\b", CpuClass.EPYC),
    (r"\bxeon\b", CpuClass.XEON),
    (r"core\(tm\) ultra|core ultra|\bultra [3579]\b", CpuClass.CORE_ULTRA),
    (r"\bi9[- ]", CpuClass.CORE_I9),
    (r"\bi7[- ]", CpuClass.CORE_I7),
    (r"\bi5[- ]", CpuClass.CORE_I5),
    (r"\bi3[- ]", CpuClass.CORE_I3),
    (r"ryzen(?:\(tm\))? 9|ryzen ai 9", CpuClass.RYZEN_9),
    (r"ryzen(?:\(tm\))? 7|ryzen ai 7", CpuClass.RYZEN_7),
    (r"ryzen(?:\(tm\))? 5|ryzen ai 5", CpuClass.RYZEN_5),
    (r"ryzen(?:\(tm\))? 3", CpuClass.RYZEN_3),
    (r"^apple m\d", CpuClass.APPLE_M),
)


def classify_cpu(brand: str) -> CpuClass:
    """The marketing class of a CPU from its brand string (pure; table-tested)."""
    lowered = brand.lower().strip()
    for pattern, cpu_class in _CPU_CLASS_PATTERNS:
        if re.search(pattern, lowered):
            return cpu_class
    return CpuClass.OTHER


def parse_proc_cpuinfo(text: str) -> list[dict[str, str]]:
    """``/proc/cpuinfo`` as one dict per processor block."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current[key.strip()] = value.strip()
    if current:
        blocks.append(current)
    return blocks


def _brand_base_clock_mhz(brand: str) -> float | None:
    """Intel brand strings carry the base clock: ``... CPU @ 2.10GHz``."""
    match = re.search(r"@\s*([\d.]+)\s*GHz", brand, re.IGNORECASE)
    return float(match.group(1)) * 1000.0 if match else None


def _read_int(files: HostFiles, path: str) -> int | None:
    text = files.read_text(path)
    if text is None:
        return None
    try:
        return int(text.strip())
    except ValueError:
        return None


def _cpu_dirs(files: HostFiles) -> list[str]:
    names = files.list_dir("/sys/devices/system/cpu") or []
    return [name for name in names if re.fullmatch(r"cpu\d+", name)]


def _sysfs_clock_mhz(files: HostFiles, filename: str) -> float | None:
    """Largest value of a cpufreq file over all CPUs (hybrid CPUs differ per core), in MHz."""
    values = []
    for cpu in _cpu_dirs(files):
        khz = _read_int(files, f"/sys/devices/system/cpu/{cpu}/cpufreq/{filename}")
        if khz:
            values.append(khz / 1000.0)
    return max(values) if values else None


def _physical_cores_linux(files: HostFiles, blocks: list[dict[str, str]]) -> int | None:
    pairs = {(b.get("physical id"), b.get("core id")) for b in blocks if "core id" in b}
    if pairs:
        return len(pairs)
    siblings = set()
    for cpu in _cpu_dirs(files):
        for name in ("core_cpus_list", "thread_siblings_list"):
            text = files.read_text(f"/sys/devices/system/cpu/{cpu}/topology/{name}")
            if text is not None:
                package = files.read_text(
                    f"/sys/devices/system/cpu/{cpu}/topology/physical_package_id"
                )
                siblings.add((package, text.strip()))
                break
    return len(siblings) or None


def _package_temperature_linux(files: HostFiles) -> Reading[float]:
    """CPU package temperature from hwmon (coretemp, k10temp, zenpower, ARM cpu_thermal)."""
    for hwmon in files.list_dir("/sys/class/hwmon") or []:
        base = f"/sys/class/hwmon/{hwmon}"
        name = (files.read_text(f"{base}/name") or "").strip()
        if name not in ("coretemp", "k10temp", "zenpower", "cpu_thermal"):
            continue
        readings = []
        for entry in files.list_dir(base) or []:
            match = re.fullmatch(r"temp(\d+)_input", entry)
            if not match:
                continue
            milli_c = _read_int(files, f"{base}/{entry}")
            label = (files.read_text(f"{base}/temp{match.group(1)}_label") or "").strip()
            if milli_c is not None:
                readings.append((label, milli_c / 1000.0))
        preferred = [c for label, c in readings if label.startswith(("Package", "Tctl", "Tdie"))]
        values = preferred or [c for _, c in readings]
        if values:
            return Reading.read(max(values), Source.SYSFS)
    return Reading.unsupported(Source.SYSFS, "no CPU temperature sensor in /sys/class/hwmon")


def _isa_flags(flag_words: list[str]) -> tuple[str, ...]:
    present = set(flag_words)
    return tuple(sorted({name for flag, name in _DL_ISA_FLAGS.items() if flag in present}))


def _usable_cpus(
    logical: int | None, affinity: int | None, quota: Reading[float]
) -> Reading[float]:
    candidates: list[float] = [float(v) for v in (logical, affinity) if v]
    if quota.ok and quota.value is not None:
        candidates.append(quota.value)
    if not candidates:
        return Reading.unsupported(Source.DERIVED, "neither CPU count nor affinity is known")
    return Reading.read(min(candidates), Source.DERIVED)


def probe_cpu(files: HostFiles, host: HostBackend) -> CpuInfo:
    """Fill :class:`CpuInfo`; fast on Linux (no py-cpuinfo), py-cpuinfo elsewhere."""
    cpuinfo_text = files.read_text("/proc/cpuinfo")
    if cpuinfo_text is not None:
        return _probe_cpu_linux(files, host, cpuinfo_text)
    return _probe_cpu_fallback(host)


def _probe_cpu_linux(files: HostFiles, host: HostBackend, text: str) -> CpuInfo:
    blocks = parse_proc_cpuinfo(text)
    processors = [b for b in blocks if "processor" in b]
    first = processors[0] if processors else (blocks[0] if blocks else {})
    vendor_raw = first.get("vendor_id") or first.get("CPU implementer")
    brand_raw = first.get("model name") or first.get("Model") or first.get("Hardware")
    if not brand_raw:
        model = files.read_text("/proc/device-tree/model")
        brand_raw = model.strip("\x00\n ") if model else None
    flag_words = (first.get("flags") or first.get("Features") or "").split()
    logical = len(processors) or host.os_cpu_count()
    affinity = host.affinity_cpus()
    quota = cgroups.cpu_limit_cpus(files)
    base_mhz = _sysfs_clock_mhz(files, "base_frequency")
    brand_base_mhz = _brand_base_clock_mhz(brand_raw or "")
    max_mhz = _sysfs_clock_mhz(files, "cpuinfo_max_freq")
    physical = _physical_cores_linux(files, processors)

    if base_mhz is not None:
        base = Reading.read(base_mhz, Source.SYSFS)
    elif brand_base_mhz is not None:
        base = Reading.read(brand_base_mhz, Source.PROCFS)
    else:
        base = Reading.unsupported(
            Source.SYSFS, "no cpufreq base_frequency and no clock in the brand string"
        )
    if max_mhz is not None:
        max_clock = Reading.read(max_mhz, Source.SYSFS)
    else:
        max_clock = Reading.unsupported(
            Source.SYSFS,
            "no cpufreq in /sys (typical of virtual machines): the maximum clock is unknowable "
            "here; /proc/cpuinfo 'cpu MHz' is the current clock, not the maximum",
        )
    return CpuInfo(
        vendor=_text_reading(vendor_raw, Source.PROCFS, "no vendor in /proc/cpuinfo"),
        brand=_text_reading(brand_raw, Source.PROCFS, "no model name in /proc/cpuinfo"),
        architecture=Reading.read(host.machine(), Source.PLATFORM),
        cpu_class=Reading.read(str(classify_cpu(brand_raw or "")), Source.DERIVED)
        if brand_raw
        else Reading.unsupported(Source.DERIVED, "no brand string to classify"),
        physical_cores=Reading.read(physical, Source.PROCFS)
        if physical
        else Reading.unsupported(Source.PROCFS, "no core topology in /proc or /sys"),
        logical_cpus=Reading.read(logical, Source.PROCFS),
        affinity_cpus=Reading.read(affinity, Source.PLATFORM)
        if affinity is not None
        else Reading.unsupported(Source.PLATFORM, "this OS has no CPU affinity mask"),
        cgroup_cpu_limit_cpus=quota,
        usable_cpus=_usable_cpus(logical, affinity, quota),
        base_clock_mhz=base,
        max_clock_mhz=max_clock,
        dl_isa_flags=Reading.read(_isa_flags(flag_words), Source.PROCFS),
        package_temperature_c=_package_temperature_linux(files),
    )


def _text_reading(value: str | None, source: Source, reason: str) -> Reading[str]:
    return Reading.read(value, source) if value else Reading.unsupported(source, reason)


def _probe_cpu_fallback(host: HostBackend) -> CpuInfo:
    """macOS, Windows, or Linux without /proc: psutil for counts and clocks, py-cpuinfo for the
    brand and flags (slow, but nothing faster is portable)."""
    ps = host.psutil_cpu()
    info: dict[str, Any] = host.cpuinfo() or {}
    brand = info.get("brand_raw")
    logical = (ps.logical_cpus if ps else None) or host.os_cpu_count()
    affinity = host.affinity_cpus()
    advertised = info.get("hz_advertised")
    base_mhz = advertised[0] / 1e6 if isinstance(advertised, list) and advertised[0] else None
    temps = host.psutil_temperatures_c() or {}
    temp_values = [c for entries in temps.values() for _, c in entries]
    no_quota: Reading[float] = Reading.unsupported(Source.PLATFORM, "cgroups exist only on Linux")
    return CpuInfo(
        vendor=_text_reading(info.get("vendor_id_raw"), Source.PY_CPUINFO, "py-cpuinfo failed"),
        brand=_text_reading(brand, Source.PY_CPUINFO, "py-cpuinfo failed"),
        architecture=Reading.read(host.machine(), Source.PLATFORM),
        cpu_class=Reading.read(str(classify_cpu(brand)), Source.DERIVED)
        if brand
        else Reading.unsupported(Source.DERIVED, "no brand string to classify"),
        physical_cores=Reading.read(ps.physical_cores, Source.PSUTIL)
        if ps and ps.physical_cores
        else Reading.unsupported(Source.PSUTIL, "psutil could not count physical cores"),
        logical_cpus=Reading.read(logical, Source.PSUTIL)
        if logical
        else Reading.unsupported(Source.PSUTIL, "CPU count unknown"),
        affinity_cpus=Reading.read(affinity, Source.PLATFORM)
        if affinity is not None
        else Reading.unsupported(Source.PLATFORM, "this OS has no CPU affinity mask"),
        cgroup_cpu_limit_cpus=no_quota,
        usable_cpus=_usable_cpus(logical, affinity, no_quota),
        base_clock_mhz=Reading.read(base_mhz, Source.PY_CPUINFO)
        if base_mhz
        else Reading.unsupported(Source.PY_CPUINFO, "no advertised clock"),
        max_clock_mhz=Reading.read(ps.max_mhz, Source.PSUTIL)
        if ps and ps.max_mhz
        else Reading.unsupported(Source.PSUTIL, "psutil reports no maximum clock"),
        dl_isa_flags=Reading.read(_isa_flags(list(info.get("flags") or [])), Source.PY_CPUINFO)
        if info
        else Reading.unsupported(Source.PY_CPUINFO, "py-cpuinfo failed"),
        package_temperature_c=Reading.read(max(temp_values), Source.PSUTIL)
        if temp_values
        else Reading.unsupported(Source.PSUTIL, "no temperature sensors on this platform"),
    )
