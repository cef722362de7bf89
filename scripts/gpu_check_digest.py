"""A few lines per saved JSON report of scripts/gpu-check.sh, for a quick read of summary.txt.

    python scripts/gpu_check_digest.py smoke|fleet|fit REPORT.json

Reads only the JSON envelope (docs/json-schema.md); never imports dlready or torch, so it runs
with any Python >= 3.10 and cannot fail on a missing dependency. A missing or unreadable report
is one line saying so, never a traceback; the exit code is always 0 (the step's own exit code is
recorded by the script).
"""

from __future__ import annotations

import json
import sys
from typing import Any

GIB = 2**30


def _number(value: Any, digits: int = 1) -> str:
    return "unknown" if not isinstance(value, int | float) else f"{value:.{digits}f}"


def _figure(value: Any) -> str:
    """Four significant digits: 794.3 TFLOP/s on a GPU, 0.01909 on a CPU."""
    return "unknown" if not isinstance(value, int | float) else f"{value:.4g}"


def smoke_lines(data: dict[str, Any]) -> list[str]:
    """Speed, burn and device checks, and every check that did not pass."""
    lines = []
    for device in data.get("devices") or []:
        for check in device.get("checks") or []:
            if check.get("status") == "skipped":
                continue
            name = str(check.get("name"))
            if name.startswith(("speed.", "burn", "device")) or check.get("status") != "pass":
                expected = check.get("expected") or {}
                percent = expected.get("percent")
                share = f" ({percent:.0f} % of {expected.get('value')})" if percent else ""
                lines.append(f"  {name}: {check.get('status')}: {check.get('message')}{share}")
    return lines


def fleet_lines(data: dict[str, Any]) -> list[str]:
    """Matmul rate per rank against the spec sheet, and all_reduce bus bandwidth per scope."""
    lines = []
    for rank in data.get("ranks") or []:
        measured = rank.get("matmul_tflops")
        expected = rank.get("matmul_expected_tflops")
        if isinstance(measured, int | float) and isinstance(expected, int | float) and expected:
            against = f"{measured / expected * 100:.0f} % of the expected {expected:g}"
        else:
            against = f"expected peak unknown ({rank.get('expected_source') or 'not read'})"
        lines.append(
            f"  rank {rank.get('rank')} {rank.get('device')} {rank.get('device_name')}: "
            f"{rank.get('status')}, {rank.get('matmul_dtype')} matmul "
            f"{_figure(measured)} TFLOP/s, {against}"
        )
    speeds = data.get("collective_speeds") or []
    largest: dict[tuple[str, str], dict[str, Any]] = {}
    for speed in speeds:
        key = (str(speed.get("scope")), str(speed.get("group")))
        if key not in largest or speed.get("size_bytes", 0) > largest[key].get("size_bytes", 0):
            largest[key] = speed
    expectations = {e.get("scope"): e for e in data.get("link_expectations") or []}
    for (scope, group), speed in sorted(largest.items()):
        expectation = expectations.get(scope) or {}
        floor = expectation.get("gbps")
        against = (
            f" (the link should carry {floor:.1f} GB/s)" if isinstance(floor, int | float) else ""
        )
        lines.append(
            f"  all_reduce {scope}, {group}, {len(speed.get('ranks') or [])} ranks, "
            f"{speed.get('size_bytes', 0) / 2**20:g} MiB: busbw "
            f"{_figure(speed.get('busbw_gbps'))} GB/s{against}, algbw "
            f"{_figure(speed.get('algbw_gbps'))} GB/s"
        )
    if not speeds:
        lines.append("  all_reduce: no speed measured (a single rank has no peer)")
    lines += [
        f"  finding {finding.get('kind')}: {finding.get('message')}"
        for finding in data.get("findings") or []
    ]
    return lines


def fit_lines(data: dict[str, Any]) -> list[str]:
    """The verdict, and estimate / measured per item of the measured block."""
    estimate = data.get("estimate") or {}
    total = estimate.get("total_bytes")
    lines = [
        f"  fits: {data.get('fits')}, estimate "
        f"{_number(total / GIB if isinstance(total, int | float) else None, 2)} GiB per GPU"
    ]
    measurement = data.get("measurement")
    if not measurement:
        lines.append("  no measurement")
        return lines
    lines.append(f"  measured on {measurement.get('device')}: {measurement.get('what')}")
    lines += [
        f"  {item.get('name')}: estimate / measured = {_number(item.get('ratio'), 3)} "
        f"({_mib(item.get('estimate_bytes'))} / {_mib(item.get('measured_bytes'))} MiB)"
        for item in measurement.get("items") or []
    ]
    return lines


def _mib(value: Any) -> str:
    return _number(value / 2**20 if isinstance(value, int | float) else None)


DIGESTS = {"smoke": smoke_lines, "fleet": fleet_lines, "fit": fit_lines}


def digest(kind: str, path: str) -> list[str]:
    """The digest of one saved report; a report that cannot be read is one line."""
    try:
        with open(path, encoding="utf-8") as file:
            document = json.load(file)
    except (OSError, ValueError) as exc:
        return [f"{path}: no JSON ({exc})"]
    if not isinstance(document, dict):
        return [f"{path}: not a dlready report"]
    head = [f"{path}: exit {document.get('exit_code')}, status {document.get('status')}"]
    head += [f"  error: {error.get('message')}" for error in document.get("errors") or []]
    data = document.get("data")
    if not isinstance(data, dict):
        return head
    if kind == "smoke":
        head[0] += f", counts {data.get('counts')}"
    return head + DIGESTS[kind](data)


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in DIGESTS:
        print(f"usage: gpu_check_digest.py {'|'.join(DIGESTS)} REPORT.json", file=sys.stderr)
        return 2
    try:
        print("\n".join(digest(argv[0], argv[1])))
    except Exception as exc:  # noqa: BLE001  # a report of an unexpected shape is one line, never a traceback
        print(f"{argv[1]}: cannot digest ({type(exc).__name__}: {exc})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
