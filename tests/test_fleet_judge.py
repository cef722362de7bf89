"""The fleet's pure parts: launcher variables, judging, assembling, rendering (no torch)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from dlready.fleet.assemble import Gathered, assemble, likely_host
from dlready.fleet.coordinator import skipped_reason, stopped_before_start
from dlready.fleet.judge import stalled_words
from dlready.fleet.launch import (
    DEFAULT_PORT,
    LaunchError,
    first_slurm_host,
    read_launch,
    wait_for_listener,
)
from dlready.fleet.links import probe_nics
from dlready.fleet.report import report_from_jsonable
from dlready.model import SnapshotFormatError, to_jsonable
from dlready.probes.hostfs import ReplayHostFiles
from dlready.render.fleet_render import render_markdown, render_text
from fleet_scenarios import (
    RECORDED_BF16_TFLOPS,
    VM_FLOAT32_TFLOPS,
    VM_SLOWED_PERCENT,
    cpu_fleet,
    h100_fleet,
)

TORCHRUN = {
    "RANK": "9",
    "WORLD_SIZE": "16",
    "LOCAL_RANK": "1",
    "LOCAL_WORLD_SIZE": "8",
    "GROUP_RANK": "1",
    "MASTER_ADDR": "node-a",
    "MASTER_PORT": "29400",
    "TORCHELASTIC_RUN_ID": "job",
    "TORCHELASTIC_USE_AGENT_STORE": "True",
    "TORCHELASTIC_RESTART_COUNT": "2",
}
SLURM = {
    "SLURM_PROCID": "5",
    "SLURM_NTASKS": "8",
    "SLURM_LOCALID": "1",
    "SLURM_NODEID": "1",
    "SLURM_NTASKS_PER_NODE": "4",
    "SLURM_JOB_NODELIST": "gpu[07-09,12],cpu1",
}


def test_torchrun_variables() -> None:
    launch = read_launch(TORCHRUN)
    assert (launch.launcher, launch.rank, launch.world_size, launch.local_rank) == (
        "torchrun",
        9,
        16,
        1,
    )
    assert (launch.local_world_size, launch.node_rank, launch.restart_count) == (8, 1, 2)
    assert (launch.master_addr, launch.master_port, launch.agent_hosts_store) == (
        "node-a",
        29400,
        True,
    )


def test_slurm_variables_when_torchrun_is_absent() -> None:
    launch = read_launch(SLURM)
    assert (launch.launcher, launch.rank, launch.world_size, launch.local_rank) == (
        "slurm",
        5,
        8,
        1,
    )
    assert (launch.node_rank, launch.local_world_size) == (1, 4)
    assert (launch.master_addr, launch.master_port, launch.agent_hosts_store) == (
        "gpu07",
        DEFAULT_PORT,
        False,
    )
    assert read_launch({**SLURM, "MASTER_ADDR": "head", "MASTER_PORT": "4000"}).master_port == 4000


@pytest.mark.parametrize(
    ("nodelist", "first"),
    [("gpu[07-09,12],cpu1", "gpu07"), ("node1,node2", "node1"), ("a-b[3]", "a-b3"), ("h", "h")],
)
def test_first_slurm_host(nodelist: str, first: str) -> None:
    assert first_slurm_host(nodelist) == first


def test_plain_variables_and_one_process() -> None:
    plain = read_launch({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "10.0.0.1"})
    assert (plain.launcher, plain.local_rank, plain.master_port) == ("environment", 0, DEFAULT_PORT)
    single = read_launch({})
    assert (single.launcher, single.world_size, single.master_port) == ("single", 1, 0)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RANK": "0", "WORLD_SIZE": "2"}, "MASTER_ADDR is not"),
        ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, "not below the world size"),
        ({"RANK": "x", "WORLD_SIZE": "2", "MASTER_ADDR": "h"}, "RANK='x' is not a whole number"),
        ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "70000"}, "TCP port"),
        ({"RANK": "0", "WORLD_SIZE": "0", "MASTER_ADDR": "h"}, "at least 1"),
        ({"SLURM_PROCID": "0", "SLURM_NTASKS": "2", "SLURM_JOB_NODELIST": ""}, "names no host"),
    ],
)
def test_bad_launcher_variables(env: dict[str, str], message: str) -> None:
    with pytest.raises(LaunchError, match=message):
        read_launch(env)


def _kinds(gathered: Gathered) -> list[str]:
    return [f.kind for f in assemble(gathered).findings]


def test_a_uniform_recorded_fleet_has_no_findings() -> None:
    report = assemble(h100_fleet(2))
    assert report.findings == ()
    assert {r.status for r in report.ranks} == {"ok"}
    rank = report.ranks[0]
    assert rank.matmul_expected_tflops == 989.5  # device_peaks.json, H100 SXM bf16 dense
    assert rank.matmul_percent_of_median == pytest.approx(100.0)
    assert rank.expected_source is not None
    assert "datasheet" in rank.expected_source


def test_another_driver_on_one_node_names_that_node() -> None:
    def change(g: Gathered) -> None:
        g.joins[8]["node"]["driver_version"] = "570.86.15"

    report = assemble(h100_fleet(3, change=change))
    (finding,) = report.findings
    assert finding.kind == "driver"
    assert finding.hosts == ("h100-0001",)
    assert finding.ranks == tuple(range(8, 16))
    assert "570.86.15" in finding.message
    assert "580.159.04" in finding.message


def test_a_missing_gpu_on_one_node_is_named() -> None:
    def change(g: Gathered) -> None:
        # Node 1 lost GPU 7: NVML lists 7 GPUs there.
        g.joins[8]["node"]["gpus"].pop()

    kinds = _kinds(h100_fleet(2, change=change))
    assert kinds == ["gpu_count"]
    report = assemble(h100_fleet(2, change=change))
    assert report.findings[0].hosts == ("h100-0001",)
    assert "7" in report.findings[0].message


def test_a_narrower_pcie_link_is_named() -> None:
    def change(g: Gathered) -> None:
        g.joins[8]["node"]["gpus"][3]["pcie_width_max"] = 8

    report = assemble(h100_fleet(2, change=change))
    (finding,) = report.findings
    assert finding.kind == "pcie"
    assert "GPU 3" in finding.message
    assert "x8" in finding.message
    assert "x16" in finding.message


def test_another_torch_on_one_rank_is_named() -> None:
    def change(g: Gathered) -> None:
        g.joins[5]["torch_version"] = "2.10.0+cu128"

    report = assemble(h100_fleet(2, change=change))
    (finding,) = report.findings
    assert (finding.kind, finding.ranks, finding.hosts) == ("torch", (5,), ("h100-0000",))


@pytest.mark.parametrize(("tflops", "named"), [(600.0, True), (RECORDED_BF16_TFLOPS * 0.92, False)])
def test_a_straggler_is_named_below_ninety_percent_of_its_peers(tflops: float, named: bool) -> None:
    def change(g: Gathered) -> None:
        g.results["health"][11]["matmul_tflops"] = tflops

    report = assemble(h100_fleet(2, change=change))
    kinds = [f.kind for f in report.findings]
    assert ("straggler" in kinds) is named
    assert (report.ranks[11].status == "straggler") is named
    if named:
        (finding,) = report.findings
        assert finding.ranks == (11,)
        assert "h100-0001" in finding.message
        assert "cuda:3" in finding.message


def test_cpu_ranks_sharing_one_host_name_no_straggler_and_say_why() -> None:
    # The QA run: two ranks on the VM's two cores, one at 87 % of their median, nothing wrong.
    fast, _ = VM_FLOAT32_TFLOPS
    slowed = fast * VM_SLOWED_PERCENT / 100
    report = assemble(cpu_fleet(1, 2, lambda rank: slowed if rank == 0 else fast))
    assert report.findings == ()
    assert [r.status for r in report.ranks] == ["ok", "ok"]
    # The figures are still shown, for information.
    assert report.ranks[0].matmul_percent_of_median == pytest.approx(
        100 * slowed / (slowed + fast) * 2
    )
    (note,) = report.notes
    assert note.startswith("ranks 0, 1 share the CPU cores of vm")
    text = render_text(report)
    assert "is a straggler" not in text
    assert "Notes\n  - ranks 0, 1 share the CPU cores of vm" in text
    assert "### Notes\n\n- ranks 0, 1 share the CPU cores of vm" in render_markdown(report)


def test_cpu_ranks_on_their_own_hosts_are_judged_with_a_fix_for_cpus() -> None:
    fast, _ = VM_FLOAT32_TFLOPS
    report = assemble(cpu_fleet(3, 1, lambda rank: fast / 2 if rank == 2 else fast))
    (finding,) = report.findings
    assert (finding.kind, finding.ranks, finding.hosts) == ("straggler", (2,), ("vm-0002",))
    assert "matmul 50 % of the median of 3 identical devices" in finding.message
    assert "nvidia-smi" not in finding.fix
    assert "`top`" in finding.fix


@pytest.mark.parametrize(("gpus", "named"), [(2, False), (3, True)])
def test_a_straggler_takes_three_identical_devices(gpus: int, named: bool) -> None:
    def change(g: Gathered) -> None:
        g.results["health"][1]["matmul_tflops"] = 600.0  # 76 % of 794.3, above 40 % of peak

    report = assemble(h100_fleet(1, gpus_per_node=gpus, change=change))
    assert [f.kind for f in report.findings] == (["straggler"] if named else [])
    if named:
        assert "`nvidia-smi -q -d PERFORMANCE,CLOCK,TEMPERATURE`" in report.findings[0].fix
        assert report.notes == ()
    else:
        (note,) = report.notes
        assert note.startswith("2 identical devices (NVIDIA H100 80GB HBM3 79.6 GiB)")
        assert report.ranks[1].matmul_percent_of_median is not None  # shown, not judged


def test_far_below_the_spec_sheet_is_named_even_when_every_gpu_is_equally_slow() -> None:
    def change(g: Gathered) -> None:
        for value in g.results["health"].values():
            value["matmul_tflops"] = 300.0  # 30 % of 989.5: a fleet-wide power cap

    report = assemble(h100_fleet(1, change=change))
    assert {f.kind for f in report.findings} == {"below_peak"}
    assert len(report.findings) == 8


def test_a_wrong_slot_names_its_sender_and_a_wrong_result_its_receiver() -> None:
    def change(g: Gathered) -> None:
        for value in g.results["collective_correctness"].values():
            value["all_gather"] = {"ok": False, "wrong_senders": [6], "contribution_ok": True}
        g.results["collective_correctness"][2]["reduce_scatter"] = {
            "ok": False,
            "wrong_senders": [],
        }

    report = assemble(h100_fleet(1, change=change))
    checks = {c.op: c for c in report.collective_checks}
    assert checks["all_gather"].wrong_senders == (6,)
    assert "rank 6 " in checks["all_gather"].message
    assert checks["reduce_scatter"].wrong_receivers == (2,)
    assert checks["reduce_scatter"].message == "rank 2 received a wrong result"
    assert checks["all_reduce"].status == "pass"
    assert [f.kind for f in report.findings] == ["collective", "collective"]


def test_bus_bandwidth_uses_the_nccl_tests_formula() -> None:
    report = assemble(h100_fleet(2))
    for speed in report.collective_speeds:
        n = len(speed.ranks)
        assert speed.algbw_gbps == pytest.approx(speed.size_bytes / speed.time_s / 1e9)
        assert speed.busbw_gbps == pytest.approx(speed.algbw_gbps * 2 * (n - 1) / n)
    scopes = {(s.scope, len(s.ranks)) for s in report.collective_speeds}
    assert scopes == {("world", 16), ("intra-node", 8), ("inter-node", 2)}
    intra = next(e for e in report.link_expectations if e.scope == "intra-node")
    assert intra.gbps == pytest.approx(63.0, rel=0.05)  # PCIe Gen5 x16 floor from device_peaks
    inter = next(e for e in report.link_expectations if e.scope == "inter-node")
    assert inter.gbps is None
    assert inter.source == "the network link speed could not be read on every node"
    assert (
        "  inter-node link: no expected speed (the network link speed could not be read on "
        "every node)\n" in render_text(report)
    )


def test_a_slow_link_between_two_nodes_names_both_ends() -> None:
    def change(g: Gathered) -> None:
        g.results["point_to_point"][8 + 2]["gbps"] = 12.0  # node 1 -> node 2, local rank 2

    report = assemble(h100_fleet(4, change=change))
    (finding,) = report.findings
    assert finding.kind == "slow_link"
    assert finding.ranks == (10, 18)
    assert finding.hosts == ("h100-0001", "h100-0002")


def test_a_rank_that_never_joined_is_placed_on_its_node() -> None:
    joins: dict[int, dict[str, Any]] = {
        r: {"hostname": f"n{r // 4}", "local_world_size": 4} for r in (0, 1, 2, 3, 4, 5, 7)
    }
    assert likely_host(6, joins) == "n1"
    assert likely_host(9, joins) is None


def test_the_report_round_trips_through_json_and_renders() -> None:
    def change(g: Gathered) -> None:
        g.results["health"][3]["matmul_tflops"] = 500.0

    report = assemble(h100_fleet(2, change=change))
    document = json.loads(json.dumps(to_jsonable(report)))
    assert report_from_jsonable(document) == report
    text = render_text(report)
    assert "h100-0000" in text
    assert "straggler" in text
    assert "fix:" in text
    markdown = render_markdown(report)
    assert "| 0 | 3 | h100-0000 |" in markdown


def test_one_process_is_reported_in_words() -> None:
    # `dlready fleet` without a launcher: one rank, one node, nothing between nodes.
    gathered = h100_fleet(1, gpus_per_node=1)
    gathered.launcher = "single"
    text = render_text(assemble(gathered))
    assert text.startswith(
        "dlready fleet: 1 rank on 1 node, backend nccl, one process, no launcher\n"
    )
    assert (
        "  point to point between nodes: skipped: one node: there is no link between nodes" in text
    )
    assert "  all_reduce: pass: exact on the one rank\n" in text
    assert "  collective speed: skipped: one rank: there is no other rank to exchange" in text
    for internal in ("single", "(s)", "all 1 ranks", "unknown:"):
        assert internal not in text, internal
    markdown = render_markdown(assemble(gathered))
    assert "1 rank on 1 node, backend nccl, one process, no launcher." in markdown
    assert "| point to point between nodes | skipped |" in markdown


def test_numbers_and_percents_have_one_format() -> None:
    def change(g: Gathered) -> None:
        g.results["health"][11]["matmul_tflops"] = 600.0

    text = render_text(assemble(h100_fleet(2, change=change)))
    row = next(line for line in text.splitlines() if line.startswith("1     11 "))
    assert "  600  " in row
    assert "  76 %  " in row  # 75.54 % of the median, in whole percents like the finding's
    assert "straggler: matmul 76 % of the median of 16 identical devices" in row
    first = next(line for line in text.splitlines() if line.startswith("0     0 "))
    assert first.endswith("  794.3    100 %")


def test_a_run_stopped_before_rank_0_heard_from_anyone_says_so() -> None:
    code, report = stopped_before_start("torchrun", 2, 15.0)
    assert code == 1
    text = render_text(report)
    assert text.startswith(
        "dlready fleet: 2 ranks, none heard from, backend not started, launched by torchrun\n"
    )
    assert "rendezvous and inventory: failed: stopped by the launcher while rank 0" in text


def test_skipped_step_reason() -> None:
    one = "one node: there is no link between nodes to measure"
    assert skipped_reason({0: {"skipped": one}, 1: {"skipped": one}}) == one
    assert skipped_reason({0: {"skipped": one}, 1: {"send_to": 0, "gbps": 1.0}}) is None
    assert skipped_reason({}) is None


def test_ranks_rank_0_gave_up_on_show_it_in_their_status(monkeypatch: pytest.MonkeyPatch) -> None:
    """What rank 0's deadlines find about a rank is its status in the table, not only a finding."""
    from types import SimpleNamespace

    from dlready.fleet import coordinator

    monkeypatch.setattr(coordinator, "TERM_GRACE_S", 0.0)
    recorded = h100_fleet(1, gpus_per_node=4)

    def stopped(step: str, status: str, missing: list[int], lost: list[int]) -> dict[int, str]:
        board = SimpleNamespace(has=lambda key: key == "term/3")  # rank 3 got the SIGTERM too
        run = SimpleNamespace(
            board=board,
            world=4,
            options=SimpleNamespace(timeout_s=60.0),
            launch=SimpleNamespace(launcher="torchrun"),
        )
        rank0 = coordinator.Coordinator(run, None, None, 0.0)  # type: ignore[arg-type]
        rank0.gathered.joins = recorded.joins
        rank0.gathered.results = {"health": recorded.results["health"]}
        rank0._stop(step, status, missing, lost)
        return {r.rank: r.status for r in assemble(rank0.gathered).ranks}

    # torchrun stopped the run: rank 1 neither finished nor said it got the signal: it died.
    assert stopped("collective_correctness", "terminated", [1, 3], []) == {
        0: "ok",
        1: "lost",
        2: "ok",
        3: "ok",
    }
    assert stopped("collective_speed", "timed_out", [2], [])[2] == "stalled"
    assert stopped("health", "lost", [1, 2], [2]) == {0: "ok", 1: "ok", 2: "lost", 3: "ok"}


def test_a_run_cancelled_from_outside_names_no_failed_rank(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM to torchrun (or scancel, Ctrl-C) while every rank answers: interrupted, exit 3."""
    from types import SimpleNamespace

    from dlready.fleet import coordinator
    from dlready.fleet.judge import exit_code
    from dlready.fleet.launch import StopEvent

    monkeypatch.setattr(coordinator, "TERM_GRACE_S", 0.0)
    recorded = h100_fleet(1, gpus_per_node=4)

    def stopped(said_term: set[int]) -> Any:
        board = SimpleNamespace(has=lambda key: key in {f"term/{r}" for r in said_term})
        run = SimpleNamespace(
            board=board,
            world=4,
            options=SimpleNamespace(timeout_s=60.0),
            launch=SimpleNamespace(launcher="torchrun"),
        )
        signal_received = StopEvent()
        signal_received.signal_name = "SIGTERM"
        rank0 = coordinator.Coordinator(run, None, signal_received, 0.0)  # type: ignore[arg-type]
        rank0.gathered.joins = recorded.joins
        rank0._record("health", "failed", 0.0, "stopped by the launcher")
        rank0._stop("health", "terminated", [0, 1, 2, 3], [])
        return assemble(rank0.gathered)

    report = stopped({1, 2, 3})
    (finding,) = report.findings
    assert finding.kind == "interrupted"
    assert finding.ranks == ()
    assert "stopped from outside (SIGTERM) during per-rank health and speed" in finding.message
    assert "failing rank" not in finding.fix
    assert int(exit_code(report)) == 3
    assert "lost" not in {r.status for r in report.ranks}
    assert report.steps[-1].message == "stopped from outside (SIGTERM)"
    # One rank never said it got the signal: it died first, and that is the launcher's reason.
    report = stopped({1, 3})
    (finding,) = report.findings
    assert (finding.kind, finding.ranks) == ("terminated", (2,))
    assert int(exit_code(report)) == 1


def test_a_saved_report_that_does_not_fit_names_the_value() -> None:
    data = to_jsonable(assemble(h100_fleet(1)))
    data["ranks"][3]["rank"] = "x"
    with pytest.raises(SnapshotFormatError, match=r"^\$\.data\.ranks\[3\]\.rank: expected int"):
        report_from_jsonable(data)


def test_nics_are_read_from_sysfs_physical_links_only() -> None:
    files = ReplayHostFiles(
        {
            "/sys/class/net/eth0/device/uevent": "DRIVER=mlx5_core\n",
            "/sys/class/net/eth0/speed": "100000\n",
            "/sys/class/net/docker0/speed": "10000\n",
            "/sys/class/infiniband/mlx5_0/ports/1/state": "4: ACTIVE\n",
            "/sys/class/infiniband/mlx5_0/ports/1/rate": "400 Gb/sec (4X NDR)\n",
        }
    )
    links, fastest = probe_nics(files)
    assert links == ("eth0 100 Gb/s", "mlx5_0/1 400 Gb/s")
    assert fastest == 50.0


def test_fleet_and_diff_modules_do_not_import_torch() -> None:
    code = (
        "import sys; import dlready.cli, dlready.commands.fleet, dlready.commands.diff, "
        "dlready.fleet.assemble, dlready.fleet.coordinator, dlready.render.fleet_render, "
        "dlready.report_diff; assert 'torch' not in sys.modules, 'torch imported'"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr


def test_every_finding_kind_flag_and_step_is_documented() -> None:
    import re
    from pathlib import Path

    import typer

    from dlready.cli import app
    from dlready.fleet.report import FINDING_KINDS, STEP_NAMES

    root = Path(__file__).parents[1]
    doc = (root / "docs/fleet.md").read_text()
    for kind in FINDING_KINDS:
        assert f"`{kind}`" in doc, f"docs/fleet.md does not document the finding {kind}"
    schema = (root / "docs/json-schema.md").read_text()
    for step in STEP_NAMES:
        assert f"`{step}`" in schema
    command = typer.main.get_command(app)
    for name in ("fleet", "diff"):
        sub = command.commands[name]  # type: ignore[attr-defined]
        for param in sub.params:
            for opt in param.opts:
                if opt.startswith("--") and opt != "--help":
                    assert f"`{opt}" in doc, f"docs/fleet.md does not document {name} {opt}"
    sources = "".join(
        p.read_text() for p in (root / "src/dlready/fleet").glob("*.py") if p.name != "report.py"
    )
    emitted = set(re.findall(r'kind="(\w+)"', sources))
    emitted |= set(re.findall(r'^\s+\(\n?\s*"(\w+)",\n\s+"The ', sources, re.MULTILINE))
    assert emitted == set(FINDING_KINDS)


@pytest.mark.parametrize(
    ("env", "args", "message"),
    [
        ({"RANK": "0", "WORLD_SIZE": "2"}, ["--json"], "MASTER_ADDR is not"),
        ({}, ["--json", "--timeout", "0"], "--timeout 0: give at least 5 and at most 86400"),
        ({}, ["--json", "--timeout", "1e-9"], "--timeout 1e-09: give at least 5"),
        ({}, ["--json", "--timeout", "4.9"], "--timeout 4.9: give at least 5"),
        ({}, ["--json", "--timeout", "nan"], "--timeout nan: give at least 5"),
        ({}, ["--json", "--markdown"], "cannot be combined"),
    ],
)
def test_fleet_refusals_exit_2_before_importing_torch(
    env: dict[str, str], args: list[str], message: str
) -> None:
    import os

    environment = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    completed = subprocess.run(
        [sys.executable, "-m", "dlready", "fleet", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**environment, **env},
    )
    assert completed.returncode == 2
    document = json.loads(completed.stdout)
    assert (document["command"], document["exit_code"]) == ("fleet", 2)
    assert message in document["errors"][0]["message"]
    assert "Traceback" not in completed.stderr


def test_an_output_that_is_a_file_is_refused_before_the_run(tmp_path: Path) -> None:
    import os

    afile = tmp_path / "afile"
    afile.write_text("keep me", encoding="utf-8")
    environment = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    completed = subprocess.run(
        [sys.executable, "-m", "dlready", "fleet", "--output", "afile"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=environment,
        cwd=tmp_path,
    )
    assert completed.returncode == 2
    assert completed.stdout == ""  # no report: nothing ran
    assert completed.stderr.startswith("error: --output must be a folder; afile is a file\n")
    assert afile.read_text(encoding="utf-8") == "keep me"


def test_output_problems(tmp_path: Path) -> None:
    from dlready.commands.fleet import output_problem

    (tmp_path / "afile").write_text("", encoding="utf-8")
    assert (
        output_problem(tmp_path / "afile")
        == f"--output must be a folder; {tmp_path}/afile is a file"
    )
    problem = output_problem(tmp_path / "afile" / "below")
    assert problem is not None
    assert "cannot be created (Not a directory)" in problem
    assert output_problem(tmp_path / "new" / "report") is None
    assert (tmp_path / "new" / "report").is_dir()
    assert output_problem(tmp_path) is None


def test_a_stuck_cpu_rank_gets_no_gpu_advice() -> None:
    cpu = {"device": "cpu", "torch_cuda": None, "device_name": "AMD EPYC"}
    cause, fix = stalled_words([cpu, cpu])
    assert "kernel" not in cause
    assert "nvidia-smi" not in fix
    assert "`top`" in fix
    nvidia = {"device": "cuda:0", "torch_cuda": "13.0", "device_name": "NVIDIA H100 80GB HBM3"}
    cause, fix = stalled_words([cpu, nvidia])
    assert "hung kernel" in cause
    assert "`nvidia-smi -q -d ERRORS`" in fix
    amd = {"device": "cuda:0", "torch_cuda": None, "device_name": "AMD Instinct MI300X"}
    cause, fix = stalled_words([amd])
    assert "nvidia-smi" not in fix
    assert "`rocm-smi`" in fix


def test_waiting_for_rank_0_keeps_to_the_timeout() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: refused
        started = time.monotonic()
        assert wait_for_listener("127.0.0.1", port, 0.5) == "Connection refused"
        assert time.monotonic() - started < 0.5 + 1.0
    with socket.socket() as listening:
        listening.bind(("127.0.0.1", 0))
        listening.listen()
        assert wait_for_listener("127.0.0.1", listening.getsockname()[1], 5.0) is None


def test_nccl_without_a_gpu_is_a_usage_error() -> None:
    import os

    environment = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE")}
    completed = subprocess.run(
        [sys.executable, "-m", "dlready", "fleet", "--backend", "nccl", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**environment, "CUDA_VISIBLE_DEVICES": ""},
    )
    assert completed.returncode == 2
    document = json.loads(completed.stdout)
    assert "--backend nccl needs CUDA GPUs" in document["errors"][0]["message"]


def test_with_two_identical_gpus_one_far_below_the_other_is_still_named() -> None:
    def change(g: Gathered) -> None:
        g.results["health"][1]["matmul_tflops"] = 450.0  # 57 % of its peer, 45 % of peak

    report = assemble(h100_fleet(1, gpus_per_node=2, change=change))
    (finding,) = report.findings
    assert (finding.kind, finding.ranks) == ("straggler", (1,))
    assert "of its fastest identical peer" in finding.message
