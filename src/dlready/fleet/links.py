"""What the links between GPUs and nodes should carry (pure; reads only through ``HostFiles``).

- Network: ``/sys/class/net/<if>/speed`` (Mb/s, Ethernet and IPoIB) and
  ``/sys/class/infiniband/<dev>/ports/<n>/rate`` (``400 Gb/sec (4X NDR)``), physical devices
  only (those with a ``device`` link), as the kernel documents them
  (https://www.kernel.org/doc/Documentation/ABI/testing/sysfs-class-net,
  https://www.kernel.org/doc/Documentation/ABI/stable/sysfs-class-infiniband).
- Within a node: NVLink is not probed, so the floor is the GPUs' PCIe line rate (smoke's PCIe
  rule in ``data/device_peaks.json``): NVLink only ever beats it.
"""

from __future__ import annotations

import re

from dlready.probes.hostfs import HostFiles

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*Gb/sec")


def probe_nics(files: HostFiles) -> tuple[tuple[str, ...], float | None]:
    """Physical network links as ``name speed`` and the fastest one in GB/s (None: unknown)."""
    links: list[str] = []
    fastest_gbit: float | None = None
    for name in sorted(files.list_dir("/sys/class/net") or []):
        if files.read_text(f"/sys/class/net/{name}/device/uevent") is None:
            continue  # loopback, bridges, veth pairs: no device behind them
        text = (files.read_text(f"/sys/class/net/{name}/speed") or "").strip()
        try:
            mbit = float(text)
        except ValueError:
            continue  # a link that is down reports no speed
        if mbit <= 0:
            continue
        links.append(f"{name} {mbit / 1000:g} Gb/s")
        fastest_gbit = max(fastest_gbit or 0.0, mbit / 1000)
    for device in sorted(files.list_dir("/sys/class/infiniband") or []):
        for port in sorted(files.list_dir(f"/sys/class/infiniband/{device}/ports") or []):
            state = files.read_text(f"/sys/class/infiniband/{device}/ports/{port}/state") or ""
            if state and "ACTIVE" not in state:
                continue
            rate = files.read_text(f"/sys/class/infiniband/{device}/ports/{port}/rate") or ""
            match = _RATE.match(rate)
            if match is None:
                continue
            gbit = float(match.group(1))
            links.append(f"{device}/{port} {gbit:g} Gb/s")
            fastest_gbit = max(fastest_gbit or 0.0, gbit)
    return tuple(links), (fastest_gbit / 8 if fastest_gbit else None)
