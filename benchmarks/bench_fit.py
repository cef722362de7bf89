"""Time a cold `dlready fit` process against an empty interpreter, in the same run.

Usage:  python benchmarks/bench_fit.py [--runs 21] [--out FILE]

Every run is a fresh process (interpreter start, imports, model table, planning), so the figure
is what a person waits for. Cases:

- ``snapshot``: a saved H100 report (no probing), inference and full training of a 7B model;
- ``detect``: probing this machine (``collect_snapshot``), as a plain ``dlready fit`` does;
- ``json``: training with every strategy listed, ``--json``.

The baselines ``python -c pass`` and ``python -c "import dlready.cli"`` are measured in the same
run, so the difference is fit's own cost on any machine. Target (issue #11): well under 0.3 s;
torch is never imported (checked here too, with ``-X importtime``). Writes
``benchmarks/results/fit.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from cold_runs import imports_torch, measure

REPO = Path(__file__).resolve().parents[1]
TARGET_S = 0.3


def h100_snapshot(folder: Path) -> Path:
    """The recorded H100 server as a saved report (built from tests/fixtures)."""
    sys.path[:0] = [str(REPO / "tests"), str(REPO / "src")]
    from dlready.model import to_jsonable
    from machines import replay_snapshot

    path = folder / "h100.json"
    path.write_text(json.dumps(to_jsonable(replay_snapshot("h100-80gb-hbm3"))))
    return path


def in_process_planning_s(snapshot: Path, repeats: int = 50) -> float:
    """Median seconds of fit's own work (resolve, judge, every strategy, largest batches), in
    this process, for a 70B training request on the H100: what the load of a shared machine
    cannot hide behind interpreter start-up."""
    from dlready.fit.catalog import resolve_model
    from dlready.fit.estimate import Request
    from dlready.fit.plan import machine_from_snapshot, plan
    from dlready.model import snapshot_from_jsonable

    machine = machine_from_snapshot(snapshot_from_jsonable(json.loads(snapshot.read_text())))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        plan(resolve_model("llama-2-70b"), Request(task="train"), machine)
        times.append(time.perf_counter() - started)
    return round(statistics.median(times), 5)


def main() -> int:
    """Run the benchmark, print a table and write the JSON result."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fit.json")
    args = parser.parse_args()

    python = sys.executable
    command = [python, "-m", "dlready", "fit"]
    with tempfile.TemporaryDirectory() as folder:
        snapshot = str(h100_snapshot(Path(folder)))
        cases = {
            "baseline: python -c pass": [python, "-c", "pass"],
            "baseline: import dlready.cli": [python, "-c", "import dlready.cli"],
            "fit llama-2-7b (snapshot)": [*command, "llama-2-7b", "--snapshot", snapshot],
            "fit llama-2-7b --task train (snapshot)": [
                *command, "llama-2-7b", "--task", "train", "--snapshot", snapshot,
            ],
            "fit llama-2-70b --task train --json (snapshot)": [
                *command, "llama-2-70b", "--task", "train", "--json", "--snapshot", snapshot,
            ],
            "fit llama-3-8b (detect this machine)": [*command, "llama-3-8b"],
            "reference: check --json (snapshot)": [
                python, "-m", "dlready", "check", "--json", "--snapshot", snapshot,
            ],
        }  # fmt: skip
        results = {name: measure(argv, args.runs) for name, argv in cases.items()}
        planning_s = in_process_planning_s(Path(snapshot))
        torch_free = not any(imports_torch(argv) for name, argv in cases.items() if "fit" in name)
    baseline = float(results["baseline: python -c pass"]["median_s"])
    for result in results.values():
        result["over_baseline_s"] = round(float(result["median_s"]) - baseline, 4)

    width = max(len(name) for name in results)
    print(f"{'case':<{width}}  median_s  min_s   max_s   over_baseline_s  exit")
    for name, result in results.items():
        print(
            f"{name:<{width}}  {result['median_s']:<8}  {result['min_s']:<6}  "
            f"{result['max_s']:<6}  {result['over_baseline_s']:<15}  {result['exit_code']}"
        )
    worst = max(float(r["median_s"]) for n, r in results.items() if n.startswith("fit"))
    print(f"fit's own planning in process (70B training, every strategy): {planning_s} s")
    print(
        f"target: median < {TARGET_S} s -> {'met' if worst < TARGET_S else 'MISSED'}; "
        f"torch imported: {'no' if torch_free else 'YES'}"
    )
    document = {
        "benchmark": "bench_fit.py",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "platform": platform.platform(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
        },
        "target_median_s": TARGET_S,
        "target_met": worst < TARGET_S,
        "torch_imported": not torch_free,
        "in_process_planning_s": planning_s,
        "load_average": list(os.getloadavg()),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
