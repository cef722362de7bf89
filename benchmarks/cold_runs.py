"""Cold runs of a command, each a fresh process: what a person waits for.

Shared by the benchmarks that time whole commands (install-cmd, fit).
"""

from __future__ import annotations

import os
import statistics
import subprocess
import time

# As installed, Python reads cached bytecode; a PYTHONDONTWRITEBYTECODE=1 shell (this project's
# development VM sets it) would recompile every module on every run and inflate the figure by
# ~60 ms. The children may write __pycache__ (git-ignored); the warm-up run fills it.
CHILD_ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def run_cold(argv: list[str]) -> tuple[float, int]:
    """Wall seconds and exit code of one fresh process."""
    started = time.perf_counter()
    result = subprocess.run(argv, capture_output=True, check=False, timeout=60, env=CHILD_ENV)
    return time.perf_counter() - started, result.returncode


def measure(argv: list[str], runs: int) -> dict[str, float | int]:
    """Median and spread of ``runs`` cold runs, after one unmeasured warm-up (page cache)."""
    run_cold(argv)
    times = []
    codes = set()
    for _ in range(runs):
        elapsed, code = run_cold(argv)
        times.append(elapsed)
        codes.add(code)
    return {
        "median_s": round(statistics.median(times), 4),
        "min_s": round(min(times), 4),
        "max_s": round(max(times), 4),
        "runs": runs,
        "exit_code": max(codes),
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
