"""The power supply: declared by the user, or DMI type 39 where the firmware publishes it.

No consumer PC tells software its PSU rating. Servers may, in SMBIOS "System Power Supply"
(type 39) structures, readable as root from ``/sys/firmware/dmi/entries/39-*/raw``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from dlready.model import PowerSupplyInfo, Reading, Source
from dlready.probes.hostfs import HostFiles

PSU_ENV_VAR = "DLREADY_PSU_WATTS"
_DMI_ENTRIES = "/sys/firmware/dmi/entries"
# SMBIOS 3.x, type 39: Max Power Capacity is the WORD at offset 0Ch; 8000h means unknown.
_DMI39_CAPACITY_OFFSET = 0x0C
_DMI39_UNKNOWN = 0x8000


def parse_dmi39_capacity_w(raw: bytes) -> int | None:
    """Max Power Capacity in watts of one type-39 structure, or None when unknown."""
    if len(raw) < _DMI39_CAPACITY_OFFSET + 2 or raw[0] != 39:
        return None
    value = int.from_bytes(raw[_DMI39_CAPACITY_OFFSET : _DMI39_CAPACITY_OFFSET + 2], "little")
    return None if value in (0, _DMI39_UNKNOWN) else value


def read_dmi_capacity_w(files: HostFiles) -> Reading[float]:
    """The largest single supply's capacity (redundant supplies are judged as one)."""
    entries = files.list_dir(_DMI_ENTRIES)
    if entries is None:
        return Reading.unsupported(
            Source.DMI,
            "no DMI tables readable (reading them needs root; only Linux has them there)",
        )
    capacities = []
    for entry in entries:
        if entry.startswith("39-"):
            raw = files.read_bytes(f"{_DMI_ENTRIES}/{entry}/raw")
            capacity = parse_dmi39_capacity_w(raw) if raw else None
            if capacity:
                capacities.append(capacity)
    if not capacities:
        return Reading.unsupported(Source.DMI, "the firmware publishes no power supply rating")
    return Reading.read(float(max(capacities)), Source.DMI)


def declared_capacity_w(cli_watts: float | None, environ: Mapping[str, str]) -> Reading[float]:
    """The PSU rating from ``--psu-watts`` or ``DLREADY_PSU_WATTS``; the flag wins.

    Raises:
        ValueError: when the flag or the environment variable is not a plausible wattage.
    """
    if cli_watts is not None:
        return Reading.read(_plausible_watts(float(cli_watts), "--psu-watts"), Source.USER)
    raw = environ.get(PSU_ENV_VAR)
    if raw is None or not raw.strip():
        return Reading.unsupported(
            Source.USER, f"not declared: pass --psu-watts or set {PSU_ENV_VAR}"
        )
    try:
        watts = float(raw)
    except ValueError:
        raise ValueError(f"{PSU_ENV_VAR}={raw!r} is not a number of watts") from None
    return Reading.read(_plausible_watts(watts, f"{PSU_ENV_VAR}={raw!r}"), Source.ENVIRONMENT)


MAX_PLAUSIBLE_PSU_W = 100_000.0
"""Far above any single machine (a rack of 8 GPUs draws about 10 kW); catches typos like 1e9."""


def _plausible_watts(watts: float, label: str) -> float:
    if not math.isfinite(watts) or not 0 < watts <= MAX_PLAUSIBLE_PSU_W:
        raise ValueError(
            f"{label}: the power supply rating must be a number of watts between 1 and "
            f"{MAX_PLAUSIBLE_PSU_W:.0f}"
        )
    return watts


def probe_power_supply(
    files: HostFiles, cli_watts: float | None, environ: Mapping[str, str]
) -> PowerSupplyInfo:
    """Fill :class:`PowerSupplyInfo`."""
    return PowerSupplyInfo(
        declared_capacity_w=declared_capacity_w(cli_watts, environ),
        dmi_capacity_w=read_dmi_capacity_w(files),
    )
