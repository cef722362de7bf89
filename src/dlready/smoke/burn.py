"""``--burn SECONDS``: watch a GPU under sustained load and judge its cooling (no torch).

The worker runs the load (``speed.burn``); this side samples temperature, power, SM clock and
clock-event reasons through NVML on a thread of the parent process, then
:func:`burn_verdict` judges the samples together with the worker's throughput per interval.
The sampler is any callable returning an object with the fields of
``dlready.probes.nvidia.GpuHealthSample``, so tests inject recorded values instead of NVML.
"""

from __future__ import annotations

import contextlib
import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from msgspec import Struct, field

from dlready.probes.isolated import (
    ChildService,
    Crashed,
    Failed,
    Finished,
    TimedOut,
    can_isolate,
)
from dlready.probes.nvidia import GpuHealthSample, sample_gpu_health
from dlready.probes.nvml_gateway import (
    NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
    NVML_TIMEOUT_S,
    NvmlBackend,
    NvmlCallError,
    RealNvml,
    preload,
)
from dlready.render.text import format_percent
from dlready.smoke.report import CheckStatus
from dlready.words import clock_event_words

THERMAL_REASONS = frozenset({"sw_thermal_slowdown", "hw_thermal_slowdown"})
"""Clock-event reasons that mean the GPU slowed down because it is too hot."""
POWER_BRAKE_REASONS = frozenset({"hw_power_brake_slowdown"})
"""The board's external power-brake signal: the power supply or its cables cannot keep up."""
HW_SLOWDOWN_REASONS = frozenset({"hw_slowdown"})
"""Hardware slowdown (thermal or power brake); NVIDIA documents it as a sign of trouble."""
POWER_CAP_REASONS = frozenset({"sw_power_cap"})
"""The software power limit: normal under a full matmul load on most data-centre GPUs."""

NEAR_SLOWDOWN_MARGIN_C = 5.0
THROUGHPUT_DROP_WARN = 0.10
"""A burn whose last third runs more than 10 % slower than its first third is throttling."""


class TimedSample(Struct, frozen=True):
    """One health sample, seconds after the load started."""

    t_s: float
    temperature_c: float | None
    power_draw_w: float | None
    sm_clock_mhz: float | None
    clock_event_reasons: tuple[str, ...] | None


Sampler = Callable[[], Any]
"""Returns one sample with ``temperature_c``, ``power_draw_w``, ``sm_clock_mhz`` and
``clock_event_reasons`` (each may be None)."""


class BackgroundSampler(Struct):
    """Calls ``sample`` every ``interval_s`` on a daemon thread until stopped.

    A sampler call that hangs (a stuck NVML) only stalls this thread: :meth:`stop` waits at most
    ``join_timeout_s`` and reports what it has, with ``stalled`` set.
    """

    sample: Sampler
    interval_s: float = 1.0
    join_timeout_s: float = 5.0
    samples: list[TimedSample] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    stalled: bool = False
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _started: float = 0.0

    def start(self) -> None:
        """Begin sampling now (t = 0)."""
        self._started = time.perf_counter()
        self._thread = threading.Thread(target=self._loop, name="dlready-burn-sampler", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            at = time.perf_counter() - self._started
            try:
                raw = self.sample()
            except Exception as exc:  # noqa: BLE001  # a failed sample is recorded, not fatal
                self.errors.append(f"{type(exc).__name__}: {exc}")
            else:
                self.samples.append(
                    TimedSample(
                        t_s=round(at, 3),
                        temperature_c=getattr(raw, "temperature_c", None),
                        power_draw_w=getattr(raw, "power_draw_w", None),
                        sm_clock_mhz=getattr(raw, "sm_clock_mhz", None),
                        clock_event_reasons=getattr(raw, "clock_event_reasons", None),
                    )
                )
            self._stop.wait(self.interval_s)

    def stop(self) -> list[TimedSample]:
        """Stop sampling and return the samples taken."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.join_timeout_s)
            self.stalled = self._thread.is_alive()
        return list(self.samples)


class BurnVerdict(Struct, frozen=True):
    """The cooling verdict of one burn."""

    status: CheckStatus
    message: str
    summary: dict[str, Any]


def _values(samples: list[TimedSample], name: str) -> list[float]:
    return [float(v) for s in samples if (v := getattr(s, name)) is not None]


def summarise(samples: list[TimedSample]) -> dict[str, Any]:
    """Peak and median of each sampled value, and every clock-event reason seen."""
    summary: dict[str, Any] = {"samples": len(samples)}
    for name in ("temperature_c", "power_draw_w", "sm_clock_mhz"):
        values = _values(samples, name)
        summary[f"max_{name}"] = max(values) if values else None
        summary[f"median_{name}"] = statistics.median(values) if values else None
    clocks = _values(samples, "sm_clock_mhz")
    summary["min_sm_clock_mhz"] = min(clocks) if clocks else None
    reasons: set[str] = set()
    for sample in samples:
        reasons.update(sample.clock_event_reasons or ())
    summary["clock_event_reasons_seen"] = sorted(reasons)
    return summary


def throughput_drop(intervals: list[dict[str, Any]]) -> float | None:
    """Fractional drop from the first third of the intervals to the last third."""
    rates = [float(i["tflops"]) for i in intervals if isinstance(i.get("tflops"), (int, float))]
    if len(rates) < 3:
        return None
    third = len(rates) // 3
    first = statistics.median(rates[:third])
    last = statistics.median(rates[-third:])
    return (first - last) / first if first > 0 else None


def burn_verdict(
    samples: list[TimedSample],
    intervals: list[dict[str, Any]],
    slowdown_temperature_c: float | None = None,
) -> BurnVerdict:
    """Judge a burn from its health samples and per-interval throughput.

    Fail: thermal slowdown, power brake or hardware slowdown seen (the cooling or the power
    supply does not hold the load). Warn: no samples, within 5 °C of the slowdown threshold, or
    throughput fell by more than 10 % over the run. A software power cap alone passes: it is
    how data-centre GPUs normally run a full matmul load.
    """
    summary = summarise(samples)
    drop = throughput_drop(intervals)
    summary["throughput_drop"] = drop
    summary["slowdown_temperature_c"] = slowdown_temperature_c
    reasons = set(summary["clock_event_reasons_seen"])
    max_temp = summary["max_temperature_c"]
    max_power = summary["max_power_draw_w"]
    heat = f"max {max_temp:g} °C" if max_temp is not None else "temperature unreadable"
    power = f", max {max_power:.0f} W" if max_power is not None else ""
    if not samples:
        return BurnVerdict(
            CheckStatus.WARN, "NVML gave no samples during the burn: cooling not judged", summary
        )
    if reasons & THERMAL_REASONS:
        return BurnVerdict(
            CheckStatus.FAIL,
            f"thermal slowdown under load ({clock_event_words(sorted(reasons & THERMAL_REASONS))}; "
            f"{heat}): the cooling does not hold a sustained load",
            summary,
        )
    if reasons & POWER_BRAKE_REASONS:
        return BurnVerdict(
            CheckStatus.FAIL,
            f"power brake under load ({heat}{power}): the power supply or its cables cannot "
            "hold the load",
            summary,
        )
    if reasons & HW_SLOWDOWN_REASONS:
        return BurnVerdict(
            CheckStatus.FAIL,
            f"hardware slowdown under load ({heat}{power}): overheating or a power problem",
            summary,
        )
    if (
        max_temp is not None
        and slowdown_temperature_c is not None
        and max_temp >= slowdown_temperature_c - NEAR_SLOWDOWN_MARGIN_C
    ):
        return BurnVerdict(
            CheckStatus.WARN,
            f"{heat}, within {NEAR_SLOWDOWN_MARGIN_C:g} °C of the {slowdown_temperature_c:g} °C "
            "slowdown threshold: the cooling is at its limit",
            summary,
        )
    if drop is not None and drop > THROUGHPUT_DROP_WARN:
        return BurnVerdict(
            CheckStatus.WARN,
            f"throughput fell {format_percent(100 * drop)} during the burn ({heat}{power}): the GPU is throttling",
            summary,
        )
    capped = (
        " (at its software power cap, normal under full load)"
        if reasons & (POWER_CAP_REASONS)
        else ""
    )
    return BurnVerdict(
        CheckStatus.PASS, f"cooling holds: {heat}{power}, clocks steady{capped}", summary
    )


class NvmlSampling(Struct):
    """An open NVML session that samples one GPU; ``close`` releases it."""

    sampler: Sampler
    close: Callable[[], None]
    slowdown_temperature_c: float | None


SAMPLE_TIMEOUT_S = 5.0
"""The longest one health sample may take; NVML answers in milliseconds when it works."""


def open_nvml_sampling(
    uuid: str | None, cuda_index: int, timeout_s: float = NVML_TIMEOUT_S, isolate: bool = True
) -> NvmlSampling | str:
    """Open NVML for the GPU with ``uuid`` (torch's UUID, without ``GPU-``), within ``timeout_s``.

    NVML runs in a forked child process (:class:`dlready.probes.isolated.ChildService`) where
    the platform allows it, so a crash inside the NVIDIA library costs the cooling verdict,
    never the smoke report; a hung NVML is abandoned after ``timeout_s`` (opening) or
    :data:`SAMPLE_TIMEOUT_S` (one sample), as ``check`` does. Elsewhere (or with ``isolate``
    False) NVML is opened on a daemon thread of this process with the same time limit.

    Returns:
        The sampling session, or the reason NVML cannot be used (a string), so ``--burn`` can
        say "skipped: NVML not available (reason)".
    """
    if isolate and can_isolate():
        return _open_in_child(uuid, cuda_index, timeout_s)
    opened: list[NvmlSampling | str] = []

    def work() -> None:
        try:
            opened.append(_open_nvml_sampling(uuid, cuda_index))
        except Exception as exc:  # noqa: BLE001  # a loader problem is a reason, not a crash
            opened.append(f"{type(exc).__name__}: {exc}")

    thread = threading.Thread(target=work, name="dlready-burn-nvml-open", daemon=True)
    thread.start()
    thread.join(timeout_s)
    if not opened:
        return _hung(timeout_s)
    return opened[0]


def _hung(timeout_s: float) -> str:
    return f"NVML did not answer within {timeout_s:g} s; a hung GPU or driver"


def _in_words(outcome: Crashed | Failed | TimedOut) -> str:
    if isinstance(outcome, Crashed):
        return f"the NVIDIA library crashed ({outcome.description})"
    if isinstance(outcome, TimedOut):
        return _hung(outcome.timeout_s)
    return outcome.message


class _NvmlUnusableError(Exception):
    """Raised in the child when NVML cannot be opened; its text is the reason."""


def _open_or_raise(uuid: str | None, cuda_index: int) -> NvmlSampling:
    sampling = _open_nvml_sampling(uuid, cuda_index)
    if isinstance(sampling, str):
        raise _NvmlUnusableError(sampling)
    return sampling


def _open_in_child(uuid: str | None, cuda_index: int, timeout_s: float) -> NvmlSampling | str:
    preload()  # imports in the child could wait for a lock another thread of ours holds
    service: ChildService[NvmlSampling, tuple[float | None, GpuHealthSample]] = ChildService(
        setup=lambda: _open_or_raise(uuid, cuda_index),
        handle=lambda sampling: (sampling.slowdown_temperature_c, sampling.sampler()),
        finish=lambda sampling: sampling.close(),
    )
    ready = service.ready(timeout_s)
    if not isinstance(ready, Finished):
        service.close()
        reason = _in_words(ready)
        return reason.removeprefix(f"{_NvmlUnusableError.__name__}: ")
    first = service.call(SAMPLE_TIMEOUT_S)
    if not isinstance(first, Finished):
        service.close()
        return _in_words(first)
    slowdown, _ = first.value

    def sample() -> GpuHealthSample:
        outcome = service.call(SAMPLE_TIMEOUT_S)
        if isinstance(outcome, Finished):
            return outcome.value[1]
        raise RuntimeError(_in_words(outcome))

    return NvmlSampling(sampler=sample, close=service.close, slowdown_temperature_c=slowdown)


def _open_nvml_sampling(uuid: str | None, cuda_index: int) -> NvmlSampling | str:
    backend = RealNvml()
    try:
        backend.init()
    except NvmlCallError as exc:
        return str(exc)
    try:
        index = _nvml_index(backend, uuid, cuda_index)
        slowdown: float | None = None
        try:
            value = backend.call(
                "nvmlDeviceGetTemperatureThreshold", index, NVML_TEMPERATURE_THRESHOLD_SLOWDOWN
            )
            slowdown = float(value) if isinstance(value, (int, float)) else None
        except NvmlCallError:  # not every GPU reports it
            slowdown = None
    except (NvmlCallError, LookupError, ValueError) as exc:
        _shutdown_quietly(backend)
        return f"NVML cannot find this GPU ({exc})"

    def sample() -> GpuHealthSample:
        return sample_gpu_health(backend, index)

    return NvmlSampling(
        sampler=sample, close=lambda: _shutdown_quietly(backend), slowdown_temperature_c=slowdown
    )


def _shutdown_quietly(backend: NvmlBackend) -> None:
    with contextlib.suppress(Exception):  # nothing left to do with a failing shutdown
        backend.shutdown()


def _nvml_index(backend: NvmlBackend, uuid: str | None, cuda_index: int) -> int:
    """The NVML index of the torch device: by UUID when known (CUDA and NVML orders differ)."""
    count = int(backend.call("nvmlDeviceGetCount"))
    if uuid:
        wanted = uuid.lower().removeprefix("gpu-")
        for index in range(count):
            found = str(backend.call("nvmlDeviceGetUUID", index)).lower().removeprefix("gpu-")
            if found == wanted:
                return index
    if 0 <= cuda_index < count:
        return cuda_index
    raise LookupError(f"no NVML GPU matches cuda:{cuda_index}")
