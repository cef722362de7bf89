"""The fleet on one rank: the key-value store protocol, the measurements, rank 0's deadlines.

The only fleet module that imports torch. Every rank runs :func:`run_rank`.

Why it cannot hang:

- Ranks meet in torch's ``TCPStore`` first (rank 0 hosts it, or torchrun's agent does), and
  post every result there. Rank 0 collects with a deadline per step; it never learns about a
  rank through a blocking collective.
- The work of each step (collectives, kernels) runs on a worker thread; the main thread of
  every rank only watches: the deadline, the heartbeats, rank 0's verdict and signals.
- Each rank's heartbeat thread bumps a counter in the store every half second; a rank whose
  counter stops (killed, ``SIGSTOP``-ed, wedged) is named after a few seconds (``coordinator.lost_after_s``).
- When rank 0 decides, it publishes ``abort:<code>`` or ``done:<code>``; every other rank
  exits with that code at once, even from inside a collective that will never return.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import json
import os
import platform
import signal
import socket
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import torch
import torch.distributed as dist
from msgspec import Struct, field

from dlready import __version__
from dlready.exitcodes import ExitCode
from dlready.fleet.assemble import Layout
from dlready.fleet.launch import Launch, StopEvent, wait_for_listener
from dlready.fleet.report import (
    CollectiveCheck,
    CollectiveSpeed,
    NodeRecord,
    PointToPoint,
    RankRecord,
    SmokeResult,
    StepRecord,
)
from dlready.output import stderr_line
from dlready.probes.affinity import usable_cpus

HEARTBEAT_INTERVAL_S = 0.5
RANK0_SILENT_S = 5.0
"""Beyond the step timeout, how long the other ranks wait on a silent rank 0 before leaving."""
POLL_S = 0.1
TEST_HOOK_ENV = "DLREADY_FLEET_TEST_HOOK"
"""Tests only: ``module:function`` called with the rank's hook registry (tests/fleet_hooks.py)."""

ROUNDS = 3
"""Speed rounds per rank; the best round's median is the rank's figure."""
BASIC_CHECKS = ("tensors.create", "autograd.book_example", "linear.float32")
"""Smoke's basics, run by every rank in the health step (``--smoke`` adds the quick suite)."""

_KIB = 1024
_MIB = 1024 * 1024


class Options(Struct, frozen=True):
    """What the command line asked for."""

    backend: str | None
    timeout_s: float
    smoke: bool


class Hooks(Struct):
    """Points where a test may change what a rank does (``DLREADY_FLEET_TEST_HOOK``)."""

    contribution: Callable[[str, int, torch.Tensor], torch.Tensor] = field(
        default=lambda _op, _rank, tensor: tensor
    )
    """Called with (collective, rank, tensor) before the tensor goes into a collective."""


def _load_hooks(rank: int) -> Hooks:
    hooks = Hooks()
    spec = os.environ.get(TEST_HOOK_ENV)
    if spec:
        module_name, _, function_name = spec.partition(":")
        getattr(importlib.import_module(module_name), function_name)(hooks, rank)
    return hooks


class AbortedError(Exception):
    """Rank 0 stopped the run (or could not be reached); carries the exit code."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- the store --------------------------------------------------------------------------------


class Board:
    """JSON values in the store under one prefix; the only place that speaks to it."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.lock = threading.Lock()

    def post(self, key: str, value: Any) -> None:
        text = json.dumps(value, allow_nan=True)
        with self.lock:
            self.store.set(key, text)

    def add(self, key: str, amount: int) -> int:
        with self.lock:
            return int(self.store.add(key, amount))

    def has(self, key: str) -> bool:
        with self.lock:
            return bool(self.store.check([key]))

    def read(self, key: str) -> Any:
        with self.lock:
            if not self.store.check([key]):
                return None
            return json.loads(self.store.get(key))

    def read_many(self, keys: list[str]) -> list[Any]:
        if not keys:
            return []
        with self.lock:
            values = self.store.multi_get(keys)
        return [json.loads(value) for value in values]


class UnreachableError(Exception):
    """Rank 0's store did not accept a connection within the timeout; says why."""


@contextlib.contextmanager
def _c_stderr_quieted() -> Iterator[None]:
    """Keep torch's C++ log lines (an error with 40 stack frames) off file descriptor 2.

    Only around the store's connection: the caller turns a failure into one line of its own.
    """
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _connect(launch: Launch, timeout_s: float) -> Any:
    hosts = launch.rank == 0 and not launch.agent_hosts_store
    if not hosts:
        reason = wait_for_listener(launch.master_addr, launch.master_port, timeout_s)
        if reason is not None:
            raise UnreachableError(reason)
    with _c_stderr_quieted():
        return dist.TCPStore(  # type: ignore[attr-defined]
            launch.master_addr,
            launch.master_port,
            None,
            is_master=hosts,
            timeout=datetime.timedelta(seconds=timeout_s),
            wait_for_workers=False,
        )


# --- what each rank measures ------------------------------------------------------------------


def _device(launch: Launch) -> torch.device:
    if torch.cuda.is_available() and torch.cuda.device_count() > 0:
        index = launch.local_rank % torch.cuda.device_count()
        torch.cuda.set_device(index)
        return torch.device("cuda", index)
    return torch.device("cpu")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _nccl_version() -> str | None:
    try:
        version = torch.cuda.nccl.version() if torch.cuda.is_available() else None  # type: ignore[no-untyped-call]
    except Exception:  # noqa: BLE001  # a build without NCCL
        return None
    if isinstance(version, tuple):
        return ".".join(str(part) for part in version)
    return None if version is None else str(version)


def _set_threads(launch: Launch) -> None:
    """Share the CPUs between the ranks of a node, as torchrun does with OMP_NUM_THREADS=1."""
    if os.environ.get("OMP_NUM_THREADS"):
        return
    local_world = launch.local_world_size or 1
    if local_world > 1:
        torch.set_num_threads(max(1, usable_cpus() // local_world))


def inventory(launch: Launch, device: torch.device) -> dict[str, Any]:
    """Who this rank is, its software and its device (local rank 0 adds the node's probe)."""
    info: dict[str, Any] = {
        "rank": launch.rank,
        "local_rank": launch.local_rank,
        "local_world_size": launch.local_world_size,
        "node_rank": launch.node_rank,
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "device": str(device),
        "torch_version": str(torch.__version__),
        "torch_cuda": getattr(torch.version, "cuda", None),
        "nccl_version": _nccl_version(),
        "python_version": platform.python_version(),
        "dlready_version": __version__,
        "threads": torch.get_num_threads(),
    }
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            device_name=str(props.name),
            device_uuid=str(getattr(props, "uuid", "") or "") or None,
            memory_total_bytes=int(props.total_memory),
            compute_capability=f"{props.major}.{props.minor}",
        )
    if launch.local_rank == 0:
        info["node"] = _probe_node()
    return info


def _probe_node() -> dict[str, Any]:
    """``check``'s probes, once per node, reduced to what the fleet compares."""
    from dlready.fleet.links import probe_nics
    from dlready.model import GpuVendor
    from dlready.probes.collect import collect_snapshot
    from dlready.probes.hostfs import RealHostFiles

    try:
        snapshot = collect_snapshot()
    except Exception as exc:  # noqa: BLE001  # a broken probe must not stop the fleet
        return {"errors": [f"probing failed: {type(exc).__name__}: {exc}"]}
    stack = snapshot.stack(GpuVendor.NVIDIA)
    nics, nic_gbps = probe_nics(RealHostFiles())
    return {
        "driver_version": stack.driver_version.value if stack else None,
        "cuda_driver_version": stack.cuda_driver_version.value if stack else None,
        "cpu": snapshot.cpu.brand.value,
        "gpus": [
            {
                "index": gpu.index,
                "name": gpu.name.value,
                "uuid": gpu.uuid.value,
                "memory_total_bytes": gpu.memory_total_bytes.value,
                "compute_capability": gpu.compute_capability.value,
                "pcie_generation_max": gpu.pcie_generation_max.value,
                "pcie_width_max": gpu.pcie_width_max.value,
            }
            for gpu in snapshot.gpus
            if gpu.vendor is GpuVendor.NVIDIA and gpu.error is None
        ],
        "nics": list(nics),
        "nic_gbps": nic_gbps,
        "errors": [f"{e.probe}: {e.message}" for e in snapshot.errors],
    }


def _run_smoke(device: torch.device, names: tuple[str, ...]) -> list[dict[str, str]]:
    from dlready.smoke.checks import CHECKS, DeviceContext
    from dlready.smoke.outcome import CheckFailedError

    context = DeviceContext(device)
    results = []
    for name in names:
        try:  # each check isolated
            outcome = CHECKS[name](context)
            results.append({"name": name, "status": outcome.status, "message": outcome.message})
        except CheckFailedError as exc:  # noqa: PERF203  # each check isolated
            results.append({"name": name, "status": "fail", "message": exc.message})
        except Exception as exc:  # noqa: BLE001  # any exception is a failed check
            results.append(
                {"name": name, "status": "fail", "message": f"{type(exc).__name__}: {exc}"}
            )
    return results


def _rate_samples(
    run: Callable[[], object], device: torch.device, work: float, samples: int, sample_s: float
) -> list[float]:
    """``work`` units per second in each of ``samples`` samples of at least ``sample_s``.

    Each sample repeats ``run`` until ``sample_s`` has passed, so a rank slowed now and then
    (another process, throttling, a stop-and-continue cycle) is seen in most samples.
    """
    run()
    _sync(device)
    rates = []
    for _ in range(samples):
        count = 0
        started = time.perf_counter()
        while True:
            run()
            count += 1
            _sync(device)
            elapsed = time.perf_counter() - started
            if elapsed >= sample_s:
                break
        rates.append(work * count / elapsed)
    return rates


def measure_speed(device: torch.device) -> dict[str, Any]:
    """Matmul TFLOP/s (bf16 on GPUs that have it, float32 elsewhere) and copy GB/s."""
    if device.type == "cuda":
        dtype_key = "bfloat16" if torch.cuda.is_bf16_supported() else "float32"
        n, copy_bytes, samples, sample_s = 8192, 1024 * _MIB, 5, 0.1
        free, _ = torch.cuda.mem_get_info(device)
        while n > 1024 and 3 * n * n * 2 > free // 2:
            n //= 2
        while copy_bytes > 16 * _MIB and 2 * copy_bytes > free // 2:
            copy_bytes //= 2
    else:
        dtype_key, n, copy_bytes, samples, sample_s = "float32", 256, 32 * _MIB, 5, 0.04
    dtype = getattr(torch, dtype_key)
    # Made on the device: an 8192² float32 matrix takes seconds to fill on a busy host CPU.
    a = torch.randn(n, n, device=device).to(dtype)
    b = torch.randn(n, n, device=device).to(dtype)
    out = torch.empty(n, n, device=device, dtype=dtype)
    # Several rounds, each judged by its median, the best round kept: a rank that is slow
    # for a moment (another process, the OS) recovers in one round; a slow device does not.
    tflops = [
        _rate_samples(lambda: torch.mm(a, b, out=out), device, 2 * n**3 / 1e12, samples, sample_s)
        for _ in range(ROUNDS)
    ]
    source = torch.ones(copy_bytes // 4, device=device)
    target = torch.empty_like(source)
    gbps = [
        _rate_samples(lambda: target.copy_(source), device, 2 * copy_bytes / 1e9, samples, sample_s)
        for _ in range(ROUNDS)
    ]
    finite = bool(torch.isfinite(out).all().item())
    return {
        "matmul_dtype": dtype_key,
        "matmul_n": n,
        "matmul_tflops": max(statistics.median(r) for r in tflops) if finite else None,
        "matmul_samples": [statistics.median(r) for r in tflops],
        "memory_gbps": max(statistics.median(r) for r in gbps),
        "copy_bytes": copy_bytes,
        "finite": finite,
    }


def _pattern(slot: int, chunk: int, device: torch.device) -> torch.Tensor:
    """Known values for one rank's slot: exact in float32 (all below 2**24)."""
    return (torch.arange(chunk, dtype=torch.float32) % 251 + 1).mul_(slot % 8191 + 1).to(device)


def _wrong_slots(
    result: torch.Tensor, world: int, chunk: int, expected: Callable[[int], torch.Tensor]
) -> list[int]:
    got = result.view(world, chunk)
    return [j for j in range(world) if not torch.equal(got[j], expected(j))]


def check_collectives(
    rank: int, world: int, device: torch.device, hooks: Hooks
) -> dict[str, dict[str, Any]]:
    """all_reduce, broadcast, all_gather, reduce_scatter on known values, checked exactly."""
    chunk = 1024
    results: dict[str, dict[str, Any]] = {}

    def run(op: str, body: Callable[[], dict[str, Any]]) -> None:
        try:
            results[op] = body()
        except Exception as exc:  # noqa: BLE001  # the collective itself failed: report it
            results[op] = {"error": f"{type(exc).__name__}: {exc}"[:500]}

    def all_reduce() -> dict[str, Any]:
        # Slot j carries rank j's pattern (zeros elsewhere), so a wrong slot names its sender;
        # the shared tail sums rank + 1 over every rank.
        tensor = torch.zeros(world * chunk + chunk, device=device)
        tensor[rank * chunk : (rank + 1) * chunk] = _pattern(rank, chunk, device)
        tensor[world * chunk :] = float(rank + 1)
        tensor = hooks.contribution("all_reduce", rank, tensor)
        # What this rank hands over, summed before the call: a wrong sum names the rank whose
        # own data was wrong (memory, compute), not the links that carried it.
        expected_sum = float(_pattern(rank, chunk, torch.device("cpu")).double().sum()) + chunk * (
            rank + 1.0
        )
        contribution_ok = float(tensor.double().sum().item()) == expected_sum
        dist.all_reduce(tensor)
        _sync(device)
        wrong = _wrong_slots(
            tensor[: world * chunk], world, chunk, lambda j: _pattern(j, chunk, device)
        )
        shared_ok = bool((tensor[world * chunk :] == world * (world + 1) / 2).all().item())
        return {
            "wrong_senders": wrong,
            "ok": not wrong and shared_ok,
            "contribution_ok": contribution_ok,
        }

    def broadcast() -> dict[str, Any]:
        tensor = _pattern(7, chunk, device) if rank == 0 else torch.zeros(chunk, device=device)
        tensor = hooks.contribution("broadcast", rank, tensor)
        dist.broadcast(tensor, src=0)
        _sync(device)
        ok = torch.equal(tensor, _pattern(7, chunk, device))
        return {"wrong_senders": [] if ok else [0], "ok": ok}

    def all_gather() -> dict[str, Any]:
        mine = hooks.contribution("all_gather", rank, _pattern(rank, chunk, device))
        gathered = torch.zeros(world * chunk, device=device)
        # torch 2.13 renamed the tensor forms; older releases only have the first names.
        all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
        all_gather(gathered, mine)
        _sync(device)
        wrong = _wrong_slots(gathered, world, chunk, lambda j: _pattern(j, chunk, device))
        return {"wrong_senders": wrong, "ok": not wrong}

    def reduce_scatter() -> dict[str, Any]:
        # Rank r puts (r + 1) + j into slot j: slot j sums to world(world+1)/2 + world*j.
        slots = torch.arange(world, dtype=torch.float32).repeat_interleave(chunk) + float(rank + 1)
        tensor = hooks.contribution("reduce_scatter", rank, slots.to(device))
        out = torch.zeros(chunk, device=device)
        reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
        reduce_scatter(out, tensor)
        _sync(device)
        expected = world * (world + 1) / 2 + world * rank
        ok = bool((out == expected).all().item())
        return {"wrong_senders": [], "ok": ok}

    run("all_reduce", all_reduce)
    run("broadcast", broadcast)
    run("all_gather", all_gather)
    run("reduce_scatter", reduce_scatter)
    return results


def message_sizes(device_type: str) -> list[int]:
    """All-reduce sizes: 8 KiB to 1 GiB on GPUs, to 2 MiB on CPUs, every factor of 4."""
    largest = 1024 * _MIB if device_type == "cuda" else 2 * _MIB
    sizes = []
    size = 8 * _KIB
    while size <= largest:
        sizes.append(size)
        size *= 4
    if device_type == "cuda" and sizes[-1] != largest:
        sizes.append(largest)
    return sizes


def _iterations(size: int, device_type: str) -> int:
    if device_type == "cuda":
        return 20 if size <= 32 * _MIB else 5
    return 10 if size <= 512 * _KIB else 4


def time_all_reduce(group: Any, sizes: list[int], device: torch.device) -> list[dict[str, float]]:
    """Seconds per all_reduce of each size in ``group``, on this rank (after one warm-up)."""
    figures = []
    for size in sizes:
        tensor = torch.ones(size // 4, device=device)
        iterations = _iterations(size, device.type)
        dist.all_reduce(tensor, group=group)
        dist.barrier(group=group)
        _sync(device)
        started = time.perf_counter()
        for _ in range(iterations):
            dist.all_reduce(tensor, group=group)
        _sync(device)
        figures.append(
            {
                "size_bytes": size,
                "iterations": iterations,
                "time_s": (time.perf_counter() - started) / iterations,
            }
        )
    return figures


def ring_point_to_point(
    rank: int, send_to: int, receive_from: int, device: torch.device
) -> dict[str, Any]:
    """Send to the next node's rank while receiving from the previous one; GB/s of the send."""
    size = 256 * _MIB if device.type == "cuda" else 4 * _MIB
    outgoing = torch.ones(size // 4, device=device)
    incoming = torch.empty(size // 4, device=device)
    iterations = 5

    def exchange() -> None:
        requests = [dist.isend(outgoing, send_to), dist.irecv(incoming, receive_from)]
        for request in requests:
            if request is not None:
                request.wait()

    exchange()
    _sync(device)
    started = time.perf_counter()
    for _ in range(iterations):
        exchange()
    _sync(device)
    seconds = (time.perf_counter() - started) / iterations
    return {"size_bytes": size, "gbps": size / seconds / 1e9 if seconds > 0 else None}


# --- the protocol -----------------------------------------------------------------------------

WORK_STEPS = ("init", "health", "collective_correctness", "collective_speed", "point_to_point")


class RankRun:
    """One rank's side of the protocol."""

    def __init__(self, launch: Launch, options: Options, board: Board) -> None:
        self.launch = launch
        self.options = options
        self.board = board
        self.rank = launch.rank
        self.world = launch.world_size
        self.hooks = _load_hooks(launch.rank)
        self.device = torch.device("cpu")
        self.comm_device = torch.device("cpu")
        """Where collective buffers live: the GPU under NCCL, host memory under gloo."""
        self.layout: Layout | None = None
        self.intra_group: Any = None
        self.inter_group: Any = None
        self.stop = threading.Event()

    # every rank ---------------------------------------------------------------------------

    def heartbeat(self) -> None:
        while not self.stop.wait(HEARTBEAT_INTERVAL_S):
            try:  # one failed beat ends the thread
                self.board.add(f"hb/{self.rank}", 1)
            except Exception:  # noqa: BLE001, PERF203  # the store is gone: the main thread sees it
                return

    def post_result(self, step: str, value: Any) -> None:
        self.board.post(f"res/{step}/{self.rank}", value)
        self.board.add(f"count/{step}", 1)

    def work(self, step: str) -> Any:
        """This rank's part of one step."""
        if step == "init":
            return self._init()
        if step == "health":
            return self._health()
        if step == "collective_correctness":
            return check_collectives(self.rank, self.world, self.comm_device, self.hooks)
        if step == "collective_speed":
            return self._collective_speed()
        return self._point_to_point()

    def _backend(self) -> str:
        if self.options.backend:
            return self.options.backend
        return "nccl" if self.device.type == "cuda" and dist.is_nccl_available() else "gloo"

    def _init(self) -> dict[str, Any]:
        layout = self.layout
        assert layout is not None
        started = time.perf_counter()
        backend = self._backend()
        options: dict[str, Any] = {}
        if backend == "nccl" and self.device.type == "cuda":
            options["device_id"] = self.device
            self.comm_device = self.device
        dist.init_process_group(
            backend=backend,
            store=dist.PrefixStore(  # type: ignore[attr-defined]
                "pg", self.board.store
            ),
            rank=self.rank,
            world_size=self.world,
            # Longer than rank 0's own deadline, so rank 0 names a missing rank before the
            # backend's watchdog (NCCL's tears the process down) acts on it.
            timeout=datetime.timedelta(seconds=self.options.timeout_s + 30),
            **options,
        )
        if layout.node_count > 1:
            for node in range(layout.node_count):
                members = layout.ranks_of_node(node)
                group = (
                    dist.new_group(members, use_local_synchronization=True)
                    if self.rank in members
                    else None
                )
                if self.rank in members:
                    self.intra_group = group
            if layout.uniform():
                per_node = len(layout.ranks_of_node(0))
                for index in range(per_node):
                    members = [layout.ranks_of_node(n)[index] for n in range(layout.node_count)]
                    if self.rank in members:
                        self.inter_group = dist.new_group(members, use_local_synchronization=True)
        return {"backend": backend, "seconds": time.perf_counter() - started}

    def _health(self) -> dict[str, Any]:
        from dlready.smoke.catalog import CORRECTNESS

        names: tuple[str, ...] = BASIC_CHECKS
        if self.options.smoke:
            names = tuple(spec.name for spec in CORRECTNESS)
        smoke = _run_smoke(self.device, names)
        dist.barrier()  # every rank measures at the same time, as training loads them
        return {"smoke": smoke, **measure_speed(self.device)}

    def _collective_speed(self) -> dict[str, Any]:
        if self.world < 2:
            return {"skipped": "one rank: there is no other rank to exchange data with"}
        sizes = message_sizes(self.comm_device.type)
        figures: dict[str, Any] = {}
        layout = self.layout
        assert layout is not None
        if layout.node_count == 1:
            figures["intra-node"] = time_all_reduce(None, sizes, self.comm_device)
            return figures
        figures["world"] = time_all_reduce(None, sizes, self.comm_device)
        figures["intra-node"] = time_all_reduce(self.intra_group, sizes, self.comm_device)
        if self.inter_group is not None:
            figures["inter-node"] = time_all_reduce(self.inter_group, sizes, self.comm_device)
        return figures

    def _point_to_point(self) -> dict[str, Any]:
        layout = self.layout
        assert layout is not None
        if layout.node_count < 2 or not layout.uniform():
            if layout.node_count < 2:
                return {"skipped": "one node: there is no link between nodes to measure"}
            return {"skipped": "the nodes run different numbers of ranks: the ring has no pairs"}
        node = layout.node_of[self.rank]
        index = layout.local_index(self.rank)
        send_to = layout.ranks_of_node((node + 1) % layout.node_count)[index]
        receive_from = layout.ranks_of_node((node - 1) % layout.node_count)[index]
        result = ring_point_to_point(self.rank, send_to, receive_from, self.comm_device)
        return {"send_to": send_to, **result}


class WorkThread:
    """Runs this rank's steps one after another; the main thread only watches it."""

    def __init__(self, run: RankRun) -> None:
        self.run = run
        self.steps_ready: dict[str, threading.Event] = {s: threading.Event() for s in WORK_STEPS}
        self.done: dict[str, threading.Event] = {s: threading.Event() for s in WORK_STEPS}
        self.errors: dict[str, str] = {}
        self.thread = threading.Thread(target=self._loop, name="dlready-fleet-work", daemon=True)

    def _loop(self) -> None:
        for step in WORK_STEPS:
            self.steps_ready[step].wait()
            try:
                value = self.run.work(step)
            except Exception as exc:  # noqa: BLE001  # reported to rank 0, never a traceback
                value = {"error": f"{type(exc).__name__}: {exc}"[:500]}
                self.errors[step] = value["error"]
            try:
                self.run.post_result(step, value)
            except Exception:  # noqa: BLE001  # the store is gone; the watcher exits
                return
            finally:
                self.done[step].set()
            if step in self.errors and step != "health":
                return  # the process group is unusable; rank 0 decides what happens next


def run_rank(launch: Launch, options: Options, terminated: StopEvent) -> tuple[int, Any]:
    """Run this rank. Returns (exit code, the report for rank 0; None elsewhere).

    ``terminated`` is set by the stop handler installed before torch was imported
    (:func:`dlready.fleet.launch.install_stop_handler`).
    """
    from dlready.fleet.coordinator import Coordinator, stopped_before_start

    started = time.monotonic()
    if terminated.is_set():  # the launcher stopped the job while torch was loading
        if launch.rank == 0:
            return stopped_before_start(launch.launcher, launch.world_size, options.timeout_s)
        return 128 + signal.SIGTERM, None
    if options.backend == "nccl" and not torch.cuda.is_available():
        raise AbortedError(
            int(ExitCode.USAGE),
            "--backend nccl needs CUDA GPUs and this rank sees none; use --backend gloo",
        )
    try:
        store = _connect(launch, options.timeout_s)
    except Exception as exc:  # noqa: BLE001  # unreachable rank 0 or a port in use
        where = f"{launch.master_addr}:{launch.master_port}"
        if launch.rank == 0 and not launch.agent_hosts_store:
            # torch's message, without the C++ stack frames some builds append to it
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise AbortedError(
                int(ExitCode.COULD_NOT_RUN), f"rank 0 cannot listen on {where}: {reason}"
            ) from None
        why = f" ({exc})" if isinstance(exc, UnreachableError) else ""
        raise AbortedError(
            int(ExitCode.COULD_NOT_RUN),
            f"rank {launch.rank} could not reach rank 0 at {where} within "
            f"{options.timeout_s:g} s{why}",
        ) from None
    board = Board(
        dist.PrefixStore(  # type: ignore[attr-defined]
            f"dlready-fleet/{launch.restart_count}", store
        )
    )
    run = RankRun(launch, options, board)
    _set_threads(launch)
    run.device = _device(launch)
    board.post(f"join/{launch.rank}", inventory(launch, run.device))
    board.add("count/join", 1)
    threading.Thread(target=run.heartbeat, name="dlready-fleet-heartbeat", daemon=True).start()
    worker = WorkThread(run)
    if launch.rank == 0:
        coordinator = Coordinator(run, worker, terminated, started)
        return coordinator.run()
    return _follow(run, worker, terminated), None


def _follow(run: RankRun, worker: WorkThread, terminated: threading.Event) -> int:
    """A rank other than 0: do each step when rank 0 says so; exit when rank 0 decides."""
    board = run.board
    last_seen = (-1, time.monotonic())
    started_work = False
    while True:
        if terminated.is_set():
            _quietly(lambda: board.post(f"term/{run.rank}", True))
            return 128 + signal.SIGTERM
        try:
            control = board.read("control")
            rank0_beat = board.add("hb/0", 0)
        except Exception:  # noqa: BLE001  # rank 0's store is gone
            stderr_line(f"rank {run.rank}: lost contact with rank 0; its output has the report")
            return int(ExitCode.COULD_NOT_RUN)
        now = time.monotonic()
        if rank0_beat != last_seen[0]:
            last_seen = (rank0_beat, now)
        elif now - last_seen[1] > RANK0_SILENT_S + run.options.timeout_s:
            stderr_line(f"rank {run.rank}: rank 0 stopped answering; giving up")
            return int(ExitCode.COULD_NOT_RUN)
        if isinstance(control, dict):
            state = control.get("state")
            if state in ("abort", "done"):
                run.stop.set()
                _quietly(lambda: board.add("count/bye", 1))
                return int(control.get("code", 1))
            if state == "go" and not started_work:
                run.layout = Layout(node_of=control["node_of"], hostnames=control["hostnames"])
                worker.thread.start()
                started_work = True
            for step in control.get("steps", []):
                worker.steps_ready[step].set()
        time.sleep(POLL_S)


def _quietly(action: Callable[[], object]) -> None:
    with contextlib.suppress(Exception):  # best effort while shutting down
        action()


def step_record(
    name: str, status: str, seconds: float | None, timeout_s: float, message: str = ""
) -> StepRecord:
    """A step as the report shows it."""
    return StepRecord(
        name=name, status=status, seconds=seconds, timeout_s=timeout_s, message=message
    )


__all__ = [
    "AbortedError",
    "CollectiveCheck",
    "CollectiveSpeed",
    "NodeRecord",
    "Options",
    "PointToPoint",
    "RankRecord",
    "SmokeResult",
    "run_rank",
]
