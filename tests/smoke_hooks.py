"""Faults injected into the smoke worker process (``DLREADY_SMOKE_TEST_HOOK=smoke_hooks:NAME``).

The worker calls the named function with its check registry right after importing torch, so a
test can make one check hang, crash or compute a wrong value inside the real child process.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any


def _sleep_forever(*_args: Any, **_kwargs: Any) -> Any:
    time.sleep(3600)


def hang_in_autograd(registry: dict[str, Any]) -> None:
    """``autograd.book_example`` never returns (a hung kernel, a deadlocked driver)."""
    registry["autograd.book_example"] = _sleep_forever


def hang_in_device(registry: dict[str, Any]) -> None:
    """The device never comes up (``torch.cuda.is_available()`` hanging on a sick GPU)."""
    registry["device"] = _sleep_forever


def segfault_in_linear(registry: dict[str, Any]) -> None:
    """``linear.float32`` crashes the process in native code."""

    def crash(_ctx: Any) -> Any:
        import sys

        sys.stderr.write("linear.float32: crashing on purpose\n")
        sys.stderr.flush()
        os.kill(os.getpid(), signal.SIGSEGV)
        time.sleep(10)

    registry["linear.float32"] = crash


def killed_in_module(registry: dict[str, Any]) -> None:
    """``module.state_dict`` is killed (as the out-of-memory killer does)."""

    def die(_ctx: Any) -> Any:
        os.kill(os.getpid(), signal.SIGKILL)
        time.sleep(10)

    registry["module.state_dict"] = die


def wrong_mm(_registry: dict[str, Any]) -> None:
    """Every ``torch.mm`` in the worker is off by 0.01: the linear checks must catch it."""
    import torch

    original = torch.mm
    torch.mm = lambda a, b: original(a, b) + 0.01


def raise_oom_in_matmul(registry: dict[str, Any]) -> None:
    """The float32 speed check runs out of device memory (torch's real exception text)."""
    import torch

    def oom(_ctx: Any) -> Any:
        raise torch.OutOfMemoryError(
            "CUDA out of memory. Tried to allocate 256.00 MiB. GPU 0 has a total capacity of "
            "79.10 GiB of which 118.06 MiB is free."
        )

    registry["speed.matmul.float32"] = oom


def fake_gpu_for_burn(registry: dict[str, Any]) -> None:
    """A stand-in "cuda:0" (really the CPU) and a burn that reports steady intervals.

    Lets the parent's burn path (NVML sampler thread, verdict) run end to end without a GPU.
    """
    import torch

    from dlready.smoke.checks import DeviceContext, DeviceProbe
    from dlready.smoke.outcome import Outcome, passed

    def device(requested: str, **_kwargs: Any) -> DeviceProbe:
        info = {
            "requested": requested,
            "device": "cuda:0",
            "usable": True,
            "name": "NVIDIA H100 80GB HBM3",
            "uuid": "b6012499-6918-735e-0cf1-3817ce68e703",
            "cuda_available": True,
            "cuda_device_count": 1,
        }
        return DeviceProbe(
            Outcome("pass", "stand-in GPU", info), DeviceContext(torch.device("cpu"))
        )

    def burn(_ctx: Any, seconds: float) -> Any:
        time.sleep(min(seconds, 2.0))
        intervals = [{"t_s": float(i), "tflops": 790.0, "mismatched_elements": 0} for i in range(6)]
        return passed("steady stand-in load", intervals=intervals, faulty_elements=0)

    registry["device"] = device
    registry["burn"] = burn


GRANDCHILD_PIDFILE_ENV = "DLREADY_TEST_GRANDCHILD_PIDFILE"


def setsid_grandchild_in_tracking(registry: dict[str, Any]) -> None:
    """``autograd.tracking`` starts a process that leaves the worker's session and keeps its stderr.

    The grandchild writes its pid to the file named by ``DLREADY_TEST_GRANDCHILD_PIDFILE`` and
    sleeps; smoke must neither wait for it (its stderr stays open) nor leave it running.
    """
    import subprocess
    import sys

    from dlready.smoke.outcome import passed

    def spawn(_ctx: Any) -> Any:
        script = (
            "import os, sys, time; os.setsid(); "
            "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(3600)"
        )
        subprocess.Popen([sys.executable, "-c", script, os.environ[GRANDCHILD_PIDFILE_ENV]])
        for _ in range(200):  # until the grandchild has left the session
            if os.path.exists(os.environ[GRANDCHILD_PIDFILE_ENV]):
                break
            time.sleep(0.02)
        return passed("started a grandchild in its own session")

    registry["autograd.tracking"] = spawn


def interrupted_in_module(registry: dict[str, Any]) -> None:
    """``module.state_dict``: the worker is ended by SIGINT (sent to it alone, from outside)."""

    def interrupted(_ctx: Any) -> Any:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(10)

    registry["module.state_dict"] = interrupted


def orphaned_grandchild_in_tracking(registry: dict[str, Any]) -> None:
    """``autograd.tracking`` starts a process that starts a setsid grandchild, then exits.

    The grandchild is an orphan (its parent is gone) in a session of its own; it writes its pid
    to ``DLREADY_TEST_GRANDCHILD_PIDFILE`` and sleeps.
    """
    import subprocess
    import sys

    from dlready.smoke.outcome import passed

    def spawn(_ctx: Any) -> Any:
        grandchild = (
            "import os, sys, time; os.setsid(); "
            "open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(3600)"
        )
        middle = (
            "import subprocess, sys; "
            "subprocess.Popen([sys.executable, '-c', sys.argv[1], sys.argv[2]])"
        )
        pidfile = os.environ[GRANDCHILD_PIDFILE_ENV]
        subprocess.run([sys.executable, "-c", middle, grandchild, pidfile], check=True)
        for _ in range(200):  # until the orphan has left the session
            if os.path.exists(pidfile):
                break
            time.sleep(0.02)
        return passed("started an orphaned grandchild in its own session")

    registry["autograd.tracking"] = spawn
