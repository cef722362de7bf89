"""``check``'s head start: the probes in a forked child while the command line loads."""

from __future__ import annotations

import gc
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlready import head_start, launch
from dlready.model import GpuVendor
from dlready.probes.isolated import ChildProbe, Finished

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="fork and process groups")


@pytest.fixture(autouse=True)
def _no_pending_head_start() -> Iterator[None]:
    yield
    gc.enable()  # launch.main turns it off for the short-lived check process
    gc.unfreeze()  # and freezes the objects of a command that ends
    pending = head_start._pending
    head_start._pending = None
    if pending is not None:
        pending[1].kill()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    return status != "Z"  # a zombie waiting for its reaper has ended


def _wait_gone(pid: int, within_s: float = 5.0) -> bool:
    deadline = time.monotonic() + within_s
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


@pytest.mark.parametrize(
    ("argv", "started"),
    [
        (["check"], True),
        (["check", "--json", "--profile", "current", "--fail-on", "recommended"], True),
        (["check", "--strict", "--markdown"], True),
        (["check", "--snapshot", "report.json"], False),
        (["check", "--snapshot=report.json"], False),
        (["check", "--psu-watts", "850"], False),
        (["check", "--list-profiles"], False),
        (["check", "--help"], False),
        (["check", "-h"], False),
        (["install-cmd"], False),
        (["fit", "gpt2"], False),
        ([], False),
    ],
)
def test_launch_gives_a_head_start_only_to_a_check_that_probes(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], started: bool
) -> None:
    calls: list[str] = []

    def start() -> bool:
        calls.append("start")
        return True

    monkeypatch.setattr(head_start, "start", start)
    monkeypatch.setattr("dlready.cli.main", lambda args: calls.append(f"cli {args}"))
    launch.main(argv)
    assert calls == (["start"] if started else []) + [f"cli {argv}"]
    assert gc.isenabled() is not started


@pytest.mark.parametrize(
    ("argv", "frozen"),
    [
        (["check", "--json"], True),
        (["check", "--snapshot", "report.json"], True),
        (["install-cmd"], True),
        (["fit", "gpt2"], True),
        (["--help"], True),
        (["smoke"], False),
        (["fleet", "--json"], False),
    ],
)
def test_a_command_that_ends_leaves_its_objects_out_of_the_last_collections(
    monkeypatch: pytest.MonkeyPatch, argv: list[str], frozen: bool
) -> None:
    # Frozen even when the command exits through SystemExit, as every command does; smoke and
    # fleet may hold torch, whose shutdown is left alone.
    def cli_main(args: list[str]) -> None:
        raise SystemExit(0)

    monkeypatch.setattr(head_start, "start", lambda: False)
    monkeypatch.setattr("dlready.cli.main", cli_main)
    gc.unfreeze()
    with pytest.raises(SystemExit):
        launch.main(argv)
    assert (gc.get_freeze_count() > 0) is frozen


def test_the_head_start_brings_what_check_would_probe() -> None:
    assert head_start.start()
    ran: list[str] = []
    snapshot = head_start.take(None, meanwhile=lambda: ran.append("meanwhile"))
    here = head_start.probe_this_machine(None)
    assert ran == ["meanwhile"]
    assert snapshot is not None
    assert snapshot.cpu == here.cpu
    assert snapshot.platform == here.platform
    assert snapshot.torch == here.torch
    assert snapshot.driver_stacks == here.driver_stacks
    assert snapshot.memory.total_bytes == here.memory.total_bytes
    assert head_start.take(None) is None  # taken once


def test_other_settings_are_not_taken_and_the_child_is_ended() -> None:
    assert head_start.start(psu_watts=None)
    pid = head_start._pending[1]._pid  # type: ignore[index]
    assert head_start.take(psu_watts=850.0) is None
    assert _wait_gone(pid)


def test_a_head_start_that_fails_is_not_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(psu_watts: float | None, meanwhile: object = None) -> None:
        raise RuntimeError("a probe bug")

    monkeypatch.setattr(head_start, "probe_this_machine", broken)
    assert head_start.start()
    assert head_start.take(None) is None  # check then probes itself and reports from there


def test_no_head_start_without_a_second_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(head_start, "usable_cpus", lambda: 1)
    assert not head_start.start()
    assert head_start.take(None) is None


def _fork_a_sleeper_and_wait(pid_file: Path) -> int:
    grandchild = os.fork()
    if grandchild == 0:  # pragma: no cover  # the grandchild
        time.sleep(60)
        os._exit(0)
    pid_file.write_text(str(grandchild))
    time.sleep(60)
    return grandchild


def test_killing_a_group_leading_child_ends_what_it_started(tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild"
    child: ChildProbe[int] = ChildProbe(
        lambda: _fork_a_sleeper_and_wait(pid_file), timeout_s=30, own_group=True
    )
    deadline = time.monotonic() + 10
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline, "the child never started its own child"
        time.sleep(0.02)
    grandchild = int(pid_file.read_text())
    assert _alive(grandchild)
    child.kill()
    assert _wait_gone(grandchild)


def test_a_group_leading_child_still_returns_its_result() -> None:
    outcome = ChildProbe(lambda: os.getpgid(0) == os.getpid(), 10, own_group=True).result()
    assert outcome == Finished(True)


def test_no_process_to_spare_means_probing_in_process(monkeypatch: pytest.MonkeyPatch) -> None:
    """fork fails (a process limit): no head start, and the NVML probe runs on a thread; the
    report is the same."""

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert not head_start.start()
    snapshot = head_start.probe_this_machine(None)
    assert snapshot.stack(GpuVendor.NVIDIA) is not None
    assert not snapshot.errors
