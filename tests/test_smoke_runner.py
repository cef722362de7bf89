"""The runner survives what a real worker can do: hang, crash, be killed, fail to import torch.

These start the real worker process (``python -m dlready.smoke.worker``); faults come from
``tests/smoke_hooks.py`` through the worker's test hook.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from dlready.smoke import catalog
from dlready.smoke.report import CheckStatus
from dlready.smoke.runner import Runner, SmokeOptions, TorchUnusableError

TESTS = Path(__file__).parent


def _env(hook: str | None = None, extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(TESTS)]
    if extra_path is not None:
        paths.insert(0, str(extra_path))
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    if hook:
        env["DLREADY_SMOKE_TEST_HOOK"] = f"smoke_hooks:{hook}"
    else:
        env.pop("DLREADY_SMOKE_TEST_HOOK", None)
    return env


def _runner(hook: str | None = None, timeout_s: float | None = None) -> Runner:
    return Runner(SmokeOptions(device="cpu", timeout_s=timeout_s), env=_env(hook))


def test_whole_suite_runs_in_one_worker() -> None:
    runner = _runner()
    try:
        outcome = runner.run()
    finally:
        runner.close()
    (device,) = outcome.devices
    assert [check.name for check in device.checks] == list(catalog.suite())
    assert device.device == "cpu"
    assert runner.worker_starts == 1
    assert outcome.torch.version.startswith("2.")
    statuses = {check.status for check in device.checks}
    assert statuses <= {CheckStatus.PASS, CheckStatus.SKIPPED}


def test_a_hung_check_is_killed_and_the_rest_still_runs() -> None:
    runner = _runner("hang_in_autograd", timeout_s=3)
    try:
        outcome = runner.run()
    finally:
        runner.close()
    checks = {check.name: check for check in outcome.devices[0].checks}
    hung = checks["autograd.book_example"]
    assert hung.status is CheckStatus.TIMEOUT
    assert "no result within 3 s" in hung.message
    # Everything after the hang ran in a fresh worker.
    assert runner.worker_starts == 2
    assert checks["autograd.tracking"].status is CheckStatus.PASS
    assert checks["speed.matmul.float32"].status is CheckStatus.PASS
    assert len(checks) == len(catalog.suite())


def test_a_hung_device_skips_the_rest_instead_of_hanging_each_check() -> None:
    runner = _runner("hang_in_device", timeout_s=2)
    try:
        outcome = runner.run()
    finally:
        runner.close()
    checks = outcome.devices[0].checks
    assert checks[0].name == "device"
    assert checks[0].status is CheckStatus.TIMEOUT
    assert {check.status for check in checks[1:]} == {CheckStatus.SKIPPED}
    assert "device did not come up" in checks[1].message
    assert runner.worker_starts == 1


@pytest.mark.parametrize(
    ("hook", "check", "signal_name"),
    [
        pytest.param("segfault_in_linear", "linear.float32", "SIGSEGV", id="segfault"),
        pytest.param("killed_in_module", "module.state_dict", "SIGKILL", id="sigkill"),
    ],
)
def test_a_crashed_worker_costs_one_check(hook: str, check: str, signal_name: str) -> None:
    runner = _runner(hook)
    try:
        outcome = runner.run()
    finally:
        runner.close()
    checks = {result.name: result for result in outcome.devices[0].checks}
    crashed = checks[check]
    assert crashed.status is CheckStatus.FAIL
    assert crashed.error_type == "WorkerDied"
    assert signal_name in crashed.message
    assert checks["speed.memory_copy"].status is CheckStatus.PASS
    assert runner.worker_starts == 2


def test_a_broken_torch_install_is_reported_not_raised(tmp_path: Path) -> None:
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        'raise ImportError("libtorch_cuda.so: cannot open shared object file: No such file")\n'
    )
    runner = Runner(SmokeOptions(device="cpu"), env=_env(extra_path=tmp_path))
    with pytest.raises(TorchUnusableError) as unusable:
        runner.start()
    assert unusable.value.kind == "ImportError"
    assert "libtorch_cuda.so" in unusable.value.message


def test_a_worker_that_never_starts_is_a_timeout(tmp_path: Path) -> None:
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text("import time\ntime.sleep(3600)\n")
    runner = Runner(SmokeOptions(device="cpu", startup_timeout_s=2), env=_env(extra_path=tmp_path))
    with pytest.raises(TorchUnusableError) as unusable:
        runner.start()
    assert unusable.value.kind == "Timeout"


def test_the_worker_keeps_its_protocol_channel_clean() -> None:
    """Anything printed on fd 1 inside the worker goes to stderr, not into the protocol."""
    import subprocess

    code = (
        "import os, sys; from dlready.smoke import worker; "
        "channel = worker._Channel(worker._claim_stdout()); print('stray output'); "
        "os.write(1, b'stray bytes\\n'); channel.send('ping')"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert completed.stdout == '{"event": "ping"}\n'
    assert "stray output" in completed.stderr
    assert "stray bytes" in completed.stderr


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc to watch the pid")
def test_a_hung_worker_ends_when_its_parent_is_killed() -> None:
    import signal
    import subprocess
    import time

    parent_code = (
        "import subprocess, sys, time, json\n"
        "worker = subprocess.Popen([sys.executable, '-m', 'dlready.smoke.worker'],"
        " stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, start_new_session=True)\n"
        "worker.stdout.readline()\n"
        "worker.stdin.write(json.dumps({'op': 'run', 'device': 'cpu', 'checks': ['device']})"
        " + '\\n')\n"
        "worker.stdin.flush()\n"
        "print(worker.pid, flush=True)\n"
        "time.sleep(3600)\n"
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", parent_code],
        stdout=subprocess.PIPE,
        text=True,
        env=_env("hang_in_device"),
    )
    assert parent.stdout is not None
    worker_pid = int(parent.stdout.readline())
    assert _alive(worker_pid)
    parent.send_signal(signal.SIGKILL)
    parent.wait(timeout=10)
    deadline = time.monotonic() + 15
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker_pid), "the orphaned worker kept running"
