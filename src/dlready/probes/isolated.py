"""Run a probe in a forked child process, so that a crash in a native library costs one probe.

NVML is a closed C library loaded into our process: a segfault inside it would end ``dlready``
with exit 139 and no output at all. :func:`run_in_child` forks (cheap after the imports: a few
milliseconds), runs the probe in the child, and sends its result back pickled through a pipe.
The parent waits with a deadline on the pipe (never on the child's goodwill) and reaps the
child; a crash becomes :class:`Crashed` (with the signal), a hang :class:`TimedOut` (the child
is killed, taking any hung thread with it), and Ctrl-C in the parent ends the child at once.

The pickle never leaves this process tree: it is our own forked code talking to its parent.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import pickle
import select
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

_REAP_GRACE_S = 1.0
"""After the child closed its end of the pipe, how long it may take to exit."""
_CHILD_FAILED = 70  # EX_SOFTWARE: the child could not even report


@dataclass(frozen=True)
class Finished(Generic[T]):
    """The probe returned ``value``."""

    value: T


@dataclass(frozen=True)
class Crashed:
    """The child was ended by a signal (a segfault in a native library, the OOM killer...)."""

    signal_number: int

    @property
    def description(self) -> str:
        """``"signal 11: a segmentation fault"``."""
        return f"signal {self.signal_number}: {signal_in_words(self.signal_number)}"


@dataclass(frozen=True)
class Failed:
    """The probe raised, or the child exited without a result."""

    message: str


@dataclass(frozen=True)
class TimedOut:
    """No result within the deadline; the child was killed."""

    timeout_s: float


Outcome = Finished[T] | Crashed | Failed | TimedOut

_SIGNAL_WORDS = {
    "SIGSEGV": "a segmentation fault",
    "SIGBUS": "a bus error",
    "SIGABRT": "an abort",
    "SIGILL": "an illegal instruction",
    "SIGFPE": "an arithmetic error",
    "SIGKILL": "killed, often by the out-of-memory killer",
    "SIGINT": "interrupted by Ctrl-C",
    "SIGTERM": "asked to terminate",
    "SIGHUP": "the terminal hung up",
    "SIGPIPE": "a broken pipe",
}


def signal_in_words(number: int) -> str:
    """What ending by signal ``number`` means, in words (``11`` -> "a segmentation fault")."""
    try:
        name = signal.Signals(number).name
    except ValueError:
        return "an unknown signal"
    return _SIGNAL_WORDS.get(name, name)


def can_isolate() -> bool:
    """Whether probes can run in a forked child here (Linux and other Unix; not macOS or Windows).

    macOS forbids using most system frameworks after ``fork`` in a threaded process, and
    Windows has no ``fork``; there the probe runs in a thread as before.
    """
    return hasattr(os, "fork") and sys.platform != "darwin"


class ChildProbe(Generic[T]):
    """A probe running in a forked child since construction; :meth:`result` collects it.

    Start it early, do other work, then collect: the child runs meanwhile. The deadline counts
    from the start. Call :meth:`kill` (idempotent) if the result will not be collected.
    """

    def __init__(self, probe: Callable[[], T], timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        read_fd, write_fd = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover  # the child never returns
            _child(probe, read_fd, write_fd)
        os.close(write_fd)
        self._read_fd: int | None = read_fd

    def result(self) -> Outcome[T]:
        """What became of the probe. Any exception here (Ctrl-C) kills the child first."""
        assert self._read_fd is not None, "result() was already collected"
        try:
            payload = _read_until(self._read_fd, self._deadline)
            if payload is None:
                return TimedOut(self.timeout_s)
            status = _reap(self._pid, time.monotonic() + _REAP_GRACE_S)
            if status is None:
                return Failed("the probe process sent its result but did not exit")
            self._pid = 0
            if os.WIFSIGNALED(status):
                return Crashed(os.WTERMSIG(status))
            try:
                kind, value = pickle.loads(payload)  # our own child, see above
            except Exception:  # noqa: BLE001  # a truncated or empty result
                code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
                return Failed(f"the probe process ended without a result (exit code {code})")
            return Finished(value) if kind == "ok" else Failed(str(value))
        finally:
            self.kill()

    def kill(self) -> None:
        """End the child now (if it still runs) and release the pipe."""
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None
        if self._pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self._pid, 0)
            self._pid = 0


def run_in_child(probe: Callable[[], T], timeout_s: float) -> Outcome[T]:
    """Run ``probe`` (whose result must pickle) in a forked child; see :class:`ChildProbe`."""
    return ChildProbe(probe, timeout_s).result()


def _read_until(fd: int, deadline: float) -> bytes | None:
    """Everything written to ``fd`` until end of file, or None when the deadline passes first."""
    chunks: list[bytes] = []
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _reap(pid: int, deadline: float) -> int | None:
    """The child's wait status, or None when it has not exited by ``deadline``."""
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.002)


def _child(probe: Callable[[], object], read_fd: int, write_fd: int) -> None:  # pragma: no cover
    code = 0
    try:
        os.close(read_fd)
        faulthandler.disable()  # the parent reports a crash; no second report from here
        # Ctrl-C reaches the whole foreground group: the child just ends, the parent reports.
        # (Where the parent ignores SIGINT, a background job, so does the child.)
        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            with contextlib.suppress(ValueError):
                signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            payload = pickle.dumps(("ok", probe()))
        except BaseException as exc:  # noqa: BLE001  # reported to the parent as Failed
            payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view) :]
    except BaseException:  # noqa: BLE001  # nothing may escape into the parent's code
        code = _CHILD_FAILED
    finally:
        os._exit(code)
