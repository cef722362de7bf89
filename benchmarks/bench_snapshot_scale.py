"""Re-judging a saved report against making it, side by side, for 1,000 to 10,000 GPUs.

Usage:  python benchmarks/bench_snapshot_scale.py [--gpus 1000 5000 10000] [--runs 5] [--out FILE]

For each GPU count, the recorded H100 server (tests/fixtures/h100-80gb-hbm3) is replayed with
that many copies of its GPU. Two paths are timed, each in a fresh interpreter (so neither runs
on the other's heap), alternating, ``--runs`` times each:

- make: probe the replayed machine and judge it (``collect_snapshot`` + ``build_report``: what
  ``dlready check`` does, minus the driver's own latency per NVML call);
- re-judge: read the report that ``check --json`` writes for it back from disk and judge it
  (``load_snapshot_file`` + ``build_report``: what ``dlready check --snapshot`` does).

Target (issue #8): re-judging costs no more than making, at every count (ratio <= 1).
The median of ``--runs`` is kept; the file size per GPU is recorded too. Building the replay,
starting the interpreter and writing the report are outside the timed sections.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))

from dlready.commands.check import build_report  # noqa: E402
from dlready.exitcodes import ExitCode  # noqa: E402
from dlready.model import TorchInstall, to_jsonable  # noqa: E402
from dlready.output import dump_json, envelope  # noqa: E402
from dlready.probes.collect import ProbeBackends, collect_snapshot  # noqa: E402
from dlready.probes.host_gateway import ReplayHost  # noqa: E402
from dlready.probes.hostfs import ReplayHostFiles  # noqa: E402
from dlready.probes.nvml_gateway import ReplayNvml  # noqa: E402
from dlready.render.check_json import report_jsonable  # noqa: E402
from dlready.snapshot_file import load_snapshot_file  # noqa: E402

MACHINE = REPO / "tests/fixtures/h100-80gb-hbm3"


def replayed_backends(gpu_count: int) -> ProbeBackends:
    """The recorded H100 server with ``gpu_count`` copies of its GPU."""
    capture = json.loads((MACHINE / "capture.json").read_text())
    return ProbeBackends(
        files=ReplayHostFiles.from_procfiles((MACHINE / "procfiles.txt").read_text()),
        host=ReplayHost.from_capture(capture),
        nvml=ReplayNvml.from_capture(capture["nvml"]).with_gpu_count(gpu_count),
        sysctl=lambda name: None,
        torch=lambda: TorchInstall(installed=False),
        nvml_timeout_s=600.0,
    )


def make(gpu_count: int, report_path: Path) -> float:
    """Seconds to probe and judge ``gpu_count`` replayed GPUs; writes the ``check --json`` report."""
    backends = replayed_backends(gpu_count)
    started = time.perf_counter()
    snapshot = collect_snapshot(backends=backends)
    report, _ = build_report(snapshot, None, None)
    elapsed = time.perf_counter() - started
    document = envelope(
        "check",
        ExitCode.OK,
        report_jsonable(report, snapshot, "minimum", False),
        status=str(report.status),
    )
    report_path.write_text(dump_json(document))
    return elapsed


def rejudge(report_path: Path) -> float:
    """Seconds to read a saved report back and judge it; checks it judges as it was made."""
    started = time.perf_counter()
    report, _ = build_report(load_snapshot_file(report_path), None, None)
    elapsed = time.perf_counter() - started
    saved = json.loads(report_path.read_text())["data"]["components"]
    assert to_jsonable(report.components) == saved, "the re-judged report differs"
    return elapsed


def in_child(*args: str) -> float:
    """Run one measurement in a fresh interpreter, so neither path inherits the other's heap."""
    output = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(output.strip().splitlines()[-1])


def measure(gpu_count: int, runs: int, folder: Path) -> dict[str, Any]:
    """Make and re-judge one machine of ``gpu_count`` GPUs, ``runs`` times each, alternating."""
    path = folder / f"report-{gpu_count}.json"
    make_samples, rejudge_samples = [], []
    for _ in range(runs):
        make_samples.append(in_child("make", str(gpu_count), str(path)))
        rejudge_samples.append(in_child("rejudge", str(path)))
    make_s, rejudge_s = statistics.median(make_samples), statistics.median(rejudge_samples)
    return {
        "gpus": gpu_count,
        "make_s": round(make_s, 3),
        "rejudge_s": round(rejudge_s, 3),
        "rejudge_over_make": round(rejudge_s / make_s, 3),
        "make_ms_per_gpu": round(make_s / gpu_count * 1000, 3),
        "rejudge_ms_per_gpu": round(rejudge_s / gpu_count * 1000, 3),
        "file_bytes_per_gpu": round(path.stat().st_size / gpu_count),
        "make_samples_s": [round(x, 3) for x in make_samples],
        "rejudge_samples_s": [round(x, 3) for x in rejudge_samples],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[1000, 5000, 10000])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/snapshot_scale.json")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        seconds = make(int(rest[0]), Path(rest[1])) if kind == "make" else rejudge(Path(rest[0]))
        print(seconds)
        return
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for gpu_count in args.gpus:
            row = measure(gpu_count, args.runs, Path(folder))
            rows.append(row)
            print(json.dumps(row), flush=True)
    result = {
        "benchmark": "re-judge a saved check --json report vs probe+judge, replayed H100 GPUs",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "runs": args.runs,
        "target": "rejudge_over_make <= 1 at every count",
        "rows": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
