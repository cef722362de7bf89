"""Time `dlready smoke --quick --device cpu` against `python -c "import torch"`, in the same run.

Usage:  python benchmarks/bench_smoke.py [--runs 7] [--out FILE]

Every run is a fresh process (interpreter start and imports included), so the figures are what
a person waits for. Both commands alternate run by run, so a machine that slows down during
the benchmark slows both alike. One extra `--json` run breaks smoke's time down: the worker's
own `import torch` and the checks' durations.

Target (issue #4): `smoke --quick` on the CPU takes at most the torch import time plus 3 s.
Writes ``benchmarks/results/smoke.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TARGET_OVERHEAD_S = 3.0


def run_cold(argv: list[str]) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB (largest process of the tree), exit code of one run."""
    started = time.perf_counter()
    process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - started
    return elapsed, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def summary(times: list[float], peaks: list[float]) -> dict[str, float]:
    """Median and spread of the runs."""
    return {
        "runs": len(times),
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "peak_rss_mib": round(max(peaks), 1),
    }


def breakdown(python: str) -> dict[str, object]:
    """One `--json` run: torch import in the worker, check time, wall time."""
    started = time.perf_counter()
    completed = subprocess.run(
        [python, "-m", "dlready", "smoke", "--quick", "--device", "cpu", "--json"],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    wall_s = time.perf_counter() - started
    data = json.loads(completed.stdout)["data"]
    checks = data["devices"][0]["checks"]
    slowest = sorted(checks, key=lambda c: c["duration_s"], reverse=True)[:5]
    return {
        "wall_s": round(wall_s, 4),
        "worker_import_torch_s": data["torch"]["import_s"],
        "checks_total_s": round(sum(c["duration_s"] for c in checks), 4),
        "slowest_checks": {c["name"]: c["duration_s"] for c in slowest},
        "counts": data["counts"],
        "exit_code": completed.returncode,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/smoke.json")
    args = parser.parse_args()

    python = sys.executable
    import_torch = [python, "-c", "import torch"]
    smoke = [python, "-m", "dlready", "smoke", "--quick", "--device", "cpu"]
    run_cold(import_torch)  # warm the page cache for both
    run_cold(smoke)
    times: dict[str, list[float]] = {"import_torch": [], "smoke_quick_cpu": []}
    peaks: dict[str, list[float]] = {"import_torch": [], "smoke_quick_cpu": []}
    codes = set()
    for _ in range(args.runs):
        for name, argv in (("import_torch", import_torch), ("smoke_quick_cpu", smoke)):
            elapsed, peak, code = run_cold(argv)
            times[name].append(elapsed)
            peaks[name].append(peak)
            if name == "smoke_quick_cpu":
                codes.add(code)

    results: dict[str, object] = {name: summary(times[name], peaks[name]) for name in times}
    import_s = statistics.median(times["import_torch"])
    smoke_s = statistics.median(times["smoke_quick_cpu"])
    overhead_s = smoke_s - import_s
    results["smoke_minus_import_s"] = round(overhead_s, 4)
    results["target"] = {
        "rule": "smoke --quick --device cpu <= import torch + 3 s (medians)",
        "limit_s": round(import_s + TARGET_OVERHEAD_S, 4),
        "met": overhead_s <= TARGET_OVERHEAD_S,
    }
    results["smoke_exit_codes"] = sorted(codes)
    results["breakdown"] = breakdown(python)
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'what':20} {'median s':>9} {'min s':>7} {'max s':>7} {'peak MiB':>9}")
    for name in ("import_torch", "smoke_quick_cpu"):
        row = results[name]
        assert isinstance(row, dict)
        print(
            f"{name:20} {row['median_s']:9.3f} {row['min_s']:7.3f} {row['max_s']:7.3f} "
            f"{row['peak_rss_mib']:9.1f}"
        )
    print(f"smoke - import torch: {overhead_s:.3f} s (target <= {TARGET_OVERHEAD_S:g} s)")
    print("breakdown:", results["breakdown"])
    print(f"written to {args.out}")
    return 0 if overhead_s <= TARGET_OVERHEAD_S and codes == {0} else 1


if __name__ == "__main__":
    sys.exit(main())
