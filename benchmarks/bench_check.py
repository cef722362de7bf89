"""Time a cold `dlready check --json` against `python -m torch.utils.collect_env`, side by side.

Usage:  python benchmarks/bench_check.py [--runs 15] [--collect-env-runs 3] [--out FILE]

Every run is a fresh process (cold: interpreter start and imports included), so the figure is
what a person waits for. Peak memory is each child's maximum RSS (``wait4``). The baseline is
an empty interpreter (`python -c pass`) measured in the same run, and collect_env (what people
use today) is measured in the same run too, so the ratios hold on any machine.

It also measures dlready's own cost per extra GPU: the NVIDIA probe over a replay of the
recorded H100 with 1, 2, 4 and 8 GPUs. That excludes the driver's own latency per NVML call
(on the recorded H100 the whole NVML dump took 161 ms including import and init).

With two or more CPUs, ``check`` probes in a forked child while its command line loads (the
head start, docs/architecture.md); pinned to one CPU it probes in its own process, and that
figure is measured too.

Targets: median <= 0.11 s on the 2-core VM and >= 15x faster than collect_env (issue 9; issue 2
asked for 0.15 s and 10x), peak RSS <= 50 MiB, a few ms per extra GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from cold_runs import CHILD_ENV, measure

REPO = Path(__file__).resolve().parents[1]


def per_gpu_cost_ms() -> dict[str, float]:
    """dlready's own time in the NVIDIA probe per extra GPU (replayed H100)."""
    sys.path.insert(0, str(REPO / "src"))
    from dlready.probes.nvidia import probe_nvidia
    from dlready.probes.nvml_gateway import ReplayNvml

    capture = json.loads((REPO / "tests/fixtures/h100-80gb-hbm3/capture.json").read_text())
    base = ReplayNvml.from_capture(capture["nvml"])
    result = {}
    for count in (1, 2, 4, 8):
        replay = base.with_gpu_count(count)
        samples = []
        for _ in range(30):
            started = time.perf_counter()
            probe_nvidia(replay, timeout_s=10)
            samples.append(time.perf_counter() - started)
        result[f"{count}_gpus_ms"] = round(statistics.median(samples) * 1000, 3)
    result["per_extra_gpu_ms"] = round((result["8_gpus_ms"] - result["1_gpus_ms"]) / 7, 3)
    return result


def isolation_cost_ms(runs: int = 30) -> dict[str, float]:
    """What running the NVML probe in a forked child costs: ``collect_snapshot`` with and without
    the isolation, interleaved in one process (this machine's real probes; the replayed 8-GPU
    H100, whose result crosses the pipe). pynvml is imported first: a cold ``check`` imports it
    once either way (on a thread, or in the child), and without this the child would import it
    again on every run while the in-process probe reuses the first import."""
    sys.path.insert(0, str(REPO / "src"))
    sys.path.insert(0, str(REPO / "tests"))
    from dlready.probes.collect import ProbeBackends, collect_snapshot
    from dlready.probes.nvml_gateway import ReplayNvml, preload

    preload()
    from machines import replay_backends

    capture = json.loads((REPO / "tests/fixtures/h100-80gb-hbm3/capture.json").read_text())
    eight = ReplayNvml.from_capture(capture["nvml"]).with_gpu_count(8)
    setups = {
        "this_machine": lambda isolate: ProbeBackends(isolate_nvml=isolate),
        "replay_8_gpus": lambda isolate: _replay(replay_backends, eight, isolate),
    }
    result: dict[str, float] = {}
    for name, make in setups.items():
        timings: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(runs):
            for isolate in (False, True):
                backends = make(isolate)
                started = time.perf_counter()
                collect_snapshot(backends=backends)
                timings[isolate].append(time.perf_counter() - started)
        off = statistics.median(timings[False]) * 1000
        on = statistics.median(timings[True]) * 1000
        result[f"{name}_in_process_ms"] = round(off, 2)
        result[f"{name}_isolated_ms"] = round(on, 2)
        result[f"{name}_cost_ms"] = round(on - off, 2)
    return result


def _replay(replay_backends: Any, nvml: Any, isolate: bool) -> Any:
    backends = replay_backends("h100-80gb-hbm3", nvml=nvml)
    backends.isolate_nvml = isolate
    return backends


def build_probe_ms(runs: int = 20) -> dict[str, float]:
    """The build tools probe in this process: with this machine's PATH (nvcc, gcc... found and
    run) and with an empty PATH (the cost when no tool is installed)."""
    import tempfile

    sys.path.insert(0, str(REPO / "src"))
    from dlready.model import OperatingSystem
    from dlready.probes.build_tools import probe_build_tools
    from dlready.probes.tools_gateway import RealTools

    def median_ms() -> float:
        probe_build_tools(RealTools(), OperatingSystem.LINUX)
        samples = []
        for _ in range(runs):
            started = time.perf_counter()
            probe_build_tools(RealTools(), OperatingSystem.LINUX)
            samples.append(time.perf_counter() - started)
        return round(statistics.median(samples) * 1000, 2)

    result = {"tools_on_path_ms": median_ms()}
    saved = os.environ.get("PATH", "")
    with tempfile.TemporaryDirectory() as empty:
        os.environ["PATH"] = empty
        try:
            result["no_tools_ms"] = median_ms()
        finally:
            os.environ["PATH"] = saved
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--collect-env-runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/check.json")
    args = parser.parse_args()

    python = sys.executable
    results: dict[str, object] = {
        "python_baseline": measure([python, "-c", "pass"], args.runs),
        "dlready_check_json": measure([python, "-m", "dlready", "check", "--json"], args.runs),
    }
    # The same with no build tool on PATH (nvcc, gcc, ninja absent): what the build part costs
    # a machine without them.
    empty_path = Path(os.environ.get("TMPDIR", "/tmp")) / "dlready-bench-empty-path"
    empty_path.mkdir(exist_ok=True)
    results["dlready_check_json_no_tools_on_path"] = measure(
        [python, "-m", "dlready", "check", "--json"],
        args.runs,
        {**CHILD_ENV, "PATH": str(empty_path)},
    )
    # On one CPU there is no head start (the probes run in check's own process).
    results["dlready_check_json_one_cpu"] = measure(
        [python, "-m", "dlready", "check", "--json"], args.runs, one_cpu=True
    )
    try:
        import importlib.util

        has_torch = importlib.util.find_spec("torch") is not None
    except (ImportError, ValueError):
        has_torch = False
    if has_torch:
        results["collect_env"] = measure(
            [python, "-m", "torch.utils.collect_env"], args.collect_env_runs
        )
    results["nvidia_probe_replay"] = per_gpu_cost_ms()
    results["nvml_isolation"] = isolation_cost_ms()
    results["build_probe_in_process"] = build_probe_ms()

    check = results["dlready_check_json"]
    assert isinstance(check, dict)
    ratios: dict[str, float] = {
        "check_over_python_baseline": round(
            check["median_s"] / results["python_baseline"]["median_s"], 2
        ),  # type: ignore[index]
    }
    if "collect_env" in results:
        ratios["collect_env_over_check"] = round(
            results["collect_env"]["median_s"] / check["median_s"], 1
        )  # type: ignore[index]
    results["ratios"] = ratios
    results["machine"] = {"cpus": os.cpu_count(), "python": sys.version.split()[0]}

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{'what':34} {'median s':>9} {'min s':>7} {'max s':>7} {'peak MiB':>9}")
    for name in (
        "python_baseline",
        "dlready_check_json",
        "dlready_check_json_no_tools_on_path",
        "collect_env",
    ):
        row = results.get(name)
        if isinstance(row, dict):
            print(
                f"{name:34} {row['median_s']:9.3f} {row['min_s']:7.3f} {row['max_s']:7.3f} {row['peak_rss_mib']:9.1f}"
            )
    print("nvidia probe (replay):", results["nvidia_probe_replay"])
    print("NVML probe in a forked child:", results["nvml_isolation"])
    print("build tools probe (in process):", results["build_probe_in_process"])
    print("ratios:", ratios)
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
