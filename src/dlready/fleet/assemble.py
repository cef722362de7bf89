"""From what the ranks posted to one judged :class:`FleetReport` (pure: no torch).

Rank 0 calls :func:`assemble` with the raw JSON records it collected from the store; tests
and the scale benchmark call it with generated records.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from dlready.fleet import judge
from dlready.fleet.report import (
    CollectiveCheck,
    CollectiveSpeed,
    Finding,
    FleetReport,
    GpuSummary,
    NodeRecord,
    PointToPoint,
    RankRecord,
    SmokeResult,
    StepRecord,
)


class Layout(Struct):
    """Node of every rank, decided by rank 0 from the join records."""

    node_of: list[int]
    hostnames: list[str]

    @property
    def node_count(self) -> int:
        """How many nodes."""
        return max(self.node_of) + 1 if self.node_of else 0

    def ranks_of_node(self, node: int) -> list[int]:
        """The ranks on one node, in rank order."""
        return [r for r, n in enumerate(self.node_of) if n == node]

    def local_index(self, rank: int) -> int:
        """Position of a rank among its node's ranks."""
        return self.ranks_of_node(self.node_of[rank]).index(rank)

    def uniform(self) -> bool:
        """Every node runs the same number of ranks."""
        return len({len(self.ranks_of_node(n)) for n in range(self.node_count)}) == 1


def _node_key(join: Mapping[str, Any]) -> str:
    # Two containers on two machines may share a hostname; the launcher's node rank tells
    # them apart (and lets tests run two "nodes" on one machine).
    if join.get("node_rank") is not None:
        return f"{join['hostname']}#{join['node_rank']}"
    return str(join["hostname"])


def node_numbers(joins: Mapping[int, Mapping[str, Any]]) -> dict[int, int]:
    """Node number of every joined rank, nodes numbered in order of their lowest rank."""
    keys: dict[str, int] = {}
    return {rank: keys.setdefault(_node_key(joins[rank]), len(keys)) for rank in sorted(joins)}


def layout_from_joins(joins: Sequence[Mapping[str, Any]]) -> Layout:
    """The layout of a complete fleet (``joins[r]`` is rank r's record)."""
    numbers = node_numbers(dict(enumerate(joins)))
    return Layout(
        node_of=[numbers[r] for r in range(len(joins))],
        hostnames=[str(j["hostname"]) for j in joins],
    )


class Gathered(Struct):
    """Everything rank 0 collected, as posted."""

    launcher: str
    world_size: int
    timeout_s: float
    backend: str | None = None
    joins: dict[int, dict[str, Any]] = field(default_factory=dict)
    results: dict[str, dict[int, Any]] = field(default_factory=dict)
    steps: list[StepRecord] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    """Findings about the run itself (missing, lost or stalled ranks), found by rank 0."""
    lost: set[int] = field(default_factory=set)
    """Ranks that stopped answering, or died when the launcher stopped the run."""
    stalled: set[int] = field(default_factory=set)
    """Ranks that still answered but did not finish a step within the timeout."""
    stopped_early: bool = False
    """The launcher stopped the run before rank 0 could hear from any rank."""
    notes: list[str] = field(default_factory=list)
    seconds: float | None = None


def likely_host(rank: int, joins: Mapping[int, Mapping[str, Any]]) -> str | None:
    """Where a rank that never reported should run: torchrun and srun number ranks node by
    node, so with L ranks per node rank r shares its node with the other ranks of r // L."""
    sizes = {j.get("local_world_size") for j in joins.values()}
    if len(sizes) != 1:
        return None
    size = sizes.pop()
    if not isinstance(size, int) or size < 1:
        return None
    hosts = {str(j["hostname"]) for r, j in joins.items() if r // size == rank // size}
    return hosts.pop() if len(hosts) == 1 else None


def nodes_from(gathered: Gathered, numbers: Mapping[int, int]) -> list[NodeRecord]:
    ranks_by_node: dict[int, list[int]] = defaultdict(list)
    for rank, node in numbers.items():
        ranks_by_node[node].append(rank)
    nodes = []
    for node, ranks in sorted(ranks_by_node.items()):
        first = gathered.joins[min(ranks)]
        probe = (
            next(
                (gathered.joins[r].get("node") for r in ranks if gathered.joins[r].get("node")),
                None,
            )
            or {}
        )
        nodes.append(
            NodeRecord(
                node=node,
                hostname=str(first["hostname"]),
                ranks=tuple(sorted(ranks)),
                driver_version=probe.get("driver_version"),
                cuda_driver_version=probe.get("cuda_driver_version"),
                gpus=tuple(
                    GpuSummary(
                        index=int(g["index"]),
                        name=g.get("name"),
                        uuid=g.get("uuid"),
                        memory_total_bytes=g.get("memory_total_bytes"),
                        compute_capability=g.get("compute_capability"),
                        pcie_generation_max=g.get("pcie_generation_max"),
                        pcie_width_max=g.get("pcie_width_max"),
                    )
                    for g in probe.get("gpus", [])
                ),
                cpu=probe.get("cpu"),
                nics=tuple(probe.get("nics", [])),
                nic_gbps=probe.get("nic_gbps"),
                probe_errors=tuple(probe.get("errors", [])),
            )
        )
    return nodes


def _run_status(gathered: Gathered, rank: int) -> str:
    """``lost``, ``stalled`` or ``ok``: what rank 0's deadlines found about a joined rank."""
    if rank in gathered.lost:
        return "lost"
    return "stalled" if rank in gathered.stalled else "ok"


def rank_records(
    gathered: Gathered, numbers: Mapping[int, int], nodes: Sequence[NodeRecord]
) -> list[RankRecord]:
    cpu_of_node = {n.node: n.cpu for n in nodes}
    health = gathered.results.get("health", {})
    records = []
    for rank in range(gathered.world_size):
        join = gathered.joins.get(rank)
        if join is None:
            host = likely_host(rank, gathered.joins)
            records.append(
                RankRecord(
                    rank=rank,
                    local_rank=-1,
                    node=-1,
                    hostname=host or "unknown",
                    status="unknown" if gathered.stopped_early else "missing",
                    notes=(
                        ("the run was stopped before rank 0 heard from it",)
                        if gathered.stopped_early
                        else ("never joined",)
                    ),
                )
            )
            continue
        node = numbers[rank]
        device = str(join.get("device") or "")
        record = RankRecord(
            rank=rank,
            local_rank=int(join.get("local_rank", 0)),
            node=node,
            hostname=str(join["hostname"]),
            status=_run_status(gathered, rank),
            device=device or None,
            device_name=join.get("device_name")
            or (cpu_of_node.get(node) if device == "cpu" else None),
            device_uuid=join.get("device_uuid"),
            memory_total_bytes=join.get("memory_total_bytes"),
            compute_capability=join.get("compute_capability"),
            torch_version=join.get("torch_version"),
            torch_cuda=join.get("torch_cuda"),
            nccl_version=join.get("nccl_version"),
            python_version=join.get("python_version"),
            dlready_version=join.get("dlready_version"),
            threads=join.get("threads"),
        )
        measured = health.get(rank)
        if isinstance(measured, dict):
            smoke = tuple(
                SmokeResult(name=str(s["name"]), status=str(s["status"]), message=str(s["message"]))
                for s in measured.get("smoke", [])
            )
            notes = list(record.notes)
            if measured.get("error"):
                notes.append(f"health step failed: {measured['error']}")
            if measured.get("finite") is False:
                notes.append("the matmul produced NaN or infinity")
            failed = any(s.status == "fail" for s in smoke) or bool(measured.get("error"))
            record = replace(
                record,
                smoke=smoke,
                matmul_dtype=measured.get("matmul_dtype"),
                matmul_tflops=measured.get("matmul_tflops"),
                memory_gbps=measured.get("memory_gbps"),
                status="failed" if failed and record.status == "ok" else record.status,
                notes=tuple(notes),
            )
        records.append(record)
    return records


def _collective_checks(gathered: Gathered) -> list[CollectiveCheck]:
    results = gathered.results.get("collective_correctness", {})
    if not results:
        return []
    checks = []
    for op in ("all_reduce", "broadcast", "all_gather", "reduce_scatter"):
        errors = {
            r: v[op]["error"]
            for r, v in results.items()
            if isinstance(v, dict) and "error" in v.get(op, {})
        }
        if any(isinstance(v, dict) and "error" in v and op not in v for v in results.values()):
            errors.update(
                {r: v["error"] for r, v in results.items() if "error" in v and op not in v}
            )
        if errors:
            first = min(errors)
            checks.append(
                CollectiveCheck(
                    op=op,
                    status="error",
                    message=f"failed on rank {', rank '.join(str(r) for r in sorted(errors)[:8])}: {errors[first]}",
                    wrong_receivers=tuple(sorted(errors)),
                )
            )
            continue
        receivers = sorted(r for r, v in results.items() if not v.get(op, {}).get("ok", False))
        senders = sorted(
            {s for v in results.values() for s in v.get(op, {}).get("wrong_senders", [])}
        )
        bad_inputs = sorted(
            r for r, v in results.items() if v.get(op, {}).get("contribution_ok") is False
        )
        if bad_inputs:
            # A rank whose own input was already wrong explains every wrong slot.
            senders = bad_inputs
        if not receivers:
            everyone = "the one rank" if len(results) == 1 else f"all {len(results)} ranks"
            checks.append(CollectiveCheck(op=op, status="pass", message=f"exact on {everyone}"))
            continue
        if senders:
            message = (
                f"the values sent by rank {judge_ranks(senders)} arrived wrong on "
                f"{len(receivers)} of {len(results)} ranks"
            )
        else:
            message = f"rank {judge_ranks(receivers)} received a wrong result"
        checks.append(
            CollectiveCheck(
                op=op,
                status="fail",
                message=message,
                wrong_senders=tuple(senders),
                wrong_receivers=tuple(receivers),
            )
        )
    return checks


def judge_ranks(ranks: Sequence[int]) -> str:
    """``1``, ``1, 3`` or ``1, 3, 5, ... and 12 more``."""
    shown = ", ".join(str(r) for r in list(ranks)[:8])
    return shown + (f" and {len(ranks) - 8} more" if len(ranks) > 8 else "")


def _collective_speeds(gathered: Gathered, numbers: Mapping[int, int]) -> list[CollectiveSpeed]:
    results = gathered.results.get("collective_speed", {})
    if not results or len(results) < gathered.world_size:
        return []
    groups: dict[tuple[str, str], list[int]] = defaultdict(list)
    local_index = {
        rank: index
        for node in set(numbers.values())
        for index, rank in enumerate(sorted(r for r, n in numbers.items() if n == node))
    }
    hosts = {r: str(j["hostname"]) for r, j in gathered.joins.items()}
    for rank, figures in results.items():
        if not isinstance(figures, dict) or "skipped" in figures:
            continue  # nothing timed on this rank (the step says why)
        for scope in figures:
            if scope == "world":
                label = f"all {gathered.world_size} ranks"
            elif scope == "intra-node":
                label = f"node {numbers[rank]} ({hosts[rank]})"
            else:
                label = f"local rank {local_index[rank]} across nodes"
            groups[(scope, label)].append(rank)
    speeds = []
    for (scope, label), members in groups.items():
        n = len(members)
        if n < 2:
            continue
        by_size: dict[int, list[float]] = defaultdict(list)
        iterations: dict[int, int] = {}
        for rank in members:
            for figure in results[rank][scope]:
                by_size[int(figure["size_bytes"])].append(float(figure["time_s"]))
                iterations[int(figure["size_bytes"])] = int(figure["iterations"])
        for size, times in sorted(by_size.items()):
            seconds = sum(times) / len(times)
            algbw = size / seconds / 1e9 if seconds > 0 else 0.0
            speeds.append(
                CollectiveSpeed(
                    scope=scope,
                    group=label,
                    ranks=tuple(sorted(members)),
                    size_bytes=size,
                    iterations=iterations[size],
                    time_s=seconds,
                    algbw_gbps=algbw,
                    busbw_gbps=algbw * 2 * (n - 1) / n,
                )
            )
    return speeds


def _legs(gathered: Gathered, numbers: Mapping[int, int]) -> list[PointToPoint]:
    legs = []
    hosts = {r: str(j["hostname"]) for r, j in gathered.joins.items()}
    for rank, value in sorted(gathered.results.get("point_to_point", {}).items()):
        if not isinstance(value, dict) or "send_to" not in value:
            continue
        target = int(value["send_to"])
        legs.append(
            PointToPoint(
                src_rank=rank,
                dst_rank=target,
                src_node=numbers[rank],
                dst_node=numbers[target],
                src_host=hosts[rank],
                dst_host=hosts[target],
                size_bytes=int(value["size_bytes"]),
                gbps=value.get("gbps"),
            )
        )
    return legs


def assemble(gathered: Gathered) -> FleetReport:
    """Judge everything gathered into the report rank 0 prints."""
    numbers = node_numbers(gathered.joins)
    nodes = nodes_from(gathered, numbers)
    ranks = rank_records(gathered, numbers, nodes)
    findings = list(gathered.findings)
    if gathered.joins:
        findings += judge.heterogeneity_findings(nodes, ranks)
    findings += judge.smoke_findings(ranks)
    ranks, speed_findings, speed_notes = judge.judge_speed(ranks)
    findings += speed_findings
    checks = _collective_checks(gathered)
    findings += judge.collective_findings(checks, ranks)
    speeds = _collective_speeds(gathered, numbers)
    expectations = judge.link_expectations(nodes, speeds, gathered.backend)
    legs, link_findings = judge.link_findings(expectations, _legs(gathered, numbers))
    findings += link_findings
    return FleetReport(
        launcher=gathered.launcher,
        backend=gathered.backend,
        world_size=gathered.world_size,
        timeout_s=gathered.timeout_s,
        nodes=tuple(nodes),
        ranks=tuple(ranks),
        steps=tuple(gathered.steps),
        collective_checks=tuple(checks),
        collective_speeds=tuple(speeds),
        link_expectations=tuple(expectations),
        point_to_point=tuple(legs),
        findings=tuple(findings),
        notes=(*gathered.notes, *speed_notes),
        seconds=gathered.seconds,
    )
