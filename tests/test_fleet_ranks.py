"""``dlready fleet`` end to end: real gloo ranks on this machine, healthy and broken.

Ranks are started the way torchrun, srun or a person would start them: torchrun for the
two-rank run, plain ``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` variables elsewhere, so a test holds
each process and can kill, stop or slow one. Faults inside a rank come from
``tests/fleet_hooks.py`` (``DLREADY_FLEET_TEST_HOOK``).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from dlready.fleet.report import report_from_jsonable

TESTS = Path(__file__).parent
WALL_LIMIT_S = 120
"""No run may take longer than this (the fleet's own deadlines are far shorter)."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, NO_COLOR="1", PYTHONPATH=str(TESTS))
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "GROUP_RANK"):
        env.pop(name, None)
    env.pop("DLREADY_FLEET_TEST_HOOK", None)
    env.update(extra)
    return env


class Fleet:
    """Ranks started by hand, as a launcher would."""

    def __init__(
        self,
        world: int,
        *,
        timeout_s: float,
        hook: str | None = None,
        skip: tuple[int, ...] = (),
        ranks_per_node: int | None = None,
        flags: tuple[str, ...] = ("--json",),
    ) -> None:
        port = _free_port()
        per_node = ranks_per_node or world
        self.procs: dict[int, subprocess.Popen[str]] = {}
        for rank in range(world):
            if rank in skip:
                continue
            extra = {
                "RANK": str(rank),
                "WORLD_SIZE": str(world),
                "LOCAL_RANK": str(rank % per_node),
                "LOCAL_WORLD_SIZE": str(per_node),
                "MASTER_ADDR": "127.0.0.1",
                "MASTER_PORT": str(port),
            }
            if ranks_per_node is not None:
                extra["GROUP_RANK"] = str(rank // per_node)
            if hook:
                extra["DLREADY_FLEET_TEST_HOOK"] = hook
            self.procs[rank] = subprocess.Popen(
                [sys.executable, "-m", "dlready", "fleet", "--timeout", str(timeout_s), *flags],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=_env(**extra),
            )

    def finish_rank0(self) -> tuple[int, str, str]:
        try:
            out, err = self.procs[0].communicate(timeout=WALL_LIMIT_S)
        finally:
            self.cleanup()
        return self.procs[0].returncode, out, err

    def cleanup(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.send_signal(signal.SIGCONT)
                    proc.kill()
                    proc.wait()


def _report(stdout: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(stdout)
    assert document["command"] == "fleet"
    report_from_jsonable(document["data"])  # the saved report loads back into the model
    return document


def _findings(document: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [f for f in document["data"]["findings"] if f["kind"] == kind]


def _step(document: dict[str, Any], name: str) -> dict[str, Any]:
    return next(s for s in document["data"]["steps"] if s["name"] == name)


def _torchrun_fleet(*flags: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`torchrun --standalone --nproc-per-node 2 -m dlready fleet --json FLAGS`, as a user runs it."""
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc-per-node=2",
            "-m",
            "dlready",
            "fleet",
            "--json",
            *flags,
        ],
        capture_output=True,
        text=True,
        timeout=WALL_LIMIT_S,
        env=_env(**env),
        check=False,
    )


def test_two_ranks_under_torchrun(tmp_path: Path) -> None:
    completed = _torchrun_fleet("--timeout", "30", "--output", str(tmp_path / "saved"))
    document = _report(completed.stdout)  # rank 0 alone prints
    data = document["data"]
    assert data["launcher"] == "torchrun"
    assert data["backend"] == "gloo"
    assert [r["rank"] for r in data["ranks"]] == [0, 1]
    assert [s["status"] for s in data["steps"]] == ["ok"] * 5 + ["skipped"]
    assert data["point_to_point"] == []  # one node: nothing was measured between nodes
    assert {c["op"]: c["status"] for c in data["collective_checks"]} == dict.fromkeys(
        ("all_reduce", "broadcast", "all_gather", "reduce_scatter"), "pass"
    )
    for rank in data["ranks"]:
        assert rank["matmul_tflops"] > 0
        assert rank["smoke"]
        assert all(s["status"] == "pass" for s in rank["smoke"])
    speeds = data["collective_speeds"]
    assert {s["scope"] for s in speeds} == {"intra-node"}
    for speed in speeds:
        # nccl-tests' all_reduce formulas, n = 2: busbw = algbw x 2(n-1)/n = algbw.
        assert speed["algbw_gbps"] == pytest.approx(speed["size_bytes"] / speed["time_s"] / 1e9)
        assert speed["busbw_gbps"] == pytest.approx(speed["algbw_gbps"])
    # Two CPU ranks share two busy cores: their speeds are information, never a straggler.
    assert data["findings"] == []
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert data["notes"][0].startswith("ranks 0, 1 share the CPU cores of")
    saved = json.loads((tmp_path / "saved" / "fleet.json").read_text())
    assert saved["data"]["ranks"] == data["ranks"]
    markdown = (tmp_path / "saved" / "fleet.md").read_text()
    assert markdown.startswith("## dlready fleet")
    assert "| all_reduce" not in markdown or "busbw" in markdown


def test_four_ranks_on_two_nodes_name_the_rank_whose_contribution_is_wrong() -> None:
    fleet = Fleet(4, timeout_s=40, hook="fleet_hooks:corrupt_rank_1", ranks_per_node=2)
    code, out, err = fleet.finish_rank0()
    document = _report(out)
    data = document["data"]
    assert code == 1, err[-2000:]
    assert [n["ranks"] for n in data["nodes"]] == [[0, 1], [2, 3]]
    checks = {c["op"]: c for c in data["collective_checks"]}
    for op in ("all_reduce", "all_gather"):
        assert checks[op]["status"] == "fail"
        assert checks[op]["wrong_senders"] == [1], checks[op]
        assert "rank 1 " in checks[op]["message"]
    assert checks["broadcast"]["status"] == "pass"
    assert checks["reduce_scatter"]["status"] == "pass"
    collective = _findings(document, "collective")
    assert len(collective) == 2
    assert all(1 in f["ranks"] for f in collective)
    # Within each node, across the nodes and over the world, with nccl-tests' busbw.
    scopes = {(s["scope"], s["group"], len(s["ranks"])) for s in data["collective_speeds"]}
    assert ("world", "all 4 ranks", 4) in scopes
    host = socket.gethostname()
    assert {g for s, g, _ in scopes if s == "intra-node"} == {
        f"node 0 ({host})",
        f"node 1 ({host})",
    }
    assert {g for s, g, _ in scopes if s == "inter-node"} == {
        "local rank 0 across nodes",
        "local rank 1 across nodes",
    }
    for speed in data["collective_speeds"]:
        n = len(speed["ranks"])
        assert speed["busbw_gbps"] == pytest.approx(speed["algbw_gbps"] * 2 * (n - 1) / n)
    legs = {(p["src_rank"], p["dst_rank"]) for p in data["point_to_point"]}
    assert legs == {(0, 2), (1, 3), (2, 0), (3, 1)}
    assert all(p["gbps"] > 0 for p in data["point_to_point"])


def test_a_rank_that_never_starts_is_named_within_the_timeout() -> None:
    started = time.monotonic()
    fleet = Fleet(3, timeout_s=5, skip=(2,))
    code, out, _ = fleet.finish_rank0()
    elapsed = time.monotonic() - started
    document = _report(out)
    assert code == 1
    (missing,) = _findings(document, "missing_rank")
    assert missing["ranks"] == [2]
    assert missing["hosts"] == [socket.gethostname()]  # ranks 0 and 1 share its node
    assert "never joined within 5 s" in missing["message"]
    rendezvous = _step(document, "rendezvous")
    assert rendezvous["status"] == "timed_out"
    assert rendezvous["seconds"] <= 5 + 2
    assert elapsed < 5 + 30  # process start-up on a busy machine, then the deadline
    assert fleet.procs[1].returncode == 1  # rank 1 learned the verdict and left


def test_a_rank_that_cannot_reach_rank_0_says_so_in_one_line_within_the_timeout() -> None:
    # Nothing listens on the port: torch's store client would log its error with some 40 C++
    # stack frames on stderr and wait about twice the timeout.
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", "dlready", "fleet", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=WALL_LIMIT_S,
        check=False,
        env=_env(RANK="1", WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())),
    )
    elapsed = time.monotonic() - started
    assert completed.returncode == 3
    assert completed.stdout == ""
    lines = completed.stderr.splitlines()
    assert len(lines) == 1, completed.stderr
    assert lines[0].startswith("error: rank 1 could not reach rank 0 at 127.0.0.1:")
    assert lines[0].endswith("within 5 s (Connection refused)")
    assert elapsed < 5 + 10  # torch's import on a busy machine, then the deadline


def test_a_rank_killed_mid_run_under_torchrun_is_named() -> None:
    # torchrun stops every other rank (SIGTERM) as soon as one dies; rank 0 still reports, and
    # names the rank that neither finished the step nor said it was stopped.
    # (Without a launcher watching, a dead rank is found by its silent heartbeat: see the
    # SIGSTOP test, which takes the same path.)
    completed = _torchrun_fleet(
        "--timeout", "10", DLREADY_FLEET_TEST_HOOK="fleet_hooks:kill_rank_1_in_collectives"
    )
    assert completed.returncode == 1
    document = _report(completed.stdout)
    # Usually torchrun's SIGTERM comes first ("terminated"); on a very busy machine rank 0 may
    # hear the silent heartbeat first ("lost_rank"). Either way rank 1 is the one named.
    (named,) = _findings(document, "terminated") or _findings(document, "lost_rank")
    assert named["ranks"] == [1]
    assert named["hosts"] == [socket.gethostname()]
    assert "during collective correctness" in named["message"]
    step = _step(document, "collective_correctness")
    assert step["status"] == "failed"
    # The table says it too, not only the finding.
    assert [r["status"] for r in document["data"]["ranks"]] == ["ok", "lost"]
    assert step["seconds"] <= 10 + 2
    # torchrun prints its own traceback (ChildFailedError); none may come from dlready.
    assert "/dlready/" not in "".join(
        line for line in completed.stderr.splitlines() if line.strip().startswith("File ")
    )


def test_torchrun_cancelled_from_outside_is_interrupted_not_a_failed_rank() -> None:
    completed = _torchrun_fleet(
        "--timeout", "10", DLREADY_FLEET_TEST_HOOK="fleet_hooks:cancel_torchrun_in_collectives"
    )
    document = json.loads(completed.stdout)
    assert (document["exit_code"], document["status"]) == (3, "interrupted")
    assert document["errors"][0]["detail"] == {"signal": "SIGTERM"}
    findings = document["data"]["findings"]
    # On a loaded machine the two CPU ranks' speeds may also differ enough for a straggler
    # finding; what matters is that no rank is blamed for the stop.
    (finding,) = [f for f in findings if f["kind"] == "interrupted"]
    blaming = ("missing_rank", "lost_rank", "stalled_rank", "terminated")
    assert not [f for f in findings if f["kind"] in blaming]
    assert finding["ranks"] == []
    assert "stopped from outside (SIGTERM) during collective correctness" in finding["message"]
    assert "failing rank" not in finding["fix"]
    assert [r["status"] for r in document["data"]["ranks"]] == ["ok", "ok"]
    assert "error: interrupted (SIGTERM) before the result was complete" in completed.stderr


def test_a_rank_stopped_mid_run_is_named_and_leaves_when_continued() -> None:
    fleet = Fleet(2, timeout_s=10, hook="fleet_hooks:stop_rank_1_in_collectives")
    try:
        out, err = fleet.procs[0].communicate(timeout=WALL_LIMIT_S)
        code = fleet.procs[0].returncode
        document = _report(out)
        assert code == 1, err[-2000:]
        (lost,) = _findings(document, "lost_rank")
        assert lost["ranks"] == [1]
        assert "stopped answering" in lost["message"]
        assert _step(document, "collective_correctness")["seconds"] <= 10 + 2
        # Continued, the stopped rank leaves: with rank 0's verdict if rank 0's store is still
        # up, else with 3 and one line saying it lost rank 0; never a hang.
        fleet.procs[1].send_signal(signal.SIGCONT)
        assert fleet.procs[1].wait(timeout=30) in (1, 3)
        if fleet.procs[1].returncode == 3:
            assert fleet.procs[1].stderr is not None
            assert "lost contact with rank 0" in fleet.procs[1].stderr.read()
    finally:
        fleet.cleanup()


def test_a_launcher_stop_while_torch_loads_still_gives_rank_0_report() -> None:
    # torchrun's SIGTERM when another rank died in its first seconds, while this one was still
    # importing torch (tests/fleet_hooks.py sends it at `import torch`, every time).
    run = (
        "import runpy, sys, fleet_hooks; fleet_hooks.terminate_when_torch_loads(); "
        "sys.argv = ['dlready', 'fleet', '--json', '--timeout', '5']; "
        "runpy.run_module('dlready', run_name='__main__', alter_sys=True)"
    )
    launcher = {"RANK": "0", "WORLD_SIZE": "2", "LOCAL_RANK": "0", "LOCAL_WORLD_SIZE": "2"}
    completed = subprocess.run(
        [sys.executable, "-c", run],
        capture_output=True,
        text=True,
        timeout=WALL_LIMIT_S,
        env=_env(**launcher, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(_free_port())),
        check=False,
    )
    assert completed.returncode == 1, completed.stderr[-2000:]
    document = _report(completed.stdout)
    (terminated,) = _findings(document, "terminated")
    assert "while rank 0 was still starting" in terminated["message"]
    assert _step(document, "rendezvous")["status"] == "failed"
    # Nothing was heard from any rank: unknown, never "ok" and never "never joined".
    assert [r["status"] for r in document["data"]["ranks"]] == ["unknown", "unknown"]
    assert "Traceback" not in completed.stderr


def _pin(pid: int, cpu: int, running: threading.Event) -> None:
    """Keep every thread of ``pid`` (torch starts its own as it goes) on one CPU."""
    while running.is_set():
        with contextlib.suppress(OSError):
            for tid in os.listdir(f"/proc/{pid}/task"):
                with contextlib.suppress(OSError):
                    os.sched_setaffinity(int(tid), {cpu})
        time.sleep(0.05)


def test_a_rank_slowed_from_outside_is_named_as_the_straggler() -> None:
    """Rank 1 shares its CPU with busy processes from outside, rank 0 has one to itself: rank 1
    computes at about a third of the speed the whole time. Two CPU ranks on one host name nobody by the
    median, so this checks the far-below-its-peer rule (judge.FAR_BELOW_FASTEST_PERCENT)."""
    cpus = sorted(os.sched_getaffinity(0))
    assert len(cpus) >= 2, "this test needs two CPUs (CI has two)"
    # Two busy processes share rank 1's CPU, so it gets about a third of it: well below the
    # 60 % rule even when other work on the machine slows rank 0 too.
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    for hog in hogs:
        os.sched_setaffinity(hog.pid, {cpus[1]})
    fleet = Fleet(2, timeout_s=40)
    running = threading.Event()
    running.set()
    pinners = [
        threading.Thread(target=_pin, args=(fleet.procs[0].pid, cpus[0], running)),
        threading.Thread(target=_pin, args=(fleet.procs[1].pid, cpus[1], running)),
    ]
    for pinner in pinners:
        pinner.start()
    try:
        code, out, _err = fleet.finish_rank0()
    finally:
        running.clear()
        for pinner in pinners:
            pinner.join()
        for hog in hogs:
            hog.kill()
            hog.wait()
    document = _report(out)
    ranks = {r["rank"]: r for r in document["data"]["ranks"]}
    speeds = {n: (r["matmul_tflops"], r["matmul_percent_of_median"]) for n, r in ranks.items()}
    assert code == 1, speeds
    assert ranks[1]["status"] == "straggler", ranks[1]
    assert ranks[0]["status"] == "ok"
    (straggler,) = _findings(document, "straggler")
    assert straggler["ranks"] == [1]
    assert "rank 1 " in straggler["message"]
    assert "fastest identical peer" in straggler["message"]
