"""The parent side of ``dlready smoke``: runs the checks in a worker process (no torch here).

One worker (``python -m dlready.smoke.worker``) imports torch once and runs the checks in
order, streaming a result per check. The runner waits for each check at most its time limit
(:mod:`dlready.smoke.catalog`). A check that hangs is recorded as ``timeout``, the worker is
killed (its whole process group), and a fresh worker runs the remaining checks; a worker that
dies takes only its current check with it. So a hang costs one check, never the report.
"""

from __future__ import annotations

import collections
import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from typing import Any

import msgspec
from msgspec import Struct, field

from dlready.probes.isolated import signal_in_words
from dlready.smoke import catalog
from dlready.smoke.burn import BackgroundSampler, NvmlSampling, burn_verdict, open_nvml_sampling
from dlready.smoke.report import (
    CheckResult,
    CheckStatus,
    DeviceReport,
    TorchBuild,
    check_result_from_event,
)

WORKER_MODULE = "dlready.smoke.worker"
STARTUP_TIMEOUT_S = 180.0
"""``import torch`` takes 1-5 s on a local disk and far longer on a cold network file system."""
_DONE_TIMEOUT_S = 10.0


class SmokeOptions(Struct):
    """What the user asked for (validated by the command)."""

    device: str = "auto"
    all_devices: bool = False
    full: bool = False
    burn_s: float = 0.0
    distributed: bool = False
    timeout_s: float | None = None
    """Overrides every per-check limit (``--timeout``)."""
    startup_timeout_s: float = STARTUP_TIMEOUT_S


class TorchUnusableError(Exception):
    """The worker could not import torch (or never got that far)."""

    def __init__(self, kind: str, message: str, detail: str = "") -> None:
        super().__init__(f"{kind}: {message}")
        self.kind = kind
        self.message = message
        self.detail = detail


class _WorkerExitedError(Exception):
    def __init__(self, description: str) -> None:
        super().__init__(description)
        self.description = description


_EOF = object()


class WorkerStartError(Exception):
    """The worker process could not be started at all (too many open files, no memory...)."""

    def __init__(self, exc: OSError) -> None:
        reason = exc.strerror or str(exc) or type(exc).__name__
        super().__init__(f"the smoke worker process could not be started ({reason})")
        self.message = str(self)


_POLL_S = 0.1
"""How often a wait for an event also checks whether the worker is still alive."""
_DRAIN_S = 0.2
"""After the worker exited: how long its last lines may take to arrive through the pump."""
_STDERR_TAIL_BYTES = 16_384


class WorkerProcess:
    """One running worker: send requests, read events with a deadline, kill it and its children.

    Nothing here waits for end-of-file: a check's grandchild that leaves its own session keeps
    the inherited descriptors open. The worker's stderr goes to a file (read back at the end);
    events are read from a pipe by a daemon thread while the waits poll whether the worker
    itself is alive; a kill ends every descendant found, whatever session it moved to.
    """

    def __init__(self, argv: list[str], env: dict[str, str] | None = None) -> None:
        self._stderr_file = tempfile.TemporaryFile(prefix="dlready-smoke-")  # noqa: SIM115
        try:
            self._proc = subprocess.Popen(  # argv: our own interpreter and module
                argv,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._stderr_file,
                env=env,
                text=True,
                encoding="utf-8",
                errors="replace",
                bufsize=1,
                # Its own process group, so a kill also ends anything it started.
                start_new_session=hasattr(os, "killpg"),
            )
        except OSError as exc:  # EMFILE, ENOMEM, EACCES, a missing interpreter...
            self._stderr_file.close()
            raise WorkerStartError(exc) from None
        self._events: queue.Queue[Any] = queue.Queue()
        self._extra_lines: collections.deque[str] = collections.deque(maxlen=40)
        self._descendants: dict[int, Any] = {}
        threading.Thread(target=self._pump_stdout, daemon=True).start()

    def _pump_stdout(self) -> None:
        assert self._proc.stdout is not None
        with contextlib.suppress(OSError, ValueError):
            for line in self._proc.stdout:
                try:
                    event = json.loads(line)
                except ValueError:
                    self._extra_lines.append(line.rstrip())
                    continue
                if isinstance(event, dict):
                    self._events.put(event)
        self._events.put(_EOF)

    def stderr_tail(self, lines: int = 12) -> str:
        """The last lines the worker wrote to stderr."""
        try:
            self._stderr_file.seek(0, os.SEEK_END)
            size = self._stderr_file.tell()
            self._stderr_file.seek(max(0, size - _STDERR_TAIL_BYTES))
            text = self._stderr_file.read().decode("utf-8", errors="replace")
        except (OSError, ValueError):
            text = ""
        tail = [*self._extra_lines, *text.splitlines()]
        return "\n".join(tail[-lines:])

    def send(self, request: dict[str, Any]) -> None:
        """Write one request line; raises :class:`_WorkerExitedError` if the worker is gone."""
        try:
            assert self._proc.stdin is not None
            self._proc.stdin.write(json.dumps(request) + "\n")
            self._proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError) as exc:
            raise _WorkerExitedError(self._exit_description()) from exc

    def next_event(self, timeout_s: float) -> dict[str, Any] | None:
        """The next event, or None after ``timeout_s``.

        Raises:
            _WorkerExitedError: the worker exited (whether or not its output was closed).
        """
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            try:
                event = self._events.get(timeout=max(min(remaining, _POLL_S), 0.001))
            except queue.Empty:
                if self._proc.poll() is not None:
                    try:  # the last lines it wrote may still be in the pump
                        event = self._events.get(timeout=_DRAIN_S)
                    except queue.Empty:
                        raise _WorkerExitedError(self._exit_description()) from None
                elif remaining <= 0:
                    return None
                else:
                    continue
            if event is _EOF:
                raise _WorkerExitedError(self._exit_description())
            return dict(event)

    @property
    def exit_signal(self) -> int | None:
        """The signal that ended the worker, if one did."""
        code = self._proc.poll()
        return -code if code is not None and code < 0 else None

    def _exit_description(self) -> str:
        try:
            code = self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            return "the worker closed its output but is still running"
        if code < 0:
            with contextlib.suppress(ValueError):
                name = signal.Signals(-code).name
                return f"the worker was ended by {name} ({signal_in_words(-code)})"
            return f"the worker was ended by signal {-code}"
        return f"the worker exited with code {code}"

    def _remember_descendants(self) -> None:
        """Note every process the worker started, before it exits and they are orphaned."""
        try:
            import psutil  # smoke only; check and install-cmd never import this module

            children = psutil.Process(self._proc.pid).children(recursive=True)
        except Exception:  # noqa: BLE001  # the worker is gone or psutil cannot see it
            return
        for child in children:
            self._descendants.setdefault(child.pid, child)

    def _kill_descendants(self) -> None:
        for child in self._descendants.values():
            with contextlib.suppress(Exception):  # gone already, or a reused pid (psutil checks)
                child.kill()
        for child in self._descendants.values():
            with contextlib.suppress(Exception):
                child.wait(timeout=2)
        self._descendants.clear()

    def kill(self) -> None:
        """End the worker and everything it started, now."""
        if self._proc.poll() is None:
            self._remember_descendants()
            with contextlib.suppress(ProcessLookupError, PermissionError, OSError):
                if hasattr(os, "killpg"):
                    os.killpg(self._proc.pid, signal.SIGKILL)
                else:  # Windows: no process groups of this kind
                    self._proc.kill()
        self._kill_descendants()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)
        # Not stdout: the pump thread may be reading it, and closing it would wait for that.
        # Not the stderr file either: its tail still explains a crash (closed with this object).
        with contextlib.suppress(Exception):
            if self._proc.stdin is not None:
                self._proc.stdin.close()

    def close(self) -> None:
        """Ask the worker to exit; kill it (and what it started) if it does not within seconds."""
        self._remember_descendants()
        with contextlib.suppress(_WorkerExitedError):
            self.send({"op": "exit"})
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._proc.wait(timeout=5)
        self.kill()


ProgressCallback = Callable[[str, str, "CheckResult | None"], None]
"""Called with ("start", check name, None) and ("result", check name, result)."""

BurnOpener = Callable[[str | None, int], "NvmlSampling | str"]


class RunOutcome(Struct):
    """What the runner found, before expectations and explanations are added."""

    torch: TorchBuild
    devices: list[DeviceReport] = field(default_factory=list)


def _signal_name(number: int | None) -> str | None:
    if number is None:
        return None
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _synthetic(
    name: str, status: CheckStatus, message: str, duration_s: float = 0.0, **extra: Any
) -> CheckResult:
    return CheckResult(name=name, status=status, duration_s=duration_s, message=message, **extra)


class Runner:
    """Runs the suite for the options it was given; see the module docstring."""

    def __init__(
        self,
        options: SmokeOptions,
        *,
        python: str | None = None,
        env: dict[str, str] | None = None,
        progress: ProgressCallback | None = None,
        open_burn_sampling: BurnOpener = open_nvml_sampling,
        sample_interval_s: float = 1.0,
    ) -> None:
        self.options = options
        self._argv = [python or sys.executable, "-m", WORKER_MODULE]
        self._env = env
        self._progress = progress or (lambda _phase, _name, _result: None)
        self._open_burn_sampling = open_burn_sampling
        self._sample_interval_s = sample_interval_s
        self._worker: WorkerProcess | None = None
        self.torch: TorchBuild | None = None
        self.worker_starts = 0

    # --- worker lifecycle -----------------------------------------------------------------------

    def start(self) -> TorchBuild:
        """Start the first worker and wait until torch is imported.

        Raises:
            TorchUnusableError: the import failed, crashed, or did not finish in time.
            WorkerStartError: the worker process could not be started at all.
        """
        self._ensure_worker()
        assert self.torch is not None
        return self.torch

    def _ensure_worker(self) -> WorkerProcess:
        if self._worker is not None:
            return self._worker
        started = time.perf_counter()
        worker = WorkerProcess(self._argv, self._env)
        self.worker_starts += 1
        try:
            self._await_ready(worker, started)
        except BaseException:  # an import failure, or Ctrl-C while torch loads: no leftover
            worker.kill()
            raise
        self._worker = worker
        return worker

    def _await_ready(self, worker: WorkerProcess, started: float) -> None:
        """Wait for the worker's first event; raises :class:`TorchUnusableError` unless ready."""
        try:
            event = worker.next_event(self.options.startup_timeout_s)
        except _WorkerExitedError as exited:
            detail = worker.stderr_tail()
            raise TorchUnusableError(
                "WorkerDied", f"{exited.description} before torch loaded", detail
            ) from None
        if event is None:
            raise TorchUnusableError(
                "Timeout",
                f"`import torch` did not finish within {self.options.startup_timeout_s:g} s",
            )
        if event.get("event") == "import_failed":
            raise TorchUnusableError(
                str(event.get("error_type", "ImportError")),
                str(event.get("message", "")),
                str(event.get("traceback", "")),
            )
        if event.get("event") != "ready":
            raise TorchUnusableError("Protocol", f"unexpected first event from the worker: {event}")
        if self.torch is None:
            build = event.get("torch") or {}
            self.torch = TorchBuild(
                version=str(build.get("version", "?")),
                cuda=build.get("cuda"),
                hip=build.get("hip"),
                cudnn=build.get("cudnn"),
                import_s=float(event.get("import_s") or (time.perf_counter() - started)),
                location=build.get("location"),
            )

    def _drop_worker(self, kill: bool = True) -> None:
        if self._worker is not None:
            if kill:
                self._worker.kill()
            self._worker = None

    def kill(self) -> None:
        """Kill the worker now (on Ctrl-C): no grace period for a check in progress."""
        self._drop_worker(kill=True)

    def close(self) -> None:
        """Stop the worker (if any)."""
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    # --- running checks -------------------------------------------------------------------------

    def _timeout(self, name: str) -> float:
        return catalog.timeout_for(
            name,
            full=self.options.full,
            burn_s=self.options.burn_s,
            override_s=self.options.timeout_s,
        )

    def run_checks(
        self,
        device: str,
        names: list[str],
        nvidia_gpu_present: bool | None = None,
        on_result: Callable[[CheckResult], None] | None = None,
        on_start: Callable[[str], None] | None = None,
    ) -> list[CheckResult]:
        """Run ``names`` on ``device`` in order, surviving hangs and crashes.

        Raises:
            TorchUnusableError: a fresh worker could not even import torch.
        """
        pending = list(names)
        results: list[CheckResult] = []
        target = device

        def record(result: CheckResult) -> None:
            nonlocal target
            results.append(result)
            if result.name == "device" and result.measured.get("device"):
                # A restarted worker must test the same device that "auto" resolved to.
                target = str(result.measured["device"])
            if on_result is not None:
                on_result(result)
            self._progress("result", result.name, result)

        while pending:
            try:
                worker = self._ensure_worker()
            except WorkerStartError as failed:
                if self.worker_starts == 0:
                    raise
                for name in pending:  # a fresh worker after a hang or crash could not start
                    record(_synthetic(name, CheckStatus.SKIPPED, f"not run: {failed.message}"))
                break
            request = {
                "op": "run",
                "device": target,
                "checks": pending,
                "full": self.options.full,
                "burn_s": self.options.burn_s,
                "nvidia_gpu_present": nvidia_gpu_present,
            }
            try:
                worker.send(request)
            except _WorkerExitedError:
                self._drop_worker()
                continue
            while True:
                current = pending[0] if pending else None
                limit = self._timeout(current) if current else _DONE_TIMEOUT_S
                try:
                    event = worker.next_event(limit)
                except _WorkerExitedError as exited:
                    self._drop_worker()
                    if current is None:
                        break
                    pending.pop(0)
                    record(
                        _synthetic(
                            current,
                            CheckStatus.FAIL,
                            f"{exited.description} during this check",
                            error_type="WorkerDied",
                            measured={
                                "stderr_tail": worker.stderr_tail(),
                                "signal": _signal_name(worker.exit_signal),
                            },
                        )
                    )
                    break
                if event is None:  # the deadline passed
                    self._drop_worker()
                    if current is None:
                        break
                    pending.pop(0)
                    record(
                        _synthetic(
                            current,
                            CheckStatus.TIMEOUT,
                            f"no result within {limit:g} s; the worker was killed",
                            duration_s=limit,  # it ran until the limit
                            measured={"timeout_s": limit},
                        )
                    )
                    if current == "device":
                        # Nothing else can run on a device that never came up.
                        for name in pending:
                            record(
                                _synthetic(
                                    name,
                                    CheckStatus.SKIPPED,
                                    "the device did not come up (the device check timed out)",
                                )
                            )
                        pending.clear()
                    break
                kind = event.get("event")
                if kind == "start":
                    name = str(event.get("check"))
                    if on_start is not None:
                        on_start(name)
                    self._progress("start", name, None)
                elif kind == "result":
                    result = check_result_from_event(event)
                    if pending and result.name == pending[0]:
                        pending.pop(0)
                    elif result.name in pending:
                        pending.remove(result.name)
                    record(result)
                elif kind == "done":
                    break
        return results

    def run_device(self, requested: str, nvidia_gpu_present: bool | None = None) -> DeviceReport:
        """The whole suite (and the burn, if asked) on one device."""
        names = list(catalog.suite(distributed=self.options.distributed))
        results = self.run_checks(requested, names, nvidia_gpu_present)
        info = next((r.measured for r in results if r.name == "device"), {})
        resolved = info.get("device") if info.get("usable") else None
        if self.options.burn_s > 0:
            results.append(self._burn(str(resolved or requested), info))
        return DeviceReport(
            requested=requested,
            device=str(resolved) if resolved else None,
            info=dict(info),
            checks=tuple(results),
        )

    def _burn(self, device: str, info: dict[str, Any]) -> CheckResult:
        name = catalog.BURN.name
        if not info.get("usable"):
            return _synthetic(name, CheckStatus.SKIPPED, "the device is not usable")
        if not device.startswith("cuda") or str(info.get("arch") or "").startswith("gfx"):
            return _synthetic(
                name,
                CheckStatus.SKIPPED,
                f"--burn watches an NVIDIA GPU through NVML; the device is {device}",
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        sampling = self._open_burn_sampling(info.get("uuid"), index)
        if isinstance(sampling, str):
            return _synthetic(
                name, CheckStatus.SKIPPED, f"NVML not available ({sampling}): cooling not judged"
            )
        sampler = BackgroundSampler(sampling.sampler, interval_s=self._sample_interval_s)
        try:
            results = self.run_checks(device, [name], on_start=lambda _name: sampler.start())
        finally:
            samples = sampler.stop()
            sampling.close()
        load = results[-1] if results else _synthetic(name, CheckStatus.FAIL, "no result")
        intervals = list(load.measured.get("intervals") or [])
        verdict = burn_verdict(samples, intervals, sampling.slowdown_temperature_c)
        measured = {
            **load.measured,
            "health": verdict.summary,
            "health_samples": [msgspec.structs.asdict(sample) for sample in samples],
            "sampler_errors": sampler.errors[-5:],
            "sampler_stalled": sampler.stalled,
        }
        if load.status is not CheckStatus.PASS:
            # The load itself failed (wrong results, a crash, a hang): that decides.
            return CheckResult(
                name=name,
                status=load.status,
                duration_s=load.duration_s,
                message=f"{load.message}; {verdict.message}",
                measured=measured,
                error_type=load.error_type,
            )
        return CheckResult(
            name=name,
            status=verdict.status,
            duration_s=load.duration_s,
            message=f"{load.message}; {verdict.message}",
            measured=measured,
        )

    def run(self, nvidia_gpu_present: bool | None = None) -> RunOutcome:
        """Every requested device in turn (``--all-devices``: each GPU torch sees)."""
        torch_build = self.start()
        outcome = RunOutcome(torch=torch_build)
        first = self.run_device(self.options.device, nvidia_gpu_present)
        outcome.devices.append(first)
        if self.options.all_devices and (first.device or "").startswith("cuda"):
            count = int(first.info.get("cuda_device_count") or 0)
            for index in range(count):
                name = f"cuda:{index}"
                if name != first.device:
                    outcome.devices.append(self.run_device(name, nvidia_gpu_present))
        return outcome
