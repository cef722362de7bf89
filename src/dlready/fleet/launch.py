"""Who this process is in the fleet, read from the launcher's variables (pure: no torch).

Three launchers are understood, in this order:

1. torchrun (and anything built on it, such as Kubernetes' PyTorchJob): ``RANK``,
   ``WORLD_SIZE``, ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``, ``MASTER_ADDR``,
   ``MASTER_PORT``; ``TORCHELASTIC_USE_AGENT_STORE=True`` means torchrun's agent already
   hosts the key-value store at ``MASTER_ADDR:MASTER_PORT``.
2. Slurm's ``srun`` when torchrun's variables are absent: ``SLURM_PROCID``, ``SLURM_NTASKS``,
   ``SLURM_LOCALID``, ``SLURM_NODEID``, the first host of ``SLURM_JOB_NODELIST`` as the
   address of rank 0 (https://slurm.schedmd.com/srun.html#SECTION_OUTPUT-ENVIRONMENT-VARIABLES).
3. Plain ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT`` set by hand.

Without any of them the fleet is this one process (world size 1).
"""

from __future__ import annotations

import re
import signal
import socket
import threading
import time
from collections.abc import Mapping
from typing import Any

from msgspec import Struct

DEFAULT_PORT = 29500
"""torchrun's default ``MASTER_PORT``; also used under Slurm when ``MASTER_PORT`` is unset."""


class LaunchError(ValueError):
    """The launcher's variables are missing, malformed or contradict each other."""


class Launch(Struct, frozen=True):
    """This process's place in the fleet."""

    launcher: str
    """``torchrun``, ``slurm``, ``environment`` or ``single``."""
    rank: int
    world_size: int
    local_rank: int
    local_world_size: int | None
    node_rank: int | None
    """The node's index when the launcher says it (torchrun ``GROUP_RANK``, ``SLURM_NODEID``)."""
    master_addr: str
    master_port: int
    agent_hosts_store: bool
    """True under torchrun: its agent hosts the store, so rank 0 connects as a client."""
    restart_count: int = 0


def _int(env: Mapping[str, str], name: str, *, minimum: int = 0) -> int:
    text = env.get(name, "").strip()
    try:
        value = int(text)
    except ValueError:
        raise LaunchError(f"{name}={text!r} is not a whole number") from None
    if value < minimum:
        raise LaunchError(f"{name}={value} must be at least {minimum}")
    return value


def _optional_int(env: Mapping[str, str], name: str, *, minimum: int = 0) -> int | None:
    return _int(env, name, minimum=minimum) if env.get(name, "").strip() else None


def first_slurm_host(nodelist: str) -> str:
    """The first host of a Slurm node list: ``gpu[07-09,12],cpu1`` gives ``gpu07``."""
    text = nodelist.strip()
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", text)
    if not text or match is None:
        raise LaunchError(f"SLURM_JOB_NODELIST={nodelist!r} names no host")
    prefix, ranges = match.group(1), match.group(2)
    if ranges is None:
        return prefix
    first = ranges.split(",")[0].split("-")[0]
    return prefix + first


def _port(env: Mapping[str, str]) -> int:
    if not env.get("MASTER_PORT", "").strip():
        return DEFAULT_PORT
    port = _int(env, "MASTER_PORT", minimum=1)
    if port > 65535:
        raise LaunchError(f"MASTER_PORT={port} is not a TCP port (1-65535)")
    return port


def read_launch(env: Mapping[str, str]) -> Launch:
    """This process's place in the fleet from ``env`` (``os.environ``).

    Raises:
        LaunchError: naming the variable that is missing or wrong.
    """
    given = [name for name in ("RANK", "WORLD_SIZE") if env.get(name, "").strip()]
    if given:
        for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR"):
            if not env.get(name, "").strip():
                verb = "is" if len(given) == 1 else "are"
                raise LaunchError(f"{' and '.join(given)} {verb} set but {name} is not")
        launcher = "torchrun" if env.get("TORCHELASTIC_RUN_ID") else "environment"
        rank = _int(env, "RANK")
        world_size = _int(env, "WORLD_SIZE", minimum=1)
        local_rank = _optional_int(env, "LOCAL_RANK")
        launch = Launch(
            launcher=launcher,
            rank=rank,
            world_size=world_size,
            local_rank=local_rank if local_rank is not None else 0,
            local_world_size=_optional_int(env, "LOCAL_WORLD_SIZE", minimum=1),
            node_rank=_optional_int(env, "GROUP_RANK"),
            master_addr=env["MASTER_ADDR"].strip(),
            master_port=_port(env),
            agent_hosts_store=env.get("TORCHELASTIC_USE_AGENT_STORE", "").lower() == "true",
            restart_count=_optional_int(env, "TORCHELASTIC_RESTART_COUNT") or 0,
        )
    elif env.get("SLURM_PROCID", "").strip() and env.get("SLURM_NTASKS", "").strip():
        nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST") or ""
        address = env.get("MASTER_ADDR", "").strip() or first_slurm_host(nodelist)
        ntasks_per_node = env.get("SLURM_NTASKS_PER_NODE", "").strip()
        launch = Launch(
            launcher="slurm",
            rank=_int(env, "SLURM_PROCID"),
            world_size=_int(env, "SLURM_NTASKS", minimum=1),
            local_rank=_optional_int(env, "SLURM_LOCALID") or 0,
            local_world_size=int(ntasks_per_node) if ntasks_per_node.isdigit() else None,
            node_rank=_optional_int(env, "SLURM_NODEID"),
            master_addr=address,
            master_port=_port(env),
            agent_hosts_store=False,
        )
    else:
        # One process: rank 0 hosts the store on a free port.
        return Launch("single", 0, 1, 0, 1, 0, "127.0.0.1", 0, False)
    if launch.rank >= launch.world_size:
        raise LaunchError(f"rank {launch.rank} is not below the world size {launch.world_size}")
    return launch


def wait_for_listener(address: str, port: int, timeout_s: float) -> str | None:
    """None when ``address:port`` accepts a TCP connection within ``timeout_s``, else why not
    (the last attempt's reason: ``Connection refused``, ``Name or service not known``).

    Rank 0 (or torchrun's agent) may start after the others: a refused or unresolved address
    is tried again every 0.1 s until the deadline. Waiting here rather than in torch's store
    keeps the wait to ``timeout_s`` (torch's client tries twice, with a pause between) and
    keeps torch's C++ error logs, with their stack frames, off the terminal.
    """
    deadline = time.monotonic() + timeout_s
    reason = "no answer"
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return reason
        try:
            with socket.create_connection((address, port), timeout=min(remaining, 1.0)):
                return None
        except OSError as exc:
            reason = exc.strerror or str(exc) or type(exc).__name__
            if isinstance(exc, TimeoutError):
                reason = "no answer"
            time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


class StopEvent(threading.Event):
    """Set when a stop signal came; ``signal_name`` says which (``SIGTERM``, ``SIGINT``)."""

    signal_name: str = "SIGTERM"


def install_stop_handler() -> StopEvent:
    """Catch the launcher's SIGTERM (and Ctrl-C) from now on; the event says it came.

    Installed before torch is imported: torchrun stops every rank with SIGTERM as soon as one
    dies, possibly while torch is still loading (seconds), and rank 0 must still report.
    """
    stopped = StopEvent()

    def handler(signum: int, _frame: Any) -> None:
        stopped.signal_name = signal.Signals(signum).name
        stopped.set()

    signal.signal(signal.SIGTERM, handler)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, handler)
    return stopped
