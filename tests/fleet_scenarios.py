"""Fleets built from the real H100 recording (tests/fixtures/h100-80gb-hbm3) and the CPU VM
recording (tests/fixtures/cpu-only-epyc-vm), for the pure fleet tests and the scale benchmark.

What is taken from the recording: the GPU (name, UUID, VRAM, compute capability, PCIe Gen5
x16), the driver (580.159.04, CUDA 13.0), torch 2.11.0+cu130, Python 3.12.3, the CPU, and the
bf16 matmul rate the H100 capture measured at 8192³ (794.3 TFLOP/s, noted in
data/device_peaks.json). The recording has one GPU; a node of eight repeats it with the GPU
index in the last digits of the UUID, as eight cards of one model differ only there. The NCCL
version was not recorded, so it stays unknown. Scenarios change one documented value each.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import Any

from dlready.fleet.assemble import Gathered
from dlready.fleet.report import StepRecord
from dlready.model import GpuVendor
from machines import replay_snapshot

RECORDED_BF16_TFLOPS = 794.3
RECORDED_TORCH = "2.11.0+cu130"
VM_FLOAT32_TFLOPS = (0.1121, 0.1106)
"""The float32 256³ matmul rates of the two ranks of `torchrun --standalone --nproc-per-node 2
-m dlready fleet` on the recorded CPU VM (one thread each, torch 2.13.0+cpu)."""
VM_SLOWED_PERCENT = 87.0
"""What one of those two ranks measured against their median in a QA run, with nothing wrong:
the two ranks share the VM's two cores and take turns slowing each other."""
VM_TORCH = "2.13.0+cpu"
ONE_NODE = "one node: there is no link between nodes to measure"
"""Why every rank of a one-node fleet skips the point-to-point step (runtime.RankRun)."""
ONE_RANK = "one rank: there is no other rank to exchange data with"
"""Why a fleet of one rank skips the collective speed step (runtime.RankRun)."""


@lru_cache(maxsize=1)
def recorded_node_probe() -> dict[str, Any]:
    """What local rank 0 posts for the recorded H100 machine (one GPU)."""
    snapshot = replay_snapshot("h100-80gb-hbm3")
    stack = snapshot.stack(GpuVendor.NVIDIA)
    assert stack is not None
    gpu = snapshot.gpus[0]
    return {
        "driver_version": stack.driver_version.value,
        "cuda_driver_version": stack.cuda_driver_version.value,
        "cpu": snapshot.cpu.brand.value,
        "gpus": [
            {
                "index": 0,
                "name": gpu.name.value,
                "uuid": gpu.uuid.value,
                "memory_total_bytes": gpu.memory_total_bytes.value,
                "compute_capability": gpu.compute_capability.value,
                "pcie_generation_max": gpu.pcie_generation_max.value,
                "pcie_width_max": gpu.pcie_width_max.value,
            }
        ],
        "nics": [],
        "nic_gbps": None,
        "errors": [],
        "python": snapshot.platform.python_version.value,
    }


def _uuid(base: str, node: int, index: int) -> str:
    return f"{base[:-8]}{node:04x}{index:04x}"


def node_probe(node: int, gpus: int = 8) -> dict[str, Any]:
    """A node of ``gpus`` recorded H100s."""
    recorded = recorded_node_probe()
    gpu = recorded["gpus"][0]
    probe = {key: value for key, value in recorded.items() if key != "python"}
    probe["gpus"] = [
        {**gpu, "index": index, "uuid": _uuid(str(gpu["uuid"]), node, index)}
        for index in range(gpus)
    ]
    return probe


def h100_fleet(
    nodes: int,
    gpus_per_node: int = 8,
    *,
    change: Callable[[Gathered], None] | None = None,
) -> Gathered:
    """A healthy fleet of recorded H100 nodes, every step done; ``change`` makes a scenario."""
    world = nodes * gpus_per_node
    gathered = Gathered(launcher="torchrun", world_size=world, timeout_s=60.0, backend="nccl")
    recorded = recorded_node_probe()
    health: dict[int, Any] = {}
    correctness: dict[int, Any] = {}
    speed: dict[int, Any] = {}
    ring: dict[int, Any] = {}
    for rank in range(world):
        node, local = divmod(rank, gpus_per_node)
        probe = node_probe(node, gpus_per_node)
        gpu = probe["gpus"][local]
        gathered.joins[rank] = {
            "rank": rank,
            "local_rank": local,
            "local_world_size": gpus_per_node,
            "node_rank": node,
            "hostname": f"h100-{node:04d}",
            "pid": 1000 + local,
            "device": f"cuda:{local}",
            "device_name": gpu["name"],
            "device_uuid": gpu["uuid"],
            "memory_total_bytes": gpu["memory_total_bytes"],
            "compute_capability": gpu["compute_capability"],
            "torch_version": RECORDED_TORCH,
            "torch_cuda": "13.0",
            "nccl_version": None,
            "python_version": recorded["python"],
            "dlready_version": "0.1.0",
            "threads": 1,
            **({"node": probe} if local == 0 else {}),
        }
        health[rank] = {
            "smoke": [
                {"name": "tensors.create", "status": "pass", "message": "ok"},
                {"name": "linear.float32", "status": "pass", "message": "ok"},
            ],
            "matmul_dtype": "bfloat16",
            "matmul_tflops": RECORDED_BF16_TFLOPS,
            "memory_gbps": None,
            "finite": True,
        }
        correctness[rank] = {
            op: {"ok": True, "wrong_senders": [], "contribution_ok": True}
            for op in ("all_reduce", "broadcast", "all_gather", "reduce_scatter")
        }
        sizes = [8 * 1024 * 4**k for k in range(10)]
        # Not measured (the recording has one GPU): 100 µs plus 250 GB/s algbw within a node
        # (busbw 437 GB/s for 8 ranks, the order NVLink H100 nodes reach), 50 GB/s between
        # nodes (one 400 Gb/s link).
        speed[rank] = {
            scope: [{"size_bytes": s, "iterations": 20, "time_s": 1e-4 + s / rate} for s in sizes]
            for scope, rate in (
                (("intra-node", 2.5e11), ("world", 5e10), ("inter-node", 5e10))
                if nodes > 1
                else (("intra-node", 2.5e11),)
            )
        }
        if world == 1:
            speed[rank] = {"skipped": ONE_RANK}
        if nodes > 1:
            target = ((node + 1) % nodes) * gpus_per_node + local
            ring[rank] = {"send_to": target, "size_bytes": 256 * 2**20, "gbps": 45.0}
        else:
            ring[rank] = {"skipped": ONE_NODE}
    gathered.results = {
        "init": {key: {"backend": "nccl"} for key in range(world)},
        "health": health,
        "collective_correctness": correctness,
        "collective_speed": speed,
        "point_to_point": ring,
    }
    gathered.steps = [
        StepRecord(name=name, status="ok", seconds=1.0, timeout_s=60.0)
        for name in (
            "rendezvous",
            "heterogeneity",
            "health",
            "collective_correctness",
        )
    ]
    gathered.steps.append(
        StepRecord("collective_speed", "ok", 1.0, 60.0)
        if world > 1
        else StepRecord("collective_speed", "skipped", 0.0, 60.0, ONE_RANK)
    )
    gathered.steps.append(
        StepRecord("point_to_point", "ok", 1.0, 60.0)
        if nodes > 1
        else StepRecord("point_to_point", "skipped", 0.0, 60.0, ONE_NODE)
    )
    if change is not None:
        change(gathered)
    return gathered


def cpu_fleet(hosts: int, ranks_per_host: int, tflops: Callable[[int], float]) -> Gathered:
    """CPU ranks (gloo) on ``hosts`` copies of the recorded CPU VM, every step done;
    ``tflops(rank)`` is each rank's matmul rate."""
    snapshot = replay_snapshot("cpu-only-epyc-vm")
    world = hosts * ranks_per_host
    gathered = Gathered(launcher="torchrun", world_size=world, timeout_s=60.0, backend="gloo")
    health: dict[int, Any] = {}
    for rank in range(world):
        host, local = divmod(rank, ranks_per_host)
        probe = {"cpu": snapshot.cpu.brand.value, "gpus": [], "nics": [], "errors": []}
        gathered.joins[rank] = {
            "rank": rank,
            "local_rank": local,
            "local_world_size": ranks_per_host,
            "node_rank": host,
            "hostname": "vm" if hosts == 1 else f"vm-{host:04d}",
            "device": "cpu",
            "torch_version": VM_TORCH,
            "python_version": snapshot.platform.python_version.value,
            "dlready_version": "0.1.0",
            "threads": 1,
            **({"node": probe} if local == 0 else {}),
        }
        health[rank] = {
            "smoke": [{"name": "tensors.create", "status": "pass", "message": "ok"}],
            "matmul_dtype": "float32",
            "matmul_tflops": tflops(rank),
            "memory_gbps": None,
            "finite": True,
        }
    gathered.results = {
        "init": {key: {"backend": "gloo"} for key in range(world)},
        "health": health,
    }
    return gathered
