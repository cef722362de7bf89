"""Time a cold `dlready install-cmd` process against an empty interpreter, in the same run.

Usage:  python benchmarks/bench_install_cmd.py [--runs 21] [--out FILE]

Every run is a fresh process (interpreter start, imports, table load, planning), so the figure
is what a person waits for. Three cases:

- ``flags``: every fact given by flags, so nothing is probed (planning for another machine);
- ``detect``: real detection on this machine (``collect_snapshot``: NVML, /proc, /sys);
- ``explain-json``: flags plus ``--json`` (the largest output).

The baseline ``python -c pass`` is measured in the same run, so the difference is dlready's own
cost on any machine. Target (issue #3): well under 0.2 s; torch is never imported (checked
here too, with ``-X importtime``). Writes ``benchmarks/results/install_cmd.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from cold_runs import imports_torch, measure

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 0.2
FLAGS = [
    "--os", "linux", "--arch", "x86_64", "--python", "3.12", "--accelerator", "cuda",
    "--driver", "580.159.04", "--compute-capability", "9.0",
]  # fmt: skip


def main() -> int:
    """Run the benchmark, print a table and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/install_cmd.json")
    args = parser.parse_args()

    python = sys.executable
    command = [python, "-m", "dlready", "install-cmd"]
    cases = {
        "baseline: python -c pass": [python, "-c", "pass"],
        "install-cmd (flags, no probing)": [*command, *FLAGS],
        "install-cmd (detect this machine)": command,
        "install-cmd --json (flags)": [*command, *FLAGS, "--json"],
    }
    results = {name: measure(argv, args.runs) for name, argv in cases.items()}
    baseline = float(results["baseline: python -c pass"]["median_s"])
    for result in results.values():
        result["over_baseline_s"] = round(float(result["median_s"]) - baseline, 4)
    torch_free = not imports_torch([*command, *FLAGS]) and not imports_torch(command)

    width = max(len(name) for name in results)
    print(f"{'case':<{width}}  median_s  min_s   max_s   over_baseline_s  exit")
    for name, result in results.items():
        print(
            f"{name:<{width}}  {result['median_s']:<8}  {result['min_s']:<6}  "
            f"{result['max_s']:<6}  {result['over_baseline_s']:<15}  {result['exit_code']}"
        )
    worst = max(float(r["median_s"]) for n, r in results.items() if n.startswith("install-cmd"))
    print(
        f"target: median < {TARGET_S} s -> {'met' if worst < TARGET_S else 'MISSED'}; "
        f"torch imported: {'no' if torch_free else 'YES'}"
    )

    document = {
        "benchmark": "bench_install_cmd.py",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "bytecode_cache": True,
        "parent_had_PYTHONDONTWRITEBYTECODE": "PYTHONDONTWRITEBYTECODE" in os.environ,
        "target_median_s": TARGET_S,
        "target_met": worst < TARGET_S,
        "torch_imported": not torch_free,
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
