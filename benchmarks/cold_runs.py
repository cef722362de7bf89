"""Cold runs of a command, each a fresh process: what a person waits for.

Shared by the benchmarks that time whole commands (check, install-cmd, fit).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import threading
import time

# As installed, Python reads cached bytecode; a PYTHONDONTWRITEBYTECODE=1 shell (this project's
# development VM sets it) would recompile every module on every run and inflate the figure by
# ~60 ms. The children may write __pycache__ (git-ignored); the warm-up run fills it.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


RUN_TIMEOUT_S = 60.0


def run_cold(
    argv: list[str], env: dict[str, str] | None = None, one_cpu: bool = False
) -> tuple[float, float, int]:
    """Wall seconds, peak RSS in MiB (``wait4``) and exit code of one fresh process
    (``one_cpu``: pinned to one CPU, as in a container with a one-CPU quota)."""
    started = time.perf_counter()
    process = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env or CHILD_ENV,
        preexec_fn=(lambda: os.sched_setaffinity(0, {min(os.sched_getaffinity(0))}))
        if one_cpu
        else None,
    )
    killer = threading.Timer(RUN_TIMEOUT_S, process.kill)  # a hung command ends the run
    killer.start()
    try:
        _, status, usage = os.wait4(process.pid, 0)
    finally:
        killer.cancel()
    elapsed = time.perf_counter() - started
    return elapsed, usage.ru_maxrss / 1024.0, os.waitstatus_to_exitcode(status)


def measure(
    argv: list[str], runs: int, env: dict[str, str] | None = None, one_cpu: bool = False
) -> dict[str, float | int]:
    """Median and spread of ``runs`` cold runs, after one unmeasured warm-up (page cache,
    bytecode), their peak RSS and their worst exit code."""
    run_cold(argv, env, one_cpu)
    times, peaks, codes = [], [], set()
    for _ in range(runs):
        elapsed, peak_mib, code = run_cold(argv, env, one_cpu)
        times.append(elapsed)
        peaks.append(peak_mib)
        codes.add(code)
    return {
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "runs": runs,
        "exit_code": max(codes),
        "peak_rss_mib": round(max(peaks), 1),
    }


def imports_torch(argv: list[str]) -> bool:
    """Whether the command imports torch (``-X importtime`` lists every imported module)."""
    result = subprocess.run(
        [argv[0], "-X", "importtime", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=CHILD_ENV,
    )
    return any(line.rstrip().endswith("| torch") for line in result.stderr.splitlines())
