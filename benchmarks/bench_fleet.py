"""The fleet's own cost, its all_reduce figures next to torch's, and a 1,000-node report.

Usage:  python benchmarks/bench_fleet.py [--runs 3] [--out FILE]

1. Overhead: wall time of `torchrun --standalone --nproc-per-node N -m dlready fleet --json`
   for N = 2 and 4 CPU ranks (gloo), next to the smallest torchrun job (init the process
   group, one barrier, leave) run alternately with it; the difference is what the fleet's six
   steps cost.
2. all_reduce bus bandwidth: in one torchrun job of 2 gloo ranks, the fleet's own measurement
   (`runtime.time_all_reduce`, wall clock around N calls, averaged over ranks) next to
   torch.distributed's own timing of the same all_reduce (the profiler's `gloo:all_reduce`
   events, median per size, averaged over ranks), both through busbw = size / time x 2(n-1)/n.
3. Scale: a fleet report of 1,000 nodes x 8 GPUs built from the recorded H100
   (tests/fleet_scenarios.py): judge it (rank 0's work), load the saved JSON back into the model,
   render the table, diff it against a copy with one straggler. Target (issue #10): load +
   render + diff under 5 s. Baseline: plain `json.loads` of the same file.

Writes ``benchmarks/results/fleet.json``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SCALE_TARGET_S = 5.0

MINIMAL_JOB = (
    "import torch.distributed as dist; dist.init_process_group('gloo'); dist.barrier(); "
    "dist.destroy_process_group()"
)


def torchrun(nproc: int, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc-per-node={nproc}",
        *args,
    ]


def timed(argv: list[str]) -> tuple[float, int, str]:
    started = time.perf_counter()
    completed = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=600)
    return time.perf_counter() - started, completed.returncode, completed.stdout


def overhead(runs: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for nproc in (2, 4):
        fleet_times, base_times, codes, report_seconds = [], [], [], []
        for _ in range(runs):
            seconds, _code, _ = timed(torchrun(nproc, "-c", MINIMAL_JOB))
            base_times.append(seconds)
            seconds, code, stdout = timed(
                torchrun(nproc, "-m", "dlready", "fleet", "--json", "--timeout", "60")
            )
            fleet_times.append(seconds)
            codes.append(code)
            with contextlib.suppress(ValueError, KeyError):
                report_seconds.append(json.loads(stdout)["data"]["seconds"])
        fleet_median = statistics.median(fleet_times)
        base_median = statistics.median(base_times)
        results[f"{nproc}_ranks"] = {
            "fleet_wall_median_s": round(fleet_median, 3),
            "fleet_wall_s": [round(t, 3) for t in fleet_times],
            "rank0_report_seconds": report_seconds,
            "minimal_torchrun_job_median_s": round(base_median, 3),
            "fleet_minus_minimal_s": round(fleet_median - base_median, 3),
            "exit_codes": codes,
        }
    return results


WORKER = r"""
import json, statistics, sys
import torch, torch.distributed as dist
from torch.profiler import ProfilerActivity, profile
from dlready.fleet.runtime import message_sizes, time_all_reduce, _iterations

dist.init_process_group("gloo")
rank, world = dist.get_rank(), dist.get_world_size()
device = torch.device("cpu")
sizes = message_sizes("cpu")
mine = time_all_reduce(None, sizes, device)
profiled = []
for size in sizes:
    tensor = torch.ones(size // 4)
    iterations = _iterations(size, "cpu")
    dist.all_reduce(tensor)
    dist.barrier()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(iterations):
            dist.all_reduce(tensor)
    events = [e.cpu_time_total / 1e6 for e in prof.events() if e.name == "gloo:all_reduce"]
    profiled.append({"size_bytes": size, "time_s": statistics.median(events), "events": len(events)})
everything = [None] * world
dist.all_gather_object(everything, {"fleet": mine, "profiler": profiled})
if rank == 0:
    print(json.dumps(everything))
dist.destroy_process_group()
"""


def bus_bandwidth() -> dict[str, Any]:
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as script:
        script.write(WORKER)
    try:
        for _attempt in range(2):  # a busy shared machine sometimes loses the first rendezvous
            _, code, stdout = timed(torchrun(2, script.name))
            if code == 0:
                break
    finally:
        os.unlink(script.name)
    if code != 0:
        return {"error": f"the torchrun job exited {code} twice"}
    per_rank = json.loads(stdout.strip().splitlines()[-1])
    n = len(per_rank)
    rows = []
    for index, size_figure in enumerate(per_rank[0]["fleet"]):
        size = size_figure["size_bytes"]
        fleet_s = statistics.mean(r["fleet"][index]["time_s"] for r in per_rank)
        torch_s = statistics.mean(r["profiler"][index]["time_s"] for r in per_rank)

        def busbw(seconds: float, size: int = size) -> float:
            return size / seconds / 1e9 * 2 * (n - 1) / n

        rows.append(
            {
                "size_bytes": size,
                "fleet_time_s": fleet_s,
                "torch_profiler_time_s": torch_s,
                "fleet_busbw_gbps": round(busbw(fleet_s), 4),
                "torch_profiler_busbw_gbps": round(busbw(torch_s), 4),
                "ratio_fleet_to_profiler": round(busbw(fleet_s) / busbw(torch_s), 3),
            }
        )
    return {
        "ranks": n,
        "backend": "gloo",
        "note": "the profiler's gloo:all_reduce event times the algorithm on gloo's own thread; "
        "the fleet times each blocking call from Python, as a training loop sees it",
        "sizes": rows,
    }


def scale() -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests"))
    from dlready.exitcodes import ExitCode
    from dlready.fleet.assemble import assemble
    from dlready.fleet.report import report_from_jsonable
    from dlready.model import to_jsonable
    from dlready.output import dump_json, envelope
    from dlready.render.fleet_render import render_text
    from dlready.report_diff import diff_reports
    from fleet_scenarios import h100_fleet

    def with_straggler(g: Any) -> None:
        g.results["health"][4321]["matmul_tflops"] = 600.0

    gathered = h100_fleet(1000)
    started = time.perf_counter()
    report = assemble(gathered)
    judge_s = time.perf_counter() - started
    other = assemble(h100_fleet(1000, change=with_straggler))
    with tempfile.TemporaryDirectory() as folder:
        first = Path(folder) / "a.json"
        second = Path(folder) / "b.json"
        first.write_text(dump_json(envelope("fleet", ExitCode.OK, to_jsonable(report))))
        second.write_text(dump_json(envelope("fleet", ExitCode.NOT_READY, to_jsonable(other))))
        size_mib = first.stat().st_size / 2**20

        started = time.perf_counter()
        raw = json.loads(first.read_text())
        json_loads_s = time.perf_counter() - started

        started = time.perf_counter()
        document = json.loads(first.read_text())
        loaded = report_from_jsonable(document["data"])
        load_s = time.perf_counter() - started

        started = time.perf_counter()
        text = render_text(loaded)
        render_s = time.perf_counter() - started

        started = time.perf_counter()
        differences = diff_reports(document, json.loads(second.read_text()))
        diff_s = time.perf_counter() - started
    assert raw["data"]["world_size"] == 8000
    total = load_s + render_s + diff_s
    return {
        "nodes": 1000,
        "gpus": 8000,
        "report_mib": round(size_mib, 1),
        "judge_s": round(judge_s, 3),
        "json_loads_s": round(json_loads_s, 3),
        "load_into_model_s": round(load_s, 3),
        "render_table_s": round(render_s, 3),
        "table_lines": text.count("\n"),
        "diff_s": round(diff_s, 3),
        "differences_found": [d.path for d in differences],
        "load_render_diff_s": round(total, 3),
        "target": {"rule": "load + render + diff < 5 s", "met": total < SCALE_TARGET_S},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/fleet.json")
    args = parser.parse_args()
    os.environ.setdefault("NO_COLOR", "1")
    results = {
        # The load average says whether other work shared the CPUs (it did in earlier runs).
        "machine": {"cpus": os.cpu_count(), "load_average_1_min_at_start": os.getloadavg()[0]},
        "scale": scale(),
        "all_reduce_bus_bandwidth": bus_bandwidth(),
        "overhead": overhead(args.runs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
