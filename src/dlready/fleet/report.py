"""The typed fleet report (pure: no torch). It round-trips through JSON with
:func:`dlready.model.to_jsonable` / :func:`dlready.model.from_jsonable`.

Units are in names: ``_s`` seconds, ``_bytes``, ``_tflops`` (TFLOP/s), ``_gbps`` (GB/s,
1e9 bytes per second).
"""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from dlready.model import from_jsonable

STEP_NAMES = (
    "rendezvous",
    "heterogeneity",
    "health",
    "collective_correctness",
    "collective_speed",
    "point_to_point",
)
FINDING_KINDS = (
    "missing_rank",
    "lost_rank",
    "stalled_rank",
    "terminated",
    "interrupted",
    "init_failed",
    "driver",
    "gpu_count",
    "ranks_per_node",
    "torch",
    "torch_cuda",
    "nccl",
    "python",
    "dlready",
    "gpu_model",
    "gpu_memory",
    "pcie",
    "health",
    "straggler",
    "below_peak",
    "collective",
    "link_speed",
    "slow_link",
)
"""Every ``Finding.kind`` (documented in docs/fleet.md)."""
STEP_TITLES = {
    "rendezvous": "rendezvous and inventory",
    "heterogeneity": "heterogeneity",
    "health": "per-rank health and speed",
    "collective_correctness": "collective correctness",
    "collective_speed": "collective speed",
    "point_to_point": "point to point between nodes",
}


class GpuSummary(Struct, frozen=True):
    """One GPU of a node as its local rank 0 probed it (NVML)."""

    index: int
    name: str | None
    uuid: str | None
    memory_total_bytes: int | None
    compute_capability: str | None
    pcie_generation_max: int | None
    pcie_width_max: int | None


class NodeRecord(Struct, frozen=True):
    """One node, probed once by its local rank 0 with ``check``'s probes."""

    node: int
    hostname: str
    ranks: tuple[int, ...]
    driver_version: str | None
    cuda_driver_version: str | None
    gpus: tuple[GpuSummary, ...]
    cpu: str | None
    nics: tuple[str, ...]
    """Network links with their speed as ``name speed`` (``ib0 400 Gb/s``), where readable."""
    nic_gbps: float | None
    """The fastest network link of the node, in GB/s (None: unknown)."""
    probe_errors: tuple[str, ...] = ()


class SmokeResult(Struct, frozen=True):
    """One of smoke's checks, run on this rank's device."""

    name: str
    status: str
    message: str


class RankRecord(Struct, frozen=True):
    """One rank: where it runs, its software, its device, what it measured, how it is judged."""

    rank: int
    local_rank: int
    node: int
    hostname: str
    status: str
    """``ok``, ``failed``, ``straggler``, ``missing`` (never joined), ``lost`` (stopped answering,
    died or did not say it was stopped when the launcher stopped the run), ``stalled`` (still
    answering but did not finish a step in time) or ``unknown`` (the run was stopped before
    rank 0 heard from it)."""
    device: str | None = None
    device_name: str | None = None
    device_uuid: str | None = None
    memory_total_bytes: int | None = None
    compute_capability: str | None = None
    torch_version: str | None = None
    torch_cuda: str | None = None
    nccl_version: str | None = None
    python_version: str | None = None
    dlready_version: str | None = None
    threads: int | None = None
    smoke: tuple[SmokeResult, ...] = ()
    matmul_dtype: str | None = None
    matmul_tflops: float | None = None
    matmul_expected_tflops: float | None = None
    matmul_percent_of_median: float | None = None
    memory_gbps: float | None = None
    memory_expected_gbps: float | None = None
    memory_percent_of_median: float | None = None
    expected_source: str | None = None
    notes: tuple[str, ...] = ()


class StepRecord(Struct, frozen=True):
    """One of the six steps: how it ended and how long it took."""

    name: str
    status: str
    """``ok``, ``failed``, ``timed_out``, ``skipped`` (nothing to measure: ``message`` says
    why) or ``not_run``."""
    seconds: float | None
    timeout_s: float
    message: str = ""


class CollectiveCheck(Struct, frozen=True):
    """One collective on known values, checked exactly on every rank."""

    op: str
    status: str
    """``pass``, ``fail`` or ``error`` (the call itself raised)."""
    message: str
    wrong_senders: tuple[int, ...] = ()
    """Ranks whose contribution arrived wrong (on any receiver)."""
    wrong_receivers: tuple[int, ...] = ()
    """Ranks that received a wrong result."""


class CollectiveSpeed(Struct, frozen=True):
    """``all_reduce`` of one message size in one group, with nccl-tests' formulas.

    ``time_s`` is the average over the group's ranks of the time per call; algbw = size /
    time; busbw = algbw x 2(n-1)/n (https://github.com/NVIDIA/nccl-tests/blob/master/doc/PERFORMANCE.md).
    """

    scope: str
    """``world``, ``intra-node`` or ``inter-node``."""
    group: str
    ranks: tuple[int, ...]
    size_bytes: int
    iterations: int
    time_s: float
    algbw_gbps: float
    busbw_gbps: float


class LinkExpectation(Struct, frozen=True):
    """What the link under a scope should carry, and where that figure comes from."""

    scope: str
    gbps: float | None
    source: str
    """Where ``gbps`` comes from; when it is None, why no figure is known (in words)."""
    measured_busbw_gbps: float | None = None
    percent: float | None = None


class PointToPoint(Struct, frozen=True):
    """One leg of the ring between nodes: ``src_rank`` sends to ``dst_rank``."""

    src_rank: int
    dst_rank: int
    src_node: int
    dst_node: int
    src_host: str
    dst_host: str
    size_bytes: int
    gbps: float | None
    percent_of_median: float | None = None


class Finding(Struct, frozen=True):
    """Something that makes the fleet not ready or not uniform, with what to do about it."""

    kind: str
    message: str
    fix: str
    ranks: tuple[int, ...] = ()
    hosts: tuple[str, ...] = ()


class FleetReport(Struct, frozen=True):
    """Everything rank 0 gathered and judged."""

    launcher: str
    backend: str | None
    world_size: int
    timeout_s: float
    nodes: tuple[NodeRecord, ...]
    ranks: tuple[RankRecord, ...]
    steps: tuple[StepRecord, ...]
    collective_checks: tuple[CollectiveCheck, ...]
    collective_speeds: tuple[CollectiveSpeed, ...]
    link_expectations: tuple[LinkExpectation, ...]
    point_to_point: tuple[PointToPoint, ...]
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()
    seconds: float | None = None


def report_from_jsonable(data: Any) -> FleetReport:
    """Rebuild a report from ``fleet --json``'s ``data`` with the model's one loader.

    (The fleet once had its own typed loader because the generic one was slow; since the
    generic one builds each type's decoder once, it loads the 1,000-node x 8-GPU report of
    benchmarks/bench_fleet.py in 0.39 s, against 0.35 s for the old one.)

    Raises:
        SnapshotFormatError: naming the JSON path of the first value that does not fit.
    """
    report: FleetReport = from_jsonable(FleetReport, data, "$.data")
    return report
