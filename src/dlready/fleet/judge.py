"""Findings from what rank 0 gathered (pure: no torch, no hardware).

Every finding says what was found, on which ranks and hosts, and what to do.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from msgspec.structs import replace

from dlready.exitcodes import ExitCode
from dlready.fleet.report import (
    CollectiveCheck,
    CollectiveSpeed,
    Finding,
    FleetReport,
    LinkExpectation,
    NodeRecord,
    PointToPoint,
    RankRecord,
)
from dlready.render.text import format_number, format_percent
from dlready.smoke.peaks import expectation_for, find_peaks, load_peaks, pcie_bandwidth_gbps

STRAGGLER_BELOW_MEDIAN_PERCENT = 90.0
"""A rank more than 10 % below the median of identical devices is a straggler."""
FAR_BELOW_FASTEST_PERCENT = 60.0
"""Where the median decides nothing (two identical devices, or CPU ranks sharing one host's
cores), a rank below this share of its fastest identical peer is still a straggler: shared-core
noise measured on the 2-core development VM kept every rank within 87-104 % of its peer
(ten 2-rank runs), while a device stopped half the time runs at about 50 %."""
MEDIAN_MIN_PEERS = 3
"""The median of two devices (or links) is their mean: either may be the slow one. From three
on, the median is one of them and a straggler or a slow link stands out from it."""
SLOW_LINK_BELOW_MEDIAN_PERCENT = 80.0
"""A ring leg below 80 % of the median leg is a slow link (network figures vary more)."""
LINK_BELOW_EXPECTED_PERCENT = 50.0
"""Bus bandwidth under half of what the link should carry: something is wrong with it."""
PEAK_WARN_PERCENT = 40.0
"""Below this share of the spec-sheet peak a healthy GPU does not run (smoke's matmul bar)."""


def _hosts(ranks: Iterable[RankRecord]) -> tuple[str, ...]:
    return tuple(sorted({r.hostname for r in ranks if r.hostname}))


def _ranks_text(ranks: Sequence[int]) -> str:
    shown = ", ".join(str(r) for r in sorted(ranks)[:16])
    more = len(ranks) - 16
    return f"{shown} and {more} more" if more > 0 else shown


def _odd_ones(
    items: Sequence[tuple[str, str | None]],
) -> tuple[str | None, dict[str | None, list[str]]]:
    """The most common value and, for every other value, who has it."""
    counts = Counter(value for _, value in items)
    if len(counts) <= 1:
        return None, {}
    majority = counts.most_common(1)[0][0]
    others: dict[str | None, list[str]] = defaultdict(list)
    for who, value in items:
        if value != majority:
            others[value].append(who)
    return majority, dict(others)


def _differs(
    kind: str,
    what: str,
    items: Sequence[tuple[str, str | None]],
    fix: str,
    hosts_of: Callable[[str], tuple[str, ...]],
    ranks_of: Callable[[str], tuple[int, ...]],
) -> list[Finding]:
    majority, others = _odd_ones(items)
    findings = []
    for value, whos in others.items():
        shown = ", ".join(whos[:8]) + (f" and {len(whos) - 8} more" if len(whos) > 8 else "")
        findings.append(
            Finding(
                kind=kind,
                message=f"{what} differs: {shown} {'has' if len(whos) == 1 else 'have'} "
                f"{value or 'none'}, the others {majority or 'none'}",
                fix=fix,
                ranks=tuple(sorted({r for w in whos for r in ranks_of(w)})),
                hosts=tuple(sorted({h for w in whos for h in hosts_of(w)})),
            )
        )
    return findings


def node_label(node: NodeRecord) -> str:
    """How a node is named in messages."""
    return f"node {node.node} ({node.hostname})"


def rank_label(rank: RankRecord) -> str:
    """How a rank is named in messages."""
    return f"rank {rank.rank} ({rank.hostname}, {rank.device or 'no device'})"


def heterogeneity_findings(
    nodes: Sequence[NodeRecord], ranks: Sequence[RankRecord]
) -> list[Finding]:
    """Every field that should match across nodes or GPUs and does not."""
    node_by_label = {node_label(n): n for n in nodes}
    rank_by_label = {rank_label(r): r for r in ranks}

    def node_hosts(label: str) -> tuple[str, ...]:
        return (node_by_label[label].hostname,)

    def node_ranks(label: str) -> tuple[int, ...]:
        return node_by_label[label].ranks

    def rank_hosts(label: str) -> tuple[str, ...]:
        return (rank_by_label[label].hostname,)

    def rank_ranks(label: str) -> tuple[int, ...]:
        return (rank_by_label[label].rank,)

    findings: list[Finding] = []
    node_fields: list[tuple[str, str, Callable[[NodeRecord], str | None], str]] = [
        (
            "driver",
            "The NVIDIA driver",
            lambda n: n.driver_version,
            "install the same driver version on every node (the one most nodes have)",
        ),
        (
            "gpu_count",
            "The number of GPUs",
            lambda n: str(len(n.gpus)),
            "a GPU is missing or fell off the bus on that node: run `nvidia-smi` there, "
            "reseat or replace it, or leave the node out of the job",
        ),
        (
            "ranks_per_node",
            "The number of ranks",
            lambda n: str(len(n.ranks)),
            "start the same number of processes on every node (--nproc-per-node)",
        ),
    ]
    for kind, what, read, fix in node_fields:
        items = [(node_label(n), read(n)) for n in nodes]
        findings += _differs(kind, what, items, fix, node_hosts, node_ranks)
    alive = [r for r in ranks if r.status not in ("missing", "lost")]
    rank_fields: list[tuple[str, str, Callable[[RankRecord], str | None], str]] = [
        (
            "torch",
            "The PyTorch version",
            lambda r: r.torch_version,
            "install the same torch build everywhere (`dlready install-cmd` prints it)",
        ),
        (
            "torch_cuda",
            "The CUDA version torch was built for",
            lambda r: r.torch_cuda,
            "install the same torch build everywhere (`dlready install-cmd` prints it)",
        ),
        (
            "nccl",
            "The NCCL version",
            lambda r: r.nccl_version,
            "use the same torch build (it carries NCCL) on every node",
        ),
        (
            "python",
            "The Python version",
            lambda r: r.python_version,
            "use the same Python (one container image or one environment) on every node",
        ),
        (
            "dlready",
            "The dlready version",
            lambda r: r.dlready_version,
            "install the same dlready version on every node",
        ),
        (
            "gpu_model",
            "The GPU model",
            lambda r: r.device_name,
            "run the job on identical GPUs, or expect the slowest one to set the pace",
        ),
        (
            "gpu_memory",
            "The GPU memory",
            lambda r: _gib(r.memory_total_bytes),
            "run the job on GPUs with the same memory, or size the batch for the smallest",
        ),
    ]
    for kind, what, read_rank, fix in rank_fields:
        items = [(rank_label(r), read_rank(r)) for r in alive]
        findings += _differs(kind, what, items, fix, rank_hosts, rank_ranks)
    findings += _pcie_findings(nodes)
    return findings


def _gib(value: int | None) -> str | None:
    return None if value is None else f"{value / 2**30:.1f} GiB"


def _pcie_findings(nodes: Sequence[NodeRecord]) -> list[Finding]:
    by_model: dict[str | None, list[tuple[NodeRecord, int, int, int]]] = defaultdict(list)
    for node in nodes:
        for gpu in node.gpus:
            if gpu.pcie_width_max is not None and gpu.pcie_generation_max is not None:
                by_model[gpu.name].append(
                    (node, gpu.index, gpu.pcie_generation_max, gpu.pcie_width_max)
                )
    findings = []
    for model, links in by_model.items():
        best = max((gen, width) for _, _, gen, width in links)
        narrow = [link for link in links if (link[2], link[3]) < best]
        for node, index, gen, width in narrow:
            findings.append(
                Finding(
                    kind="pcie",
                    message=f"GPU {index} ({model}) on {node_label(node)} sits on a PCIe Gen{gen} "
                    f"x{width} link; its peers have Gen{best[0]} x{best[1]}",
                    fix="move the card to a full-width slot or check the riser and BIOS "
                    "PCIe settings on that node",
                    ranks=node.ranks,
                    hosts=(node.hostname,),
                )
            )
    return findings


def device_class(rank: RankRecord) -> str:
    """Ranks with the same class are expected to run at the same speed."""
    if _on_cpu(rank):
        return f"cpu {rank.device_name or '?'} x{rank.threads or '?'} threads"
    return f"{rank.device_name or '?'} {_gib(rank.memory_total_bytes) or '?'}"


def _on_cpu(rank: RankRecord) -> bool:
    return bool(rank.device and rank.device.startswith("cpu"))


def _nvidia(rank: RankRecord) -> bool:
    return _is_nvidia(rank.device, rank.torch_cuda, rank.device_name)


def _is_nvidia(device: str | None, torch_cuda: str | None, device_name: str | None) -> bool:
    """A CUDA device of an NVIDIA build (ROCm builds of torch also call their GPUs ``cuda``)."""
    on_cuda = bool(device and device.startswith("cuda"))
    return on_cuda and (torch_cuda is not None or "NVIDIA" in (device_name or "").upper())


def stalled_words(joins: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(what a rank stuck in a step likely waits on, what to do) for the stuck ranks' devices,
    from their inventory (``join``) entries: no GPU advice for CPU ranks."""
    devices = [str(join.get("device") or "") for join in joins]
    if any(
        _is_nvidia(join.get("device"), join.get("torch_cuda"), join.get("device_name"))
        for join in joins
    ):
        return (
            "a hung kernel, a collective waiting on a link that does not move",
            "run `dlready smoke` on that host and look for GPU errors (`nvidia-smi -q -d "
            "ERRORS`, `dmesg`); raise --timeout if its device is simply slow",
        )
    if devices and all(device.startswith("cpu") for device in devices):
        return (
            "a computation or a collective that does not finish, or a host so busy with other "
            "processes that it barely runs",
            "look at that host's load (`top`) and run `dlready smoke` there; raise --timeout "
            "if it is simply slow",
        )
    return (
        "a hung kernel, a collective waiting on a link that does not move",
        "run `dlready smoke` on that host and look for GPU errors (its vendor's tool, such as "
        "`rocm-smi` for AMD GPUs, and `dmesg`); raise --timeout if its device is simply slow",
    )


def _percent(value: float | None, reference: float | None) -> float | None:
    if value is None or reference is None or reference <= 0:
        return None
    return 100.0 * value / reference


def _look_at_device(rank: RankRecord) -> str:
    """What slows this kind of device, and the vendor's own tool that shows it."""
    if _nvidia(rank):
        return (
            "`nvidia-smi -q -d PERFORMANCE,CLOCK,TEMPERATURE` on that node shows throttling and "
            "its reasons; other processes on that GPU or a power cap slow it too"
        )
    if _on_cpu(rank):
        return (
            "other processes on that host (`top`), CPU frequency scaling and a lower thread "
            "count (OMP_NUM_THREADS) slow it"
        )
    return (
        "its vendor's tool (`rocm-smi` for AMD GPUs) shows its clocks, temperature and power "
        "cap; other processes on it slow it too"
    )


def _sharing_cores(ranks: Sequence[RankRecord]) -> dict[str, list[int]]:
    """CPU ranks by host, for hosts that run more than one: they share that host's cores."""
    by_host: dict[str, list[int]] = defaultdict(list)
    for rank in ranks:
        if _on_cpu(rank) and rank.matmul_tflops is not None:
            by_host[rank.hostname].append(rank.rank)
    return {host: members for host, members in by_host.items() if len(members) > 1}


def judge_speed(
    ranks: Sequence[RankRecord],
) -> tuple[list[RankRecord], list[Finding], list[str]]:
    """Percent of the median of identical devices, expected peaks, stragglers; and notes on
    the ranks whose figures are shown for information only."""
    groups: dict[str, list[RankRecord]] = defaultdict(list)
    for rank in ranks:
        groups[device_class(rank)].append(rank)
    medians: dict[str, tuple[float | None, float | None]] = {}
    measured: dict[str, int] = {}
    for key, members in groups.items():
        tflops = [r.matmul_tflops for r in members if r.matmul_tflops is not None]
        gbps = [r.memory_gbps for r in members if r.memory_gbps is not None]
        measured[key] = len(tflops)
        medians[key] = (
            statistics.median(tflops) if len(tflops) >= 2 else None,
            statistics.median(gbps) if len(gbps) >= 2 else None,
        )
    shared = _sharing_cores(ranks)
    sharing = {r for members in shared.values() for r in members}
    fastest = {
        key: max((r.matmul_tflops for r in members if r.matmul_tflops is not None), default=None)
        for key, members in groups.items()
    }
    notes = [
        f"ranks {_ranks_text(members)} share the CPU cores of {host}: their speeds vary with "
        "each other's load, so one of them is named a straggler only below "
        f"{format_percent(FAR_BELOW_FASTEST_PERCENT)} of the fastest of them"
        for host, members in sorted(shared.items())
    ]
    notes += [
        f"{count} identical devices ({key}): a median of two is their mean, so a straggler is "
        f"named among them only below {format_percent(FAR_BELOW_FASTEST_PERCENT)} of the "
        f"faster one (the median rule takes {MEDIAN_MIN_PEERS}); each is still compared with "
        "its spec sheet where it has one"
        for key, count in sorted(measured.items())
        if count == 2 and not {r.rank for r in groups[key]} <= sharing
    ]
    table = load_peaks()
    judged: list[RankRecord] = []
    findings: list[Finding] = []
    for rank in ranks:
        if rank.matmul_tflops is None and rank.memory_gbps is None:
            judged.append(rank)
            continue
        key = device_class(rank)
        median_tflops, median_gbps = medians[key]
        info = {"device": rank.device, "name": rank.device_name}
        matmul = expectation_for(f"speed.matmul.{rank.matmul_dtype}", info, None, table)
        memory = expectation_for("speed.memory_copy", info, None, table)
        peaks = find_peaks(table, rank.device_name) if rank.device_name else None
        rank = replace(
            rank,
            matmul_percent_of_median=_percent(rank.matmul_tflops, median_tflops),
            memory_percent_of_median=_percent(rank.memory_gbps, median_gbps),
            matmul_expected_tflops=matmul.value if matmul else None,
            memory_expected_gbps=memory.value if memory else None,
            expected_source=peaks.source if peaks else (matmul.source if matmul else None),
        )
        notes_of_rank = list(rank.notes)
        # The matmul rate decides: it is the device's own. Memory bandwidth is reported too,
        # but ranks of one host share their memory bus, so it names no straggler.
        percent = rank.matmul_percent_of_median
        judged_by_median = measured[key] >= MEDIAN_MIN_PEERS and rank.rank not in sharing
        of_fastest = _percent(rank.matmul_tflops, fastest[key])
        slow = None
        if judged_by_median and percent is not None and percent < STRAGGLER_BELOW_MEDIAN_PERCENT:
            slow = f"matmul {format_percent(percent)} of the median of {measured[key]} identical devices"
        elif (
            not judged_by_median
            and measured[key] >= 2
            and of_fastest is not None
            and of_fastest < FAR_BELOW_FASTEST_PERCENT
        ):
            slow = f"matmul {format_percent(of_fastest)} of its fastest identical peer"
        if slow is not None:
            notes_of_rank.append(f"straggler: {slow}")
            findings.append(
                Finding(
                    kind="straggler",
                    message=f"{rank_label(rank)} on node {rank.node} is a straggler: {slow}",
                    fix=f"look at that device: {_look_at_device(rank)}; `dlready smoke --full` "
                    "on that node measures it alone",
                    ranks=(rank.rank,),
                    hosts=(rank.hostname,),
                )
            )
            if rank.status == "ok":
                rank = replace(rank, status="straggler")
        percent_of_peak = _percent(rank.matmul_tflops, rank.matmul_expected_tflops)
        if percent_of_peak is not None and percent_of_peak < PEAK_WARN_PERCENT:
            notes_of_rank.append(
                f"matmul at {format_percent(percent_of_peak)} of the spec-sheet peak"
            )
            findings.append(
                Finding(
                    kind="below_peak",
                    message=f"{rank_label(rank)} computes {format_number(rank.matmul_tflops or 0)} "
                    f"TFLOP/s {rank.matmul_dtype}, {format_percent(percent_of_peak)} of the "
                    f"{format_number(rank.matmul_expected_tflops or 0)} its spec sheet gives",
                    fix=f"check it: {_look_at_device(rank)}; then run `dlready smoke --full` on "
                    "that node",
                    ranks=(rank.rank,),
                    hosts=(rank.hostname,),
                )
            )
        judged.append(replace(rank, notes=tuple(notes_of_rank)))
    return judged, findings, notes


def smoke_findings(ranks: Sequence[RankRecord]) -> list[Finding]:
    """A smoke check that failed on a rank."""
    return [
        Finding(
            kind="health",
            message=f"{rank_label(rank)}: {result.name} failed: {result.message}",
            fix="run `dlready smoke` on that node for the explanation and the fix",
            ranks=(rank.rank,),
            hosts=(rank.hostname,),
        )
        for rank in ranks
        for result in rank.smoke
        if result.status == "fail"
    ]


def collective_findings(
    checks: Sequence[CollectiveCheck], ranks: Sequence[RankRecord]
) -> list[Finding]:
    """A wrong or failing collective, naming the ranks."""
    by_rank = {r.rank: r for r in ranks}
    findings = []
    for check in checks:
        if check.status == "pass":
            continue
        named = sorted({*check.wrong_senders, *check.wrong_receivers})
        findings.append(
            Finding(
                kind="collective",
                message=f"{check.op}: {check.message}",
                fix="run the fleet again on the named nodes only; if it repeats, test their "
                "GPUs (`dlready smoke --full`) and network cards, and leave them out of jobs",
                ranks=tuple(named),
                hosts=_hosts(by_rank[r] for r in named if r in by_rank),
            )
        )
    return findings


def link_expectations(
    nodes: Sequence[NodeRecord], speeds: Sequence[CollectiveSpeed], backend: str | None
) -> list[LinkExpectation]:
    """What the intra-node and inter-node links should give, next to the measured busbw."""
    expectations = []
    table = load_peaks()
    for scope in ("intra-node", "inter-node"):
        figures = [s for s in speeds if s.scope == scope]
        if not figures:
            continue
        largest = max(s.size_bytes for s in figures)
        measured = min(s.busbw_gbps for s in figures if s.size_bytes == largest)
        gbps: float | None = None
        source: str
        if scope == "intra-node":
            lanes = [
                pcie_bandwidth_gbps(table, g.pcie_generation_max, g.pcie_width_max)
                for n in nodes
                for g in n.gpus
                if g.pcie_generation_max and g.pcie_width_max
            ]
            known = [lane for lane in lanes if lane is not None]
            if backend == "nccl" and known:
                gbps = min(known)
                source = (
                    "the GPUs' PCIe line rate, a floor (NVLink, where present, is faster and "
                    "is not probed)"
                )
            else:
                source = (
                    "processes on one host talk through shared memory or loopback, which has "
                    "no rated speed"
                )
        else:
            nic = [n.nic_gbps for n in nodes]
            if nic and all(v is not None for v in nic):
                gbps = min(v for v in nic if v is not None)
                source = "the slowest node's fastest network link (/sys/class/net, /sys/class/infiniband)"
            else:
                source = "the network link speed could not be read on every node"
        expectations.append(
            LinkExpectation(
                scope=scope,
                gbps=gbps,
                source=source,
                measured_busbw_gbps=measured,
                percent=_percent(measured, gbps),
            )
        )
    return expectations


def link_findings(
    expectations: Sequence[LinkExpectation], legs: Sequence[PointToPoint]
) -> tuple[list[PointToPoint], list[Finding]]:
    """Links well below their expected speed; ring legs well below the median leg."""
    findings = [
        Finding(
            kind="link_speed",
            message=f"{e.scope} all_reduce reaches {format_number(e.measured_busbw_gbps or 0)} "
            f"GB/s bus bandwidth, {format_percent(e.percent)} of the "
            f"{format_number(e.gbps or 0)} GB/s the link should carry",
            fix="check the NCCL transport (NCCL_DEBUG=INFO shows it), the network cards' link "
            "state and that NCCL_IB_DISABLE / NCCL_P2P_DISABLE are not set",
        )
        for e in expectations
        if e.percent is not None and e.percent < LINK_BELOW_EXPECTED_PERCENT
    ]
    figures = [leg.gbps for leg in legs if leg.gbps is not None]
    median = statistics.median(figures) if len(figures) >= MEDIAN_MIN_PEERS else None
    judged = []
    for leg in legs:
        percent = _percent(leg.gbps, median)
        judged.append(replace(leg, percent_of_median=percent))
        if percent is not None and percent < SLOW_LINK_BELOW_MEDIAN_PERCENT:
            findings.append(
                Finding(
                    kind="slow_link",
                    message=f"the link from node {leg.src_node} ({leg.src_host}) to node "
                    f"{leg.dst_node} ({leg.dst_host}) carries {format_number(leg.gbps or 0)} "
                    f"GB/s, {format_percent(percent)} of the median link",
                    fix="check the cables, switch ports and network cards between these two "
                    "nodes (`ibstat`, `ethtool`), then run the fleet again",
                    ranks=(leg.src_rank, leg.dst_rank),
                    hosts=tuple(sorted({leg.src_host, leg.dst_host})),
                )
            )
    return judged, findings


def exit_code(report: FleetReport) -> ExitCode:
    """0 all ready and uniform, 1 any finding, 3 the run was stopped from outside (as every
    dlready command that is interrupted)."""
    if any(finding.kind == "interrupted" for finding in report.findings):
        return ExitCode.COULD_NOT_RUN
    return ExitCode.NOT_READY if report.findings else ExitCode.OK
