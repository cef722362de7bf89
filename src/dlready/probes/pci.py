"""Display controllers on the PCI bus, read from sysfs.

This sees a GPU even when its driver is missing or broken, which turns "no GPU" into the
sharper "an NVIDIA GPU is installed but its driver does not answer".
"""

from __future__ import annotations

from dlready.model import PciDisplayDevice, Reading, Source
from dlready.probes.hostfs import HostFiles

PCI_DEVICES = "/sys/bus/pci/devices"
# PCI class 03xxxx: display controllers (VGA 0300, XGA 0301, 3D 0302, other 0380).
_DISPLAY_CLASS_PREFIX = "0x03"
VENDOR_NVIDIA = "0x10de"
VENDOR_AMD = "0x1002"
VENDOR_INTEL = "0x8086"


def probe_pci_display_devices(files: HostFiles) -> Reading[tuple[PciDisplayDevice, ...]]:
    """Every display-class PCI device with its vendor, device id and bound driver."""
    entries = files.list_dir(PCI_DEVICES)
    if entries is None:
        return Reading.unsupported(Source.SYSFS, f"{PCI_DEVICES} is not readable")
    devices = []
    for bus_id in entries:
        base = f"{PCI_DEVICES}/{bus_id}"
        device_class = (files.read_text(f"{base}/class") or "").strip()
        if not device_class.startswith(_DISPLAY_CLASS_PREFIX):
            continue
        uevent = files.read_text(f"{base}/uevent") or ""
        driver = next(
            (line.split("=", 1)[1] for line in uevent.splitlines() if line.startswith("DRIVER=")),
            None,
        )
        devices.append(
            PciDisplayDevice(
                bus_id=bus_id,
                vendor_id=(files.read_text(f"{base}/vendor") or "").strip().lower(),
                device_id=(files.read_text(f"{base}/device") or "").strip().lower(),
                driver=driver,
            )
        )
    return Reading.read(tuple(devices), Source.SYSFS)


def is_nvidia(device: PciDisplayDevice) -> bool:
    """True for an NVIDIA device, whether its vendor id is written ``0x10de`` or ``10de``."""
    return device.vendor_id.strip().lower().removeprefix("0x") == VENDOR_NVIDIA[2:]


def nvidia_devices_on_bus(
    devices: Reading[tuple[PciDisplayDevice, ...]],
) -> tuple[PciDisplayDevice, ...]:
    """The NVIDIA display devices on the PCI bus (empty when the bus could not be read).

    The one definition of "an NVIDIA card on the PCI bus", used by ``check``'s verdict,
    ``install-cmd`` and ``smoke``: it sees a card whose driver is missing or broken.
    """
    if not devices.ok:
        return ()
    return tuple(device for device in devices.value or () if is_nvidia(device))


def nvidia_card_ruled_out(
    devices: Reading[tuple[PciDisplayDevice, ...]], is_wsl: Reading[bool]
) -> bool:
    """Whether the PCI bus shows that no NVIDIA card is here: it was read, it lists none, and
    this is not WSL (whose GPU never appears on the Linux guest's bus).

    An NVIDIA driver that fails on such a machine is a leftover (a GPU image started on a CPU
    instance, a card taken out), not a GPU whose driver needs fixing. The one rule for it,
    used by ``check``'s verdict, ``install-cmd`` and ``fit``.
    """
    not_wsl = is_wsl.ok and is_wsl.value is False
    return devices.ok and not_wsl and not nvidia_devices_on_bus(devices)
