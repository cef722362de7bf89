"""AMD GPUs from sysfs (``/sys/class/drm/card*/device``), read only through HostFiles.

What the amdgpu driver exposes (kernel docs, Documentation/gpu/amdgpu/driver-misc.rst and
thermal.rst; hwmon units from Documentation/hwmon/sysfs-interface.rst):

- ``vendor`` (``0x1002``), ``device``, ``uevent`` (``DRIVER=amdgpu``, ``PCI_SLOT_NAME=...``);
- ``mem_info_vram_total`` / ``mem_info_vram_used`` in bytes;
- ``product_name``: from the board FRU, "only available for certain server cards";
- ``current_link_speed`` ("16.0 GT/s PCIe"), ``current_link_width``, ``max_link_*``;
- ``pp_dpm_sclk`` / ``pp_dpm_mclk``: the clock levels ("2: 2500Mhz *");
- ``hwmon/hwmonN/``: ``temp1_input``, ``temp1_crit``, ``temp1_emergency`` in millidegrees
  Celsius (emergency = ASIC shutdown); ``power1_cap*``, ``power1_average``/``power1_input``
  in microwatts.

The driver is "loaded" when a card's ``uevent`` names ``amdgpu``. The in-kernel amdgpu has
no ``/sys/module/amdgpu/version`` (only the DKMS build from AMD's packages has one); the
kernel release is then the driver version.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping

from dlready.model import DriverStack, GpuInfo, GpuVendor, Reading, Source, StackState
from dlready.probes.hostfs import HostFiles

AMD_PCI_VENDOR_ID = 0x1002
_DRM = "/sys/class/drm"
_CARD = re.compile(r"^card\d+$")

# PCI device id -> (marketing name, architecture). Source: the PCI ID repository,
# https://pci-ids.ucw.cz/read/PC/1002 (names shortened to the product); architectures from
# AMD's product pages. Several products share an id (7900 XTX/XT/GRE: 0x744c), so the name
# lists them; sysfs ``product_name`` wins where the board provides it.
AMD_DEVICE_NAMES: Mapping[int, tuple[str, str]] = {
    0x744C: ("AMD Radeon RX 7900 XTX / 7900 XT / 7900 GRE", "RDNA 3"),
    0x7448: ("AMD Radeon Pro W7900", "RDNA 3"),
    0x73BF: ("AMD Radeon RX 6800 / 6800 XT / 6900 XT", "RDNA 2"),
    0x73A5: ("AMD Radeon RX 6950 XT", "RDNA 2"),
    0x738C: ("AMD Instinct MI100", "CDNA"),
    0x740C: ("AMD Instinct MI250X / MI250", "CDNA 2"),
    0x740F: ("AMD Instinct MI210", "CDNA 2"),
    0x74A1: ("AMD Instinct MI300X", "CDNA 3"),
}

# PCIe transfer rate (GT/s) -> generation (PCI-SIG base specifications 1.0 to 6.0).
_PCIE_GT_S_TO_GENERATION: Mapping[float, int] = {
    2.5: 1,
    5.0: 2,
    8.0: 3,
    16.0: 4,
    32.0: 5,
    64.0: 6,
}

_NO_DRIVER_HINT = (
    "Load the amdgpu kernel module (`sudo modprobe amdgpu`) and check `dmesg | grep amdgpu` "
    "(missing firmware: install linux-firmware)."
)


def probe_amd(files: HostFiles) -> tuple[DriverStack, tuple[GpuInfo, ...]]:
    """Detect AMD GPUs and read name, VRAM, PCIe link, clocks, power cap and temperature.

    Returns:
        The amdgpu driver stack (``NOT_APPLICABLE`` without an AMD GPU, ``DRIVER_NOT_LOADED``
        when AMD GPUs are present but amdgpu is not bound to them) and one GpuInfo per card.
    """
    entries = files.list_dir(_DRM)
    if entries is None:
        return _stack(
            StackState.NOT_APPLICABLE,
            f"{_DRM} is not readable: no Linux graphics drivers can be seen here",
        ), ()
    cards = [
        f"{_DRM}/{name}/device"
        for name in sorted((n for n in entries if _CARD.match(n)), key=lambda n: int(n[4:]))
    ]
    amd_cards = [
        card for card in cards if _hex(files.read_text(f"{card}/vendor")) == AMD_PCI_VENDOR_ID
    ]
    if not amd_cards:
        return _stack(StackState.NOT_APPLICABLE, "no AMD GPU in /sys/class/drm"), ()

    gpus = tuple(_read_card(files, index, card) for index, card in enumerate(amd_cards))
    drivers = {_uevent(files, card).get("DRIVER") for card in amd_cards}
    count = Reading.read(len(gpus), Source.SYSFS)
    version = _driver_version(files)
    if "amdgpu" in drivers:
        return _stack(StackState.OK, driver_version=version, device_count=count), gpus
    bound = sorted(d for d in drivers if d)
    if bound:
        reason = f"AMD GPUs are bound to {', '.join(bound)}, not amdgpu (ROCm needs amdgpu)"
    elif files.list_dir("/sys/module/amdgpu") is not None:
        reason = "amdgpu is loaded but not bound to the AMD GPUs (see `dmesg | grep amdgpu`)"
    else:
        reason = "AMD GPUs are present but the amdgpu kernel module is not loaded"
    return _stack(StackState.DRIVER_NOT_LOADED, reason, _NO_DRIVER_HINT, device_count=count), gpus


def _read_card(files: HostFiles, index: int, card: str) -> GpuInfo:
    def text(name: str) -> str | None:
        raw = files.read_text(f"{card}/{name}")
        return raw.strip() if raw is not None and raw.strip() else None

    device_id = _hex(text("device"))
    known = AMD_DEVICE_NAMES.get(device_id) if device_id is not None else None
    product_name = text("product_name")
    if product_name:
        name = Reading.read(product_name, Source.SYSFS)
    elif known:
        name = Reading.read(known[0], Source.SYSFS)
    else:
        device = f"0x{device_id:04x}" if device_id is not None else "unknown"
        name = Reading.read(f"AMD GPU (device {device})", Source.SYSFS)

    vram_total = _int_reading(text("mem_info_vram_total"), "mem_info_vram_total")
    vram_used = _int_reading(text("mem_info_vram_used"), "mem_info_vram_used")
    vram_free: Reading[int] = (
        Reading.read(vram_total.value - vram_used.value, Source.SYSFS)
        if vram_total.value is not None and vram_used.value is not None
        else Reading.unsupported(Source.SYSFS, "mem_info_vram_used is not readable")
    )
    hwmon = _hwmon_dir(files, card)

    def sensor(name: str, scale: float) -> Reading[float]:
        if hwmon is None:
            return Reading.unsupported(Source.SYSFS, "the card has no hwmon directory")
        value = _int_reading(text(f"hwmon/{hwmon}/{name}"), name)
        if value.value is None:
            return value.without_value()
        return Reading.read(value.value / scale, Source.SYSFS)

    draw = sensor("power1_average", 1e6)
    if draw.value is None:
        draw = sensor("power1_input", 1e6)  # RDNA 3 and newer report the instant value
    slot = _uevent_from_text(text("uevent")).get("PCI_SLOT_NAME")
    return GpuInfo(
        index=index,
        vendor=GpuVendor.AMD,
        name=name,
        pci_bus_id=(
            Reading.read(slot, Source.SYSFS)
            if slot
            else Reading.unsupported(Source.SYSFS, "uevent has no PCI_SLOT_NAME")
        ),
        architecture=(
            Reading.read(known[1], Source.SYSFS)
            if known
            else Reading.unsupported(Source.SYSFS, "device id not in dlready's AMD table")
        ),
        memory_total_bytes=vram_total,
        memory_free_bytes=vram_free,
        compute_capability=Reading.unsupported(
            Source.SYSFS, "CUDA compute capability: NVIDIA only"
        ),
        max_sm_clock_mhz=_max_dpm_level(text("pp_dpm_sclk"), "pp_dpm_sclk"),
        max_memory_clock_mhz=_max_dpm_level(text("pp_dpm_mclk"), "pp_dpm_mclk"),
        power_limit_enforced_w=sensor("power1_cap", 1e6),
        power_limit_default_w=sensor("power1_cap_default", 1e6),
        power_limit_min_w=sensor("power1_cap_min", 1e6),
        power_limit_max_w=sensor("power1_cap_max", 1e6),
        power_draw_w=draw,
        temperature_c=sensor("temp1_input", 1000.0),
        temperature_slowdown_c=sensor("temp1_crit", 1000.0),
        temperature_shutdown_c=sensor("temp1_emergency", 1000.0),
        pcie_generation_current=_pcie_generation(text("current_link_speed")),
        pcie_generation_max=_pcie_generation(text("max_link_speed")),
        pcie_width_current=_int_reading(text("current_link_width"), "current_link_width"),
        pcie_width_max=_int_reading(text("max_link_width"), "max_link_width"),
    )


def _stack(
    state: StackState,
    reason: str | None = None,
    hint: str | None = None,
    *,
    driver_version: Reading[str] | None = None,
    device_count: Reading[int] | None = None,
) -> DriverStack:
    return DriverStack(
        vendor=GpuVendor.AMD,
        state=state,
        reason=reason,
        hint=hint,
        driver_version=driver_version
        or Reading.unsupported(Source.SYSFS, "no amdgpu driver version to read"),
        device_count=device_count or Reading.read(0, Source.SYSFS),
    )


def _driver_version(files: HostFiles) -> Reading[str]:
    version = files.read_text("/sys/module/amdgpu/version")
    if version and version.strip():
        return Reading.read(version.strip(), Source.SYSFS)
    release = files.read_text("/proc/sys/kernel/osrelease")
    if release and release.strip():
        # In-kernel amdgpu: the driver is the kernel's.
        return Reading.read(f"in-kernel (Linux {release.strip()})", Source.PROCFS)
    return Reading.unsupported(
        Source.SYSFS, "in-kernel amdgpu has no /sys/module/amdgpu/version; see the kernel version"
    )


def _hwmon_dir(files: HostFiles, card: str) -> str | None:
    names = [n for n in files.list_dir(f"{card}/hwmon") or [] if n.startswith("hwmon")]
    return names[0] if names else None


def _uevent(files: HostFiles, card: str) -> dict[str, str]:
    return _uevent_from_text(files.read_text(f"{card}/uevent"))


def _uevent_from_text(text: str | None) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in (text or "").splitlines() if "=" in line)
    return {key.strip(): value.strip() for key, value in pairs}


def _hex(text: str | None) -> int | None:
    try:
        return int(text.strip(), 16) if text else None
    except ValueError:
        return None


def _int_reading(text: str | None, name: str) -> Reading[int]:
    if text is None:
        return Reading.unsupported(Source.SYSFS, f"{name} is not present")
    try:
        return Reading.read(int(text), Source.SYSFS)
    except ValueError:
        return Reading.failed(Source.SYSFS, f"{name} holds {text!r}, not an integer")


def _parse_or_fail(
    text: str | None, name: str, parse: Callable[[str], float | None]
) -> Reading[float]:
    if text is None:
        return Reading.unsupported(Source.SYSFS, f"{name} is not present")
    value = parse(text)
    if value is None:
        return Reading.failed(Source.SYSFS, f"cannot read {name}: {text!r}")
    return Reading.read(value, Source.SYSFS)


def _max_dpm_level(text: str | None, name: str) -> Reading[float]:
    def parse(raw: str) -> float | None:
        levels = [float(m) for m in re.findall(r"(\d+)\s*[Mm][Hh]z", raw)]
        return max(levels) if levels else None

    return _parse_or_fail(text, name, parse)


def _pcie_generation(text: str | None) -> Reading[int]:
    def parse(raw: str) -> float | None:
        match = re.match(r"\s*([\d.]+)\s*GT/s", raw)
        return _PCIE_GT_S_TO_GENERATION.get(float(match.group(1))) if match else None

    reading = _parse_or_fail(text, "link speed", parse)
    if reading.value is None:
        return reading.without_value()
    return Reading.read(int(reading.value), Source.SYSFS)
