"""``dlready smoke``: prove that the installed PyTorch works on this device, and how fast.

This module must stay cheap to import and free of torch: ``dlready --help`` and ``check``
import it. Everything heavy is imported inside :func:`smoke_command`; torch itself is only
imported by the worker process (``dlready.smoke.worker``).
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dlready.exitcodes import ExitCode

if TYPE_CHECKING:
    from dlready.install.torch_fit import TorchFit
    from dlready.model import MachineSnapshot
    from dlready.result import CommandError, CommandResult, Streams
    from dlready.smoke.report import CheckResult, SmokeReport

DEVICE_PATTERN = re.compile(r"auto|cpu|mps|cuda(:\d+)?")
_SNAPSHOT_TIMEOUT_S = 15.0
MAX_SECONDS = 86_400.0
"""The longest ``--burn`` or ``--timeout`` (one day): a bound that the clock functions accept,
and inf or nan would switch hang protection off."""
MIN_TIMEOUT_S = 1.0
"""The shortest ``--timeout``: below it even a healthy check (a round trip to the worker, the
first call on a device) cannot finish, so every check would read as a hang."""


def _usage(message: str) -> CommandError:
    from dlready.result import usage_error

    return usage_error(message, "see `dlready smoke --help`")


def _collect_snapshot() -> MachineSnapshot | None:
    """The machine snapshot (NVML, PCI, driver), or None if probing fails: smoke goes on."""
    try:
        from dlready.probes.collect import collect_snapshot

        return collect_snapshot()
    except Exception:  # noqa: BLE001  # the snapshot only sharpens explanations
        return None


def install_command_line(snapshot: MachineSnapshot | None) -> str | None:
    """The line ``dlready install-cmd`` would print here, or None if it cannot be computed."""
    if snapshot is None:
        return None
    try:
        from dlready.install.judge import recommended_command_line

        line = recommended_command_line(snapshot)
    except Exception:  # noqa: BLE001  # the install planner only sharpens explanations
        return None
    return line.strip() if line and line.strip() else None


def installed_torch_fit(snapshot: MachineSnapshot | None) -> TorchFit | None:
    """``judge_installed_torch(snapshot)``, or None if it cannot be computed."""
    if snapshot is None:
        return None
    try:
        from dlready.install.judge import judge_installed_torch

        return judge_installed_torch(snapshot)
    except Exception:  # noqa: BLE001  # the install judge only sharpens explanations
        return None


class _Progress:
    """A spinner with the running check on stderr, only on a terminal."""

    def __init__(self, enabled: bool) -> None:
        self._progress: Any = None
        self._task: Any = None
        self._done = 0
        if not enabled:
            return
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        from dlready.output import stderr_console

        console = stderr_console()
        if not console.is_terminal:
            return
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )

    def __enter__(self) -> _Progress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task("starting the torch worker", total=None)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()

    def __call__(self, phase: str, name: str, result: CheckResult | None) -> None:
        if self._progress is None:
            return
        if phase == "start":
            self._progress.update(self._task, description=f"{self._done} done · running {name}")
        else:
            self._done += 1
            status = result.status if result is not None else "?"
            self._progress.update(self._task, description=f"{self._done} done · {name}: {status}")


def _could_not_run(message: str, hint: str | None, data: dict[str, Any]) -> CommandError:
    from dlready.result import CommandError, Problem

    return CommandError(
        ExitCode.COULD_NOT_RUN,
        Problem(str(data.get("reason", "could_not_run")), message, hint),
        data=data,
    )


def exit_code_for(report: SmokeReport) -> ExitCode:
    """0 every check passed (skips and warnings allowed), 1 one failed, 2 no such device."""
    if report.usage_error:
        return ExitCode.USAGE
    if any(check.failed for check in report.all_checks):
        return ExitCode.NOT_READY
    return ExitCode.OK


def smoke_command(
    device: Annotated[
        str,
        typer.Option(
            "--device",
            metavar="DEVICE",
            help="Device to test: auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps.",
        ),
    ] = "auto",
    all_devices: Annotated[
        bool,
        typer.Option("--all-devices", help="Run the suite on every GPU torch can see."),
    ] = False,
    full: Annotated[
        bool,
        typer.Option(
            "--full",
            help="8192³ matmuls, 1 GiB copies, longer training (instead of --quick).",
        ),
    ] = False,
    quick: Annotated[
        bool,
        typer.Option(
            "--quick",
            help="The default: a few seconds, smaller matrices.",
        ),
    ] = False,
    burn: Annotated[
        float,
        typer.Option(
            "--burn",
            metavar="SECONDS",
            help="After the suite, load the GPU for SECONDS while watching temperature, power "
            "and throttle reasons through NVML (the cooling verdict). 0: no burn.",
        ),
    ] = 0.0,
    distributed: Annotated[
        bool,
        typer.Option(
            "--distributed",
            help="Add an all_reduce check through torch.distributed (run under torchrun; "
            "gloo on CPU, nccl on CUDA).",
        ),
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            metavar="SECONDS",
            help="Time limit per check, replacing the built-in ones (a hung check is killed "
            "and reported; the rest still runs).",
        ),
    ] = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="Print the versioned JSON report on stdout.")
    ] = False,
) -> None:
    """Prove that the installed PyTorch works on this device, and measure how fast it is.

    Runs the PyTorch basics (tensors, autograd, a linear layer per dtype, nn.Module,
    back-propagation, train/eval, mixed precision) on the device and checks each against an
    independent reference, then measures matmul TFLOP/s per dtype, memory bandwidth and
    host-to-device bandwidth against the device's expected figures. Every check runs in a
    child process with a time limit: a hang is killed and reported while the rest still runs.
    Every failure comes with an explanation and a fix.
    """
    from dlready.result import run

    run(
        "smoke",
        lambda: _smoke(device, all_devices, full, quick, burn, distributed, timeout),
        as_json=json_output,
    )


def _smoke(
    device: str,
    all_devices: bool,
    full: bool,
    quick: bool,
    burn: float,
    distributed: bool,
    timeout: float | None,
) -> CommandResult:
    started = time.perf_counter()
    if full and quick:
        raise _usage("--quick and --full exclude each other; give one of them")
    if not DEVICE_PATTERN.fullmatch(device):
        raise _usage(f"--device {device!r} is not one of auto, cpu, cuda, cuda:N, mps")
    if all_devices and device not in ("auto", "cuda"):
        raise _usage(
            f"--all-devices and --device {device} exclude each other (--all-devices runs the "
            "suite on every GPU torch can see); drop one of them"
        )
    if not 0 <= burn <= MAX_SECONDS:  # also refuses nan (every comparison is false)
        raise _usage(f"--burn {burn:g}: the duration must be 0 to {MAX_SECONDS:g} seconds")
    if timeout is not None and not MIN_TIMEOUT_S <= timeout <= MAX_SECONDS:
        raise _usage(
            f"--timeout {timeout:g}: the limit must be at least {MIN_TIMEOUT_S:g} and at most "
            f"{MAX_SECONDS:g} seconds"
        )

    import concurrent.futures
    import importlib.util

    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    snapshot_future = pool.submit(_collect_snapshot)
    pool.shutdown(wait=False)

    def snapshot() -> MachineSnapshot | None:
        try:
            return snapshot_future.result(timeout=_SNAPSHOT_TIMEOUT_S)
        except Exception:  # noqa: BLE001  # a slow or broken probe only loses explanations
            return None

    if importlib.util.find_spec("torch") is None:
        line = install_command_line(snapshot())
        hint = f"install it with: {line}" if line else "run `dlready install-cmd` for the command"
        raise _could_not_run(
            "torch is not installed in this Python environment",
            hint,
            {"reason": "torch_not_installed", "install_command": line},
        )

    from dlready.probes.isolated import kill_all as kill_probe_children
    from dlready.render.smoke_render import render_report, report_data
    from dlready.smoke.judge import build_report, explain_context, nvidia_gpu_present
    from dlready.smoke.peaks import load_peaks
    from dlready.smoke.runner import Runner, SmokeOptions, TorchUnusableError, WorkerStartError

    options = SmokeOptions(
        device=device,
        all_devices=all_devices,
        full=full,
        burn_s=burn,
        distributed=distributed,
        timeout_s=timeout,
    )
    with _Progress(enabled=True) as progress:
        runner = Runner(options, progress=progress)
        try:
            try:
                runner.start()
            except WorkerStartError as failed:
                raise _could_not_run(
                    failed.message,
                    "free system resources (open files, memory, processes) and run it again",
                    {"reason": "worker_start_failed", "message": failed.message},
                ) from None
            except TorchUnusableError as unusable:
                machine = snapshot()
                line = install_command_line(machine)
                hint = (
                    f"reinstall it: {line}" if line else "run `dlready install-cmd` for the command"
                )
                raise _could_not_run(
                    f"torch cannot be imported ({unusable.kind}: {unusable.message})",
                    hint,
                    {
                        "reason": "torch_import_failed",
                        "error_type": unusable.kind,
                        "message": unusable.message,
                        "detail": unusable.detail,
                        "install_command": line,
                    },
                ) from None
            machine = snapshot()
            outcome = runner.run(nvidia_gpu_present(machine))
        except KeyboardInterrupt:
            # Ctrl-C, or SIGTERM/SIGHUP through result.StopSignals: end what smoke started,
            # then let result.run report "interrupted" as it does for every command.
            runner.kill()
            kill_probe_children()  # the snapshot's NVML probe, still running on its thread
            raise
        finally:
            runner.close()

    report = build_report(
        outcome.devices,
        mode="full" if full else "quick",
        torch=outcome.torch,
        ctx=explain_context(
            machine, outcome.torch, install_command_line(machine), installed_torch_fit(machine)
        ),
        gpus=machine.gpus if machine is not None else (),
        table=load_peaks(),
        wall_s=time.perf_counter() - started,
        notes=_notes(options, outcome.devices),
    )
    from dlready.result import CommandResult, Problem

    code = exit_code_for(report)
    errors = [
        Problem(str(check.status), f"{check.name}: {check.message}", detail={"check": check.name})
        for check in report.all_checks
        if check.failed
    ]
    if code is ExitCode.USAGE:
        device_check = next((c for c in report.all_checks if c.name == "device"), None)
        why = device_check.explanation if device_check else None
        errors = [
            Problem(
                "usage",
                f"--device {device}: no such device on this machine" + (f": {why}" if why else ""),
                device_check.fix if device_check else None,
            )
        ]

    import os

    from dlready.render.smoke_render import rank_label

    def text(streams: Streams) -> None:
        render_report(report, streams.console, rank_label(os.environ))

    return CommandResult(
        "smoke",
        code,
        data=report_data(report, os.environ),
        errors=tuple(errors),
        # A device that does not exist is a usage error: its one error line and hint say it
        # all (a report of 25 skipped checks would read as a judged failure).
        text=None if code is ExitCode.USAGE else text,
    )


def _notes(options: Any, devices: list[Any]) -> tuple[str, ...]:
    notes = []
    if options.all_devices and not any((d.device or "").startswith("cuda") for d in devices):
        notes.append("--all-devices: torch sees no GPU, so the suite ran on one device only")
    return tuple(notes)
