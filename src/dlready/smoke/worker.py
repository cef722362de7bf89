"""The child process of ``dlready smoke``: ``python -m dlready.smoke.worker``.

It imports torch once, then serves requests read from stdin, one JSON object per line, and
streams one JSON event per line back on its original stdout (the protocol channel; anything a
library prints goes to stderr instead). A hang or a crash here costs the parent one check: it
kills this process and starts a fresh one for the rest.

Requests::

    {"op": "run", "device": "auto", "checks": ["device", ...], "full": false,
     "nvidia_gpu_present": true, "burn_s": 0}
    {"op": "exit"}

Events: ``ready`` (torch imported, with its build), ``import_failed``, then per request
``start`` and ``result`` per check, and ``done``.

Tests only: ``DLREADY_SMOKE_TEST_HOOK=module:function`` names a callable that is called with the
check registry (a mutable dict) after torch is imported, so a test can replace a check by one
that hangs, crashes or computes a wrong value.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from typing import IO, Any

TEST_HOOK_ENV = "DLREADY_SMOKE_TEST_HOOK"
_MAX_TEXT = 4000


class _Channel:
    """The protocol stream: one JSON object per line, flushed at once."""

    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def send(self, event: str, **fields: Any) -> None:
        payload = {"event": event, **fields}
        self._stream.write(json.dumps(payload, default=str) + "\n")
        self._stream.flush()


def _claim_stdout() -> IO[str]:
    """Keep the real stdout for the protocol and send fd 1 (stray prints) to stderr."""
    protocol_fd = os.dup(1)
    os.dup2(2, 1)
    return os.fdopen(protocol_fd, "w", buffering=1, encoding="utf-8")


def _error_text(exc: BaseException) -> str:
    text = f"{exc}".strip() or type(exc).__name__
    return text[:_MAX_TEXT]


def _load_hook(registry: dict[str, Any]) -> None:
    spec = os.environ.get(TEST_HOOK_ENV)
    if not spec:
        return
    module_name, _, function_name = spec.partition(":")
    hook = getattr(importlib.import_module(module_name), function_name)
    hook(registry)


class Worker:
    """Runs requests against torch; one instance per process."""

    def __init__(self, channel: _Channel) -> None:
        from dlready.smoke import checks, speed

        self._channel = channel
        self._checks = checks
        self._speed = speed
        self.registry: dict[str, Callable[..., Any]] = {
            **checks.CHECKS,
            **speed.SPEED_CHECKS,
            "device": checks.probe_device,
            "burn": speed.burn,
        }
        self._contexts: dict[str, Any] = {}
        import torch

        self._threads = torch.get_num_threads()

    def _result(
        self,
        name: str,
        status: str,
        message: str,
        started: float,
        measured: dict[str, Any] | None = None,
        error_type: str | None = None,
    ) -> None:
        self._channel.send(
            "result",
            check=name,
            status=status,
            message=message,
            duration_s=round(time.perf_counter() - started, 4),
            measured=measured or {},
            error_type=error_type,
        )

    def _prepare(self, context: Any, name: str) -> None:
        """Make the tested GPU current; one CPU thread for the tiny correctness checks.

        CUDA events and default streams belong to the *current* device, so with several GPUs
        (``--all-devices``) the tested one must be current. On a CPU, tensors of a few hundred
        values gain nothing from threads, and on a busy machine the thread pool's waiting turns
        milliseconds into seconds; the speed checks still get every thread.
        """
        import torch

        if context.type == "cuda":
            torch.cuda.set_device(context.device)
            return
        if context.type != "cpu":
            return
        wanted = self._threads if name.startswith("speed.") else 1
        if torch.get_num_threads() != wanted:
            torch.set_num_threads(wanted)

    def _context(self, request: dict[str, Any]) -> tuple[Any, str | None]:
        """The device context for a request whose ``device`` check already ran earlier."""
        device = str(request.get("device", "auto"))
        if device in self._contexts:
            return self._contexts[device], None
        probe = self.registry["device"](
            device,
            full=bool(request.get("full")),
            nvidia_gpu_present=request.get("nvidia_gpu_present"),
        )
        if probe.context is not None:
            self._contexts[device] = probe.context
            return probe.context, None
        return None, probe.outcome.message

    def run(self, request: dict[str, Any]) -> None:
        """Run the requested checks in order, streaming one result each."""
        from dlready.smoke.outcome import CheckFailedError

        names = [str(name) for name in request.get("checks", [])]
        context = None
        unusable: str | None = None
        if names and names[0] != "device":
            context, unusable = self._context(request)
        for name in names:
            self._channel.send("start", check=name)
            started = time.perf_counter()
            if name == "device":
                try:
                    probe = self.registry["device"](
                        str(request.get("device", "auto")),
                        full=bool(request.get("full")),
                        nvidia_gpu_present=request.get("nvidia_gpu_present"),
                    )
                except Exception as exc:  # noqa: BLE001  # reported as the device check's failure
                    unusable = f"{type(exc).__name__}: {_error_text(exc)}"
                    self._result(
                        name,
                        "fail",
                        _error_text(exc),
                        started,
                        {"usable": False},
                        type(exc).__name__,
                    )
                    continue
                measured = dict(probe.outcome.measured)
                measured["usage_error"] = probe.usage_error
                context = probe.context
                if context is None:
                    unusable = probe.outcome.message
                else:
                    self._contexts[str(measured.get("device"))] = context
                    self._contexts[str(request.get("device", "auto"))] = context
                self._result(name, probe.outcome.status, probe.outcome.message, started, measured)
                continue
            if context is None:
                self._result(
                    name,
                    "skipped",
                    "not run: the device check failed",
                    started,
                    {"reason": unusable},
                )
                continue
            function = self.registry.get(name)
            if function is None:
                self._result(name, "fail", f"this worker has no check named {name!r}", started)
                continue
            try:
                self._prepare(context, name)
                if name == "burn":
                    outcome = function(context, float(request.get("burn_s", 0)))
                else:
                    outcome = function(context)
            except CheckFailedError as failed:
                self._result(name, "fail", failed.message, started, failed.measured)
            except Exception as exc:  # noqa: BLE001  # any error is this check's failure
                tail = traceback.format_exception_only(type(exc), exc)[-1].strip()
                self._result(
                    name,
                    "fail",
                    _error_text(exc),
                    started,
                    {"exception": tail[:_MAX_TEXT]},
                    type(exc).__name__,
                )
            else:
                self._result(name, outcome.status, outcome.message, started, outcome.measured)
        self._channel.send("done")


def _exit_with_parent(poll_s: float = 1.0) -> None:
    """End this process when the parent dies, even in the middle of a hung check.

    The worker runs in its own session (so the parent can kill its whole group), which also
    means nothing else would stop it if the parent were killed outright.
    """
    import threading

    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="dlready-parent-watch", daemon=True).start()


def _adopt_orphans() -> None:
    """Become the parent of every orphaned descendant (Linux ``PR_SET_CHILD_SUBREAPER``).

    A check may start a process that starts another and exits; the grandchild would then be
    reparented to init, out of sight of the parent's kill. As a subreaper, this worker stays its
    ancestor, so the parent finds it among the worker's descendants and ends it too.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    pr_set_child_subreaper = 36  # <linux/prctl.h>
    try:
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_child_subreaper, 1, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl here: orphans are only found while parented
        return


def main() -> int:
    """Entry point of ``python -m dlready.smoke.worker``."""
    _exit_with_parent()
    _adopt_orphans()
    channel = _Channel(_claim_stdout())
    started = time.perf_counter()
    try:
        import torch  # noqa: F401  # timed here: the import is most of smoke's cost
    except BaseException as exc:  # noqa: BLE001  # a broken install can raise anything
        channel.send(
            "import_failed",
            error_type=type(exc).__name__,
            message=_error_text(exc),
            traceback="".join(traceback.format_exception(type(exc), exc, exc.__traceback__))[
                -_MAX_TEXT:
            ],
        )
        return 0
    import_s = time.perf_counter() - started
    from dlready.smoke.checks import torch_build_info

    worker = Worker(channel)
    _load_hook(worker.registry)
    channel.send("ready", torch=torch_build_info(), import_s=round(import_s, 4))
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        request = json.loads(line)
        if request.get("op") == "exit":
            break
        if request.get("op") == "run":
            worker.run(request)
    return 0


if __name__ == "__main__":
    sys.exit(main())
