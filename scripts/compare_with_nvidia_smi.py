"""Compare `dlready check --json` with `nvidia-smi --query-gpu=... --format=csv`, field by field.

Usage:  python scripts/compare_with_nvidia_smi.py CHECK_JSON NVIDIA_SMI_CSV

The CSV may hold any subset of the columns below, in any order, with or without units (it is
read by its header). Prints one line per GPU and field: dlready's value, nvidia-smi's, and
whether they agree. Exit 0 when every compared field agrees, 1 otherwise, 2 on unreadable input.
Readings that change from one moment to the next (temperature, current PCIe generation) are
compared with a tolerance or reported without a verdict.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

MIB = 1024**2

# nvidia-smi column -> (snapshot GPU field, conversion of dlready's value, tolerance or None)
Conversion = Callable[[Any], Any]
_GPU_COLUMNS: dict[str, tuple[str, Conversion, float | None]] = {
    "name": ("name", str, None),
    "uuid": ("uuid", str, None),
    "pci.bus_id": ("pci_bus_id", str, None),
    "compute_cap": ("compute_capability", str, None),
    "memory.total": ("memory_total_bytes", lambda v: round(v / MIB), 0),
    "power.limit": ("power_limit_enforced_w", float, 0.5),
    "enforced.power.limit": ("power_limit_enforced_w", float, 0.5),
    "power.default_limit": ("power_limit_default_w", float, 0.5),
    "power.max_limit": ("power_limit_max_w", float, 0.5),
    "power.min_limit": ("power_limit_min_w", float, 0.5),
    "temperature.gpu": ("temperature_c", float, 5.0),
    "clocks.max.sm": ("max_sm_clock_mhz", float, 0),
    "clocks.max.memory": ("max_memory_clock_mhz", float, 0),
    "pcie.link.gen.max": ("pcie_generation_max", float, 0),
    "pcie.link.width.max": ("pcie_width_max", float, 0),
    "pcie.link.width.current": ("pcie_width_current", float, 0),
    "persistence_mode": (
        "persistence_mode_enabled",
        lambda v: "Enabled" if v else "Disabled",
        None,
    ),
    "mig.mode.current": ("mig_mode_enabled", lambda v: "Enabled" if v else "Disabled", None),
}
_INFORMATIONAL = {"power.draw", "pcie.link.gen.current", "clocks.sm", "memory.used", "index"}


def _column_name(header: str) -> str:
    """``memory.total [MiB]`` -> ``memory.total``."""
    return header.strip().split(" [", 1)[0]


def _smi_value(text: str) -> str | float:
    """``81559 MiB`` -> 81559.0; ``700.00 W`` -> 700.0; other text stays text."""
    cleaned = text.strip()
    number = cleaned.split(" ", 1)[0]
    try:
        return float(number)
    except ValueError:
        return cleaned


def compare(
    check_report: dict[str, Any], smi_rows: list[dict[str, str]]
) -> list[tuple[int, str, Any, Any, str]]:
    """Rows of (GPU index, column, dlready value, nvidia-smi value, verdict)."""
    snapshot = check_report.get("data", {}).get("snapshot", check_report)
    gpus = [g for g in snapshot.get("gpus", []) if g.get("vendor") == "nvidia"]
    stacks = {s["vendor"]: s for s in snapshot.get("driver_stacks", [])}
    driver = (stacks.get("nvidia", {}).get("driver_version") or {}).get("value")
    results = []
    for position, row in enumerate(smi_rows):
        gpu = gpus[position] if position < len(gpus) else None
        for header, raw in row.items():
            column = _column_name(header)
            smi = _smi_value(raw)
            if column == "driver_version":
                results.append(
                    (
                        position,
                        column,
                        driver,
                        smi,
                        "agree" if str(driver) == str(smi) else "DIFFER",
                    )
                )
                continue
            if column not in _GPU_COLUMNS:
                if column not in _INFORMATIONAL:
                    results.append((position, column, None, smi, "not compared"))
                continue
            field, convert, tolerance = _GPU_COLUMNS[column]
            reading = (gpu or {}).get(field) or {}
            value = reading.get("value")
            if gpu is None or value is None:
                verdict = (
                    "dlready has no value"
                    if isinstance(smi, float) or smi not in ("[N/A]", "N/A")
                    else "agree"
                )
                results.append((position, column, None, smi, verdict))
                continue
            mine = convert(value)
            if tolerance is not None and isinstance(smi, float):
                verdict = "agree" if abs(float(mine) - smi) <= tolerance else "DIFFER"
            else:
                verdict = "agree" if str(mine) == str(smi) else "DIFFER"
            results.append((position, column, mine, smi, verdict))
    return results


def main(argv: list[str]) -> int:
    if len(argv) != 3:
        print(__doc__.splitlines()[2], file=sys.stderr)
        return 2
    try:
        report = json.loads(Path(argv[1]).read_text())
        with open(argv[2], newline="") as handle:
            rows = [
                {k: v for k, v in row.items() if k is not None}
                for row in csv.DictReader(handle, skipinitialspace=True)
            ]
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not rows:
        print("error: nvidia-smi printed no GPU rows", file=sys.stderr)
        return 2
    results = compare(report, rows)
    for index, column, mine, smi, verdict in results:
        print(f"GPU {index}  {column:24} dlready={mine!s:42} nvidia-smi={smi!s:42} {verdict}")
    differ = [r for r in results if r[4] in ("DIFFER", "dlready has no value")]
    agree = sum(1 for r in results if r[4] == "agree")
    print(f"{agree} fields agree, {len(differ)} differ")
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
