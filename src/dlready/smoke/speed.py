"""Speed measurements of ``dlready smoke`` (imports torch; runs in the worker).

Method (shared/reference/anchors/checks.md sections 7-8, as the H100 capture was measured):
warm-up runs first, then each timed run on its own; on CUDA with CUDA events on the device's
stream, elsewhere with a wall clock around a synchronise; the figure is the median. Each
result is verified afterwards, so a fast device that computes garbage fails instead of
scoring well. The worker reports measured values; the parent adds the expected figure.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable

import torch
from msgspec import Struct

from dlready.smoke.checks import (
    SEED,
    UNIT_ROUNDOFF,
    DeviceContext,
    matmul_precision,
    synchronize,
    torch_dtype,
)
from dlready.smoke.outcome import Outcome, expect, passed, skipped

_MIB = 1024 * 1024


class Plan(Struct, frozen=True):
    """Sizes and repetitions for one device type and mode."""

    matmul_n: dict[str, int]
    warmup: int
    iterations: int
    budget_s: float
    """Upper bound on the timed part of one measurement; iterations shrink to fit it."""
    copy_bytes: int
    transfer_bytes: int


def plan_for(device_type: str, full: bool) -> Plan:
    """The sizes used on each device type (documented in docs/smoke.md)."""
    if device_type == "cuda":
        # 8192³ is the size of the reference figures (H100 capture, DCGM diagnostic);
        # 4096³ keeps --quick short and still reaches most of the large-matrix rate.
        n = 8192 if full else 4096
        return Plan(
            matmul_n=dict.fromkeys(("float32", "tf32", "float16", "bfloat16"), n),
            warmup=3,
            iterations=10 if full else 5,
            budget_s=4.0 if full else 1.0,
            copy_bytes=(1024 if full else 256) * _MIB,
            transfer_bytes=256 * _MIB,
        )
    if device_type == "mps":
        n = 4096 if full else 2048
        return Plan(
            matmul_n=dict.fromkeys(("float32", "float16", "bfloat16"), n),
            warmup=2,
            iterations=10 if full else 5,
            budget_s=4.0 if full else 1.0,
            copy_bytes=(1024 if full else 256) * _MIB,
            transfer_bytes=256 * _MIB,
        )
    # CPU: float16 GEMM has no fast kernel on most CPUs (about 1000x slower than bfloat16 on
    # the 2-core development VM), so it gets a smaller matrix.
    return Plan(
        matmul_n={
            "float32": 1024 if full else 512,
            "bfloat16": 1024 if full else 512,
            "float16": 512 if full else 256,
        },
        warmup=1,
        iterations=10 if full else 5,
        budget_s=2.0 if full else 0.25,
        copy_bytes=(256 if full else 64) * _MIB,
        transfer_bytes=0,
    )


def time_runs(
    run: Callable[[], object], device: torch.device, warmup: int, iterations: int, budget_s: float
) -> list[float]:
    """Seconds per run: ``warmup`` untimed runs, then up to ``iterations`` timed ones.

    After the first timed run, the count shrinks so the timed part stays near ``budget_s``
    (at least 3 runs, so the median means something).
    """
    for _ in range(warmup):
        run()
    synchronize(device)
    times: list[float] = []
    planned = iterations
    while len(times) < planned:
        if device.type == "cuda":
            start = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            end = torch.cuda.Event(enable_timing=True)  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            start.record()
            run()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1000.0)
        else:
            synchronize(device)
            started = time.perf_counter()
            run()
            synchronize(device)
            times.append(time.perf_counter() - started)
        if len(times) == 1 and times[0] > 0:
            planned = max(3, min(iterations, int(budget_s / times[0])))
    return times


def _free_bytes(device: torch.device) -> int | None:
    if device.type != "cuda":
        return None
    try:
        free, _ = torch.cuda.mem_get_info(device)
    except Exception:  # noqa: BLE001  # older torch or a driver that does not say
        return None
    return int(free)


def _fit_matmul(n: int, element_bytes: int, free: int | None) -> int:
    # Three n x n matrices must take at most half the free memory.
    while free is not None and n > 1024 and 3 * n * n * element_bytes > free // 2:
        n //= 2
    return n


def matmul_tolerance(key: str, n: int) -> float:
    """Unit roundoff used to verify an n x n x n product in ``key``.

    Float32 accumulation error grows like sqrt(n)·u (random-sign rounding errors); the
    16-bit formats and TF32 are dominated by their own rounding (inputs and output).
    """
    if key == "float32":
        return math.sqrt(n) * UNIT_ROUNDOFF["float32"]
    return UNIT_ROUNDOFF[key]


def verify_matmul(
    a: torch.Tensor, b: torch.Tensor, c: torch.Tensor, key: str, samples: int = 32
) -> tuple[int, float]:
    """Check sampled entries of ``c = a @ b`` against float64 on the CPU.

    The tolerance per entry is ``8·u·(|ref| + Σ|a||b| / sqrt(n))``: eight times the expected
    rounding error, so healthy hardware never trips it while garbage (zeros, NaN, stale or
    shuffled results) always does.

    Returns:
        (number of sampled entries out of tolerance, the largest error-to-tolerance ratio).
    """
    n = a.shape[1]
    gen = torch.Generator(device="cpu").manual_seed(SEED)
    rows = torch.randint(0, a.shape[0], (samples,), generator=gen)
    cols = torch.randint(0, b.shape[1], (samples,), generator=gen)
    a_rows = a[rows.to(a.device)].double().cpu()
    b_cols = b[:, cols.to(b.device)].double().cpu()
    reference = (a_rows * b_cols.t()).sum(dim=1)
    magnitude = (a_rows.abs() * b_cols.t().abs()).sum(dim=1)
    got = c[rows.to(c.device), cols.to(c.device)].double().cpu()
    tolerance = 8 * matmul_tolerance(key, n) * (reference.abs() + magnitude / math.sqrt(n))
    error = (got - reference).abs()
    error = torch.where(torch.isfinite(error), error, torch.full_like(error, math.inf))
    ratio = error / tolerance.clamp_min(1e-300)
    return int((ratio > 1).sum()), float(ratio.max())


def measure_matmul(ctx: DeviceContext, key: str) -> Outcome:
    """Median TFLOP/s of an n x n x n matmul in ``key``, with the result verified."""
    if key in ctx.unsupported:
        return skipped(ctx.unsupported[key])
    if key in ctx.slow:
        return skipped(ctx.slow[key])
    plan = plan_for(ctx.type, ctx.full)
    if key not in plan.matmul_n:
        return skipped(f"{key} is not timed on {ctx.type}")
    dtype = torch_dtype(key)
    element_bytes = torch.empty(0, dtype=dtype).element_size()
    n = _fit_matmul(plan.matmul_n[key], element_bytes, _free_bytes(ctx.device))
    gen = torch.Generator(device="cpu").manual_seed(SEED)
    # Generated on the CPU in float32 (device generators differ by backend), then moved.
    a = torch.randn(n, n, generator=gen).to(device=ctx.device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=ctx.device, dtype=dtype)
    c = torch.empty(n, n, device=ctx.device, dtype=dtype)
    with matmul_precision(ctx.device, tf32=key == "tf32"):
        times = time_runs(
            lambda: torch.matmul(a, b, out=c),
            ctx.device,
            plan.warmup,
            plan.iterations,
            plan.budget_s,
        )
    median_s = statistics.median(times)
    tflops = 2 * n**3 / median_s / 1e12 if median_s > 0 else math.inf
    wrong, ratio = verify_matmul(a, b, c, key)
    measured = {
        "value": tflops,
        "unit": "TFLOP/s",
        "n": n,
        "runs": len(times),
        "median_ms": median_s * 1e3,
        "min_ms": min(times) * 1e3,
        "max_ms": max(times) * 1e3,
        "verify_error_to_tolerance": ratio,
    }
    expect(
        wrong == 0,
        f"{key} matmul {n}³ computed wrong values: {wrong} of 32 sampled entries off the "
        f"float64 reference (up to {ratio:.3g}x the tolerance)",
        **measured,
    )
    expect(
        math.isfinite(tflops) and tflops > 0,
        f"{key} matmul timing is not usable ({median_s} s)",
        **measured,
    )
    return passed(f"{tflops:.3g} TFLOP/s at {n}³ (median of {len(times)})", **measured)


def _patterned(count: int, device: torch.device, pin: bool = False) -> torch.Tensor:
    """``count`` bytes of a seeded random pattern (1 MiB of random bytes, repeated)."""
    gen = torch.Generator(device="cpu").manual_seed(SEED)
    block = torch.randint(0, 256, (min(count, _MIB),), generator=gen, dtype=torch.uint8)
    host = block.repeat(-(-count // block.numel()))[:count]
    if pin:
        host = host.pin_memory()
    return host if device.type == "cpu" and not pin else host.to(device)


def measure_memory_copy(ctx: DeviceContext) -> Outcome:
    """Device-to-device copy bandwidth, counting bytes read plus bytes written."""
    plan = plan_for(ctx.type, ctx.full)
    count = plan.copy_bytes
    free = _free_bytes(ctx.device)
    while free is not None and count > 16 * _MIB and 2 * count > free // 2:
        count //= 2
    source = _patterned(count, ctx.device)
    target = torch.empty_like(source)
    times = time_runs(
        lambda: target.copy_(source), ctx.device, plan.warmup, plan.iterations, plan.budget_s
    )
    median_s = statistics.median(times)
    gbps = 2 * count / median_s / 1e9 if median_s > 0 else math.inf
    measured = {
        "value": gbps,
        "unit": "GB/s",
        "bytes": count,
        "runs": len(times),
        "median_ms": median_s * 1e3,
        "counting": "read + write",
    }
    expect(torch.equal(source, target), "the copied buffer differs from its source", **measured)
    return passed(f"{gbps:.4g} GB/s copying {count // _MIB} MiB (read + write counted)", **measured)


def _transfer(ctx: DeviceContext, to_device: bool) -> Outcome:
    direction = "host-to-device" if to_device else "device-to-host"
    if ctx.type == "cpu":
        return skipped(f"the device is the host CPU: there is no {direction} link to measure")
    if ctx.type == "mps":
        return skipped("Apple silicon shares memory between CPU and GPU: no PCIe link to measure")
    plan = plan_for(ctx.type, ctx.full)
    return transfer_bandwidth(ctx.device, plan.transfer_bytes, to_device, plan)


def transfer_bandwidth(
    device: torch.device, count: int, to_device: bool, plan: Plan, pin: bool = True
) -> Outcome:
    """Median GB/s of ``count``-byte copies between host memory and ``device``, verified.

    ``pin`` is False only in tests, which run this on a CPU (pinning needs an accelerator).
    """
    direction = "host-to-device" if to_device else "device-to-host"
    host = _patterned(count, torch.device("cpu"), pin=pin)
    on_device = torch.empty(count, dtype=torch.uint8, device=device)
    host_back = torch.empty(count, dtype=torch.uint8)
    if pin:
        host_back = host_back.pin_memory()
    if to_device:
        times = time_runs(
            lambda: on_device.copy_(host, non_blocking=True),
            device,
            plan.warmup,
            plan.iterations,
            plan.budget_s,
        )
    else:
        on_device.copy_(host)
        times = time_runs(
            lambda: host_back.copy_(on_device, non_blocking=True),
            device,
            plan.warmup,
            plan.iterations,
            plan.budget_s,
        )
    synchronize(device)
    median_s = statistics.median(times)
    gbps = count / median_s / 1e9 if median_s > 0 else math.inf
    measured = {
        "value": gbps,
        "unit": "GB/s",
        "bytes": count,
        "runs": len(times),
        "median_ms": median_s * 1e3,
        "pinned": pin,
    }
    if to_device:
        host_back.copy_(on_device)
    expect(torch.equal(host_back, host), f"the {direction} copy changed the data", **measured)
    pinned = "pinned" if pin else "pageable"
    return passed(f"{gbps:.3g} GB/s {direction}, {pinned}, {count // _MIB} MiB", **measured)


def measure_h2d(ctx: DeviceContext) -> Outcome:
    """Pinned host-to-device bandwidth."""
    return _transfer(ctx, to_device=True)


def measure_d2h(ctx: DeviceContext) -> Outcome:
    """Pinned device-to-host bandwidth."""
    return _transfer(ctx, to_device=False)


def burn(ctx: DeviceContext, seconds: float, interval_s: float = 1.0) -> Outcome:
    """Sustained matmul load for ``seconds``; every interval checks results stay identical.

    Like gpu-burn, each product is compared with the first one of the same inputs: a GPU that
    starts computing wrong values when hot fails here. The worker reports throughput per
    interval; the parent samples temperature, power and clock-event reasons meanwhile.
    """
    if ctx.type == "cpu":
        return skipped("--burn loads a GPU; the device is the CPU")
    if "bfloat16" not in ctx.unsupported and "bfloat16" not in ctx.slow:
        key = "bfloat16"
    elif "float16" not in ctx.unsupported:
        key = "float16"
    else:
        key = "float32"
    dtype = torch_dtype(key)
    element_bytes = torch.empty(0, dtype=dtype).element_size()
    n = _fit_matmul(8192, element_bytes, _free_bytes(ctx.device))
    gen = torch.Generator(device="cpu").manual_seed(SEED)
    a = torch.randn(n, n, generator=gen).to(device=ctx.device, dtype=dtype)
    b = torch.randn(n, n, generator=gen).to(device=ctx.device, dtype=dtype)
    first = torch.matmul(a, b)
    c = torch.empty_like(first)
    synchronize(ctx.device)
    intervals: list[dict[str, float]] = []
    faulty_elements = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        interval_start = time.perf_counter()
        runs = 0
        while time.perf_counter() - interval_start < interval_s:
            torch.matmul(a, b, out=c)
            runs += 1
            if runs % 8 == 0:
                synchronize(ctx.device)
        synchronize(ctx.device)
        elapsed = time.perf_counter() - interval_start
        mismatched = int((c != first).sum().item())
        faulty_elements += mismatched
        intervals.append(
            {
                "t_s": round(interval_start - started, 3),
                "tflops": 2 * n**3 * runs / elapsed / 1e12,
                "mismatched_elements": mismatched,
            }
        )
    rates = [item["tflops"] for item in intervals]
    measured = {
        "dtype": key,
        "n": n,
        "seconds": round(time.perf_counter() - started, 2),
        "intervals": intervals,
        "median_tflops": statistics.median(rates) if rates else None,
        "faulty_elements": faulty_elements,
    }
    expect(
        faulty_elements == 0,
        f"under sustained load the GPU computed {faulty_elements} wrong elements "
        "(results changed between identical matmuls)",
        **measured,
    )
    median = measured["median_tflops"]
    return passed(
        f"{len(intervals)} s of {key} {n}³ matmuls, median {median or 0:.3g} TFLOP/s, results "
        "stable",
        **measured,
    )


def _matmul_check(key: str) -> Callable[[DeviceContext], Outcome]:
    def check(ctx: DeviceContext) -> Outcome:
        return measure_matmul(ctx, key)

    check.__name__ = f"check_speed_matmul_{key}"
    check.__doc__ = f"Median TFLOP/s of a verified {key} matmul."
    return check


SPEED_CHECKS: dict[str, Callable[[DeviceContext], Outcome]] = {
    "speed.matmul.float32": _matmul_check("float32"),
    "speed.matmul.tf32": _matmul_check("tf32"),
    "speed.matmul.float16": _matmul_check("float16"),
    "speed.matmul.bfloat16": _matmul_check("bfloat16"),
    "speed.memory_copy": measure_memory_copy,
    "speed.h2d": measure_h2d,
    "speed.d2h": measure_d2h,
}
