"""Which NVIDIA GPU a PCI device id is (``dlready/data/nvidia_pci_devices.json``): identifies
a card whose driver does not answer, so ``install-cmd`` can name the command that will fit
once the driver works."""

from __future__ import annotations

import functools
import json

from msgspec import Struct

from dlready.package_data import read_data_text

PCI_TABLE_RESOURCE = "nvidia_pci_devices.json"


class PciGpu(Struct, frozen=True):
    """An NVIDIA GPU known by its PCI device id."""

    device_id: str
    name: str
    compute_capability: str


@functools.cache
def _devices() -> dict[str, PciGpu]:
    text = read_data_text(PCI_TABLE_RESOURCE)
    return {
        device_id: PciGpu(device_id, entry["name"], entry["compute_capability"])
        for device_id, entry in json.loads(text)["devices"].items()
    }


def gpu_from_pci_device(device_id: str) -> PciGpu | None:
    """The GPU with PCI device id ``0x2330`` (or ``2330``); None when the table lacks it."""
    return _devices().get(device_id.strip().lower().removeprefix("0x"))
