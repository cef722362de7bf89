"""Run a probe in a forked child process, so that a crash in a native library costs one probe.

NVML is a closed C library loaded into our process: a segfault inside it would end ``dlready``
with exit 139 and no output at all. :func:`run_in_child` forks (cheap after the imports: a few
milliseconds), runs the probe in the child, and sends its result back pickled through a pipe.
The parent waits with a deadline on the pipe (never on the child's goodwill) and reaps the
child; a crash becomes :class:`Crashed` (with the signal), a hang :class:`TimedOut` (the child
is killed, taking any hung thread with it), and Ctrl-C in the parent ends the child at once.

:class:`ChildService` keeps a child alive with some state (``smoke --burn``'s open NVML) and
asks it for one answer at a time, each with its own deadline.

The pickle never leaves this process tree: it is our own forked code talking to its parent.
"""

from __future__ import annotations

import contextlib
import faulthandler
import gc
import os
import pickle
import select
import signal
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from msgspec import Struct

T = TypeVar("T")
S = TypeVar("S")
R = TypeVar("R")

_REAP_GRACE_S = 1.0
"""After the child closed its end of the pipe, how long it may take to exit."""
_CHILD_FAILED = 70  # EX_SOFTWARE: the child could not even report


class Finished(Struct, Generic[T], frozen=True):
    """The probe returned ``value``."""

    value: T


class Crashed(Struct, frozen=True):
    """The child was ended by a signal (a segfault in a native library, the OOM killer...)."""

    signal_number: int

    @property
    def description(self) -> str:
        """``"signal 11: a segmentation fault"``."""
        return f"signal {self.signal_number}: {signal_in_words(self.signal_number)}"


class Failed(Struct, frozen=True):
    """The probe raised, or the child exited without a result."""

    message: str


class TimedOut(Struct, frozen=True):
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


_LIVE: set[int] = set()
"""The probe children running now, whichever thread owns them (see :func:`kill_all`)."""


def kill_all() -> None:
    """Kill every probe child now (Ctrl-C or SIGTERM in a command whose probes run on threads).

    Each owner then sees its child end and returns at once instead of at its deadline.
    """
    for pid in list(_LIVE):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


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

    def __init__(self, probe: Callable[[], T], timeout_s: float, own_group: bool = False) -> None:
        """``own_group``: the child leads a process group of its own, and :meth:`kill` ends
        the whole group, so that children of the probe (a probe that forks probes) die with it
        (Ctrl-C at the terminal then reaches only the parent, which kills the group)."""
        self.timeout_s = timeout_s
        self._deadline = time.monotonic() + timeout_s
        read_fd, write_fd = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover  # the child never returns
            if own_group:
                os.setpgid(0, 0)
            _child(probe, read_fd, write_fd)
        self._group = 0
        if own_group:  # here too: the group exists whichever process runs first
            self._group = self._pid
            with contextlib.suppress(OSError):
                os.setpgid(self._pid, self._pid)
        _LIVE.add(self._pid)
        os.close(write_fd)
        self._read_fd: int | None = read_fd

    def result(self) -> Outcome[T]:
        """What became of the probe. Any exception here (Ctrl-C) kills the child first."""
        assert self._read_fd is not None, "result() was already collected"
        try:
            payload = _read_until(self._read_fd, self._deadline)
            if payload is None:
                return TimedOut(self.timeout_s)
            complete = _unpickle(payload)
            if complete is not None:
                # The whole answer arrived: no need to wait while the kernel tears the child
                # down (a few ms); it is reaped in the background.
                _reap_in_background(self._pid)
                self._forget()
                kind, value = complete
                return Finished(value) if kind == "ok" else Failed(str(value))
            status = _reap(self._pid, time.monotonic() + _REAP_GRACE_S)
            if status is None:
                return Failed("the probe process sent its result but did not exit")
            self._forget()
            if os.WIFSIGNALED(status):
                return Crashed(os.WTERMSIG(status))
            code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else None
            return Failed(f"the probe process ended without a result (exit code {code})")
        finally:
            self.kill()

    def _forget(self) -> None:
        _LIVE.discard(self._pid)
        self._pid = 0

    def kill(self) -> None:
        """End the child now (if it still runs) and release the pipe."""
        if self._read_fd is not None:
            os.close(self._read_fd)
            self._read_fd = None
        if self._group:  # whatever became of the child, nothing it started may stay behind
            with contextlib.suppress(OSError):
                os.killpg(self._group, signal.SIGKILL)
            self._group = 0
        if self._pid:
            pid = self._pid
            self._forget()
            _kill_and_reap(pid)


def run_in_child(probe: Callable[[], T], timeout_s: float) -> Outcome[T]:
    """Run ``probe`` (whose result must pickle) in a forked child; see :class:`ChildProbe`."""
    return ChildProbe(probe, timeout_s).result()


def _unpickle(payload: bytes) -> tuple[str, Any] | None:
    """The child's ``(kind, value)``, or None for a truncated or empty payload (it crashed)."""
    try:
        kind, value = pickle.loads(payload)  # our own child, see the module docstring
    except Exception:  # noqa: BLE001  # any truncation shows up as some unpickling error
        return None
    return str(kind), value


def _kill_and_reap(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, 0)


def _reap_in_background(pid: int) -> None:
    def reap() -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)

    threading.Thread(target=reap, name="dlready-reap-probe", daemon=True).start()


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
    pause_s = 0.0001  # the child is usually exiting already: look again soon, then less often
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            _LIVE.discard(pid)  # before anything else may reuse the pid
            return status
        if time.monotonic() >= deadline:
            return None
        time.sleep(pause_s)
        pause_s = min(pause_s * 2, 0.01)


def _child(probe: Callable[[], object], read_fd: int, write_fd: int) -> None:  # pragma: no cover
    code = 0
    try:
        os.close(read_fd)
        _quiet_child()
        try:
            payload = pickle.dumps(("ok", probe()))
        except BaseException as exc:  # noqa: BLE001  # reported to the parent as Failed
            payload = pickle.dumps(("error", f"{type(exc).__name__}: {exc}"))
        view = memoryview(payload)
        while view:
            view = view[os.write(write_fd, view) :]
        os.close(write_fd)  # end of file for the parent now, not after this process is torn down
    except BaseException:  # noqa: BLE001  # nothing may escape into the parent's code
        code = _CHILD_FAILED
    finally:
        os._exit(code)


class ChildService(Generic[S, R]):
    """A forked child that holds some state (an open NVML) and answers requests one at a time.

    ``setup`` runs once in the child; its result stays there. :meth:`call` asks the child to
    run ``handle(state)`` and waits for the answer with a deadline. A crash, a hang or an error
    in the child is returned as an :data:`Outcome`, never raised; after a crash or a hang the
    service is closed and every later call answers the same. Calls must come from one thread
    at a time.
    """

    def __init__(
        self,
        setup: Callable[[], S],
        handle: Callable[[S], R],
        finish: Callable[[S], None] | None = None,
    ) -> None:
        self._to_child_read, self._to_child = os.pipe()
        self._from_child, from_child_write = os.pipe()
        self._pid = os.fork()
        if self._pid == 0:  # pragma: no cover  # the child never returns
            _serve(setup, handle, finish, self._to_child_read, from_child_write, self._from_child)
        _LIVE.add(self._pid)
        os.close(self._to_child_read)
        os.close(from_child_write)
        self._ended: Outcome[R] | None = None

    def ready(self, timeout_s: float) -> Outcome[None]:
        """Wait until ``setup`` finished in the child (its exception becomes :class:`Failed`)."""
        outcome = self._receive(timeout_s)
        return Finished(None) if isinstance(outcome, Finished) else outcome

    def call(self, timeout_s: float) -> Outcome[R]:
        """Run ``handle(state)`` in the child and return its result within ``timeout_s``."""
        if self._ended is not None:
            return self._ended
        with contextlib.suppress(OSError):  # the child is gone; _receive says why
            os.write(self._to_child, b"c")
        return self._receive(timeout_s)

    def _receive(self, timeout_s: float) -> Outcome[Any]:
        if self._ended is not None:
            return self._ended
        deadline = time.monotonic() + timeout_s
        header = _read_exactly(self._from_child, 4, deadline)
        payload = (
            _read_exactly(self._from_child, int.from_bytes(header, "big"), deadline)
            if header
            else header
        )
        if header and payload:
            kind, value = pickle.loads(payload)  # our own child, see the module docstring
            return Finished(value) if kind == "ok" else Failed(str(value))
        ended: Outcome[Any] = (
            TimedOut(timeout_s)
            if payload is None or header is None
            else self._exit_outcome(time.monotonic() + _REAP_GRACE_S)  # end of file
        )
        self._ended = ended
        self.close(grace_s=0)
        return ended

    def _exit_outcome(self, deadline: float) -> Outcome[Any]:
        status = _reap(self._pid, deadline)
        if status is None:
            return Failed("the probe process closed its pipe but did not exit")
        self._forget()
        if os.WIFSIGNALED(status):
            return Crashed(os.WTERMSIG(status))
        return Failed(f"the probe process exited (code {os.WEXITSTATUS(status)})")

    def _forget(self) -> None:
        _LIVE.discard(self._pid)
        self._pid = 0

    def close(self, grace_s: float = _REAP_GRACE_S) -> None:
        """Let the child run ``finish`` and exit (within ``grace_s``), else kill it."""
        if self._pid:
            with contextlib.suppress(OSError):
                os.write(self._to_child, b"q")
            pid = self._pid
            if _reap(pid, time.monotonic() + grace_s) is None:
                self._forget()
                _kill_and_reap(pid)
            self._forget()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._to_child = self._from_child = -1
        if self._ended is None:
            self._ended = Failed("the probe process was closed")


def _read_exactly(fd: int, size: int, deadline: float) -> bytes | None:
    """``size`` bytes from ``fd``; fewer at end of file; None when the deadline passes first."""
    data = b""
    while len(data) < size:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, size - len(data))
        if not chunk:
            return data
        data += chunk
    return data


def _serve(  # pragma: no cover  # runs in the forked child
    setup: Callable[[], Any],
    handle: Callable[[Any], Any],
    finish: Callable[[Any], None] | None,
    requests: int,
    answers: int,
    parent_end: int,
) -> None:
    code = 0
    try:
        os.close(parent_end)
        _quiet_child()
        # Nothing of the parent's: its pipes to other processes (smoke's worker) must close
        # when the parent does, and the end of ``requests`` tells this child to finish.
        _close_fds_except({0, 1, 2, requests, answers})

        def send(kind: str, value: object) -> None:
            payload = pickle.dumps((kind, value))
            view = memoryview(len(payload).to_bytes(4, "big") + payload)
            while view:
                view = view[os.write(answers, view) :]

        try:
            state = setup()
        except Exception as exc:  # noqa: BLE001  # reported to the parent as Failed
            send("error", f"{type(exc).__name__}: {exc}")
            return
        send("ok", None)
        while os.read(requests, 1) == b"c":
            send(*_answer(handle, state))
        if finish is not None:
            finish(state)
    except BaseException:  # noqa: BLE001  # nothing may escape into the parent's code
        code = _CHILD_FAILED
    finally:
        os._exit(code)


def _close_fds_except(keep: set[int]) -> None:  # pragma: no cover  # runs in the forked child
    try:
        highest = int(os.sysconf("SC_OPEN_MAX"))
    except (OSError, ValueError):
        highest = 65_536
    low = 0
    for fd in sorted(keep):
        if low < fd:  # os.closerange(n, n) would close every descriptor (close_range(n, ~0))
            os.closerange(low, fd)
        low = fd + 1
    if low < highest:
        os.closerange(low, highest)


def _answer(handle: Callable[[Any], Any], state: Any) -> tuple[str, object]:  # pragma: no cover
    try:
        return "ok", handle(state)
    except Exception as exc:  # noqa: BLE001  # reported to the parent as Failed
        return "error", f"{type(exc).__name__}: {exc}"


def _quiet_child() -> None:  # pragma: no cover  # runs in the forked child
    """The parent reports a crash (no second report from here); Ctrl-C just ends the child.

    Ctrl-C reaches the whole foreground group. Where the parent ignores SIGINT (a background
    job), so does the child.
    """
    faulthandler.disable()
    # A collection would write to every object's header and so copy the parent's whole heap
    # (copy-on-write) for nothing: the child lives for one probe.
    gc.disable()
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        with contextlib.suppress(ValueError):
            signal.signal(signal.SIGINT, signal.SIG_DFL)
