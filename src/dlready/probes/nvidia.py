"""NVIDIA GPUs and driver, read through NVML (an :class:`~.nvml_gateway.NvmlBackend`).

Every NVML call is guarded: ``NotSupported`` (and ``FunctionNotFound``, an older driver)
gives an *unsupported* reading with the reason, any other error a *failed* reading with the
NVML error class and message. A GPU whose handle cannot be opened, or that is lost, becomes
a :class:`~dlready.model.GpuInfo` with ``error`` set; the other GPUs are still reported.
Units are converted once, here: NVML's milliwatts become watts.

NVML can hang (a wedged GPU or driver). The whole probe runs in a daemon worker thread
joined with a timeout; on timeout the stack is ``TIMED_OUT`` and the thread is abandoned.

Cross-check with ``nvidia-smi --query-gpu=FIELD --format=csv`` (``tests/test_probe_nvidia.py``
does so for the recorded machines): name, uuid, pci.bus_id, memory.total, memory.free,
compute_cap, clocks.max.sm, clocks.max.memory, enforced.power.limit, power.default_limit,
power.min_limit, power.max_limit, power.draw, temperature.gpu, fan.speed,
clocks_event_reasons.active, pcie.link.gen.current/max, pcie.link.width.current/max,
mig.mode.current, persistence_mode, ecc.mode.current; driver_version for the stack.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import msgspec
from msgspec import Struct

from dlready.model import DriverStack, GpuInfo, GpuVendor, Reading, ReadState, Source, StackState
from dlready.plausibility import DEVICE_COUNT, GPU_RANGES, plausible_or_none, screen
from dlready.probes.nvml_gateway import (
    ARCHITECTURE_NAMES,
    CLOCK_EVENT_REASONS,
    NVML_CLOCK_MEM,
    NVML_CLOCK_SM,
    NVML_FEATURE_ENABLED,
    NVML_TEMPERATURE_GPU,
    NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,
    NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,
    NVML_TIMEOUT_S,
    NvmlBackend,
    NvmlCallError,
)

T = TypeVar("T")
U = TypeVar("U")

_MILLIWATTS_PER_WATT = 1000.0

# Errors after which a GPU answers nothing more: stop asking it and mark it lost.
_GPU_GONE_ERRORS = frozenset({"NVMLError_GpuIsLost", "NVMLError_Unknown"})
_LOST_GPU_HINT = (
    "the GPU stopped answering (check `dmesg` for Xid 79, 'fallen off the bus'); "
    "reseat power/PCIe, reset the GPU or reboot"
)

# Opening one GPU failed for another reason than a lost GPU: error class -> hint.
_HANDLE_ERROR_HINTS = {
    "NVMLError_NoPermission": (
        "this is a permission problem, not a broken card: run `ls -l /dev/nvidia*`, add your "
        "user to the group that owns those files (often 'video') and log in again; in a "
        "container, start it with --gpus all"
    ),
    "NVMLError_InsufficientPower": "connect the card's external power cables",
    "NVMLError_IrqIssue": "the driver could not set up interrupts; check `dmesg` and reboot",
}

# nvmlInit failures: error class -> (state, reason, hint).
_INIT_FAILURES: dict[str, tuple[StackState, str, str]] = {
    "NVMLError_LibraryNotFound": (
        StackState.NOT_INSTALLED,
        "NVML (libnvidia-ml.so) was not found: no NVIDIA driver is installed, or this "
        "container was started without GPU access",
        "If this machine has an NVIDIA GPU, install the NVIDIA driver (in a container: "
        "run it with --gpus all and the NVIDIA Container Toolkit). No NVIDIA GPU: nothing to do.",
    ),
    "NVMLError_DriverNotLoaded": (
        StackState.DRIVER_NOT_LOADED,
        "the NVIDIA driver is installed but its kernel module is not loaded",
        "Load it with `sudo modprobe nvidia` and check `dmesg | grep -i nvrm`; Secure Boot "
        "blocks unsigned modules (sign or enroll the module, or reinstall the driver).",
    ),
    "NVMLError_LibRmVersionMismatch": (
        StackState.VERSION_MISMATCH,
        "the NVML library and the loaded kernel module come from different driver versions "
        "(the driver was upgraded, the old module is still loaded)",
        "Reboot after the driver upgrade (or unload and reload the nvidia kernel modules).",
    ),
    "NVMLError_NoPermission": (
        StackState.NO_PERMISSION,
        "NVML was refused access to the GPU devices",
        "Check the permissions of /dev/nvidia* (your user may need the 'video' group); in a "
        "container, start it with --gpus all.",
    ),
    "ImportError": (
        StackState.FAILED,
        "the nvidia-ml-py package (pynvml) cannot be imported",
        "Reinstall it: pip install --force-reinstall nvidia-ml-py",
    ),
}
_OTHER_INIT_FAILURE_HINT = "Run `nvidia-smi` to see whether the driver works."


class GpuHealthSample(Struct, frozen=True):
    """One quick reading of a GPU under load (for ``smoke --burn``); None when unreadable."""

    temperature_c: float | None
    power_draw_w: float | None
    sm_clock_mhz: float | None
    clock_event_reasons: tuple[str, ...] | None


def probe_nvidia(
    backend: NvmlBackend, *, timeout_s: float = NVML_TIMEOUT_S
) -> tuple[DriverStack, tuple[GpuInfo, ...]]:
    """Read the NVIDIA driver stack and every NVIDIA GPU through NVML.

    Args:
        backend: NVML access (``RealNvml()`` on a real machine, ``ReplayNvml`` in tests).
        timeout_s: the longest the whole probe may take; NVML is abandoned after it.

    Returns:
        The driver stack (its ``state`` says whether NVML could be used and, if not, why,
        with a ``hint``) and one :class:`GpuInfo` per GPU NVML counts, in NVML index order.
    """
    outcome: list[tuple[DriverStack, tuple[GpuInfo, ...]]] = []

    def work() -> None:
        outcome.append(probe_nvidia_unbounded(backend))

    worker = threading.Thread(target=work, name="dlready-nvml-probe", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive() or not outcome:
        # The worker still owns NVML; shutting it down from here could block as well.
        return stack_timed_out(timeout_s), ()
    return outcome[0]


def probe_nvidia_unbounded(backend: NvmlBackend) -> tuple[DriverStack, tuple[GpuInfo, ...]]:
    """:func:`probe_nvidia` without its time limit, for a caller that bounds it another way (a
    child process that is killed at the deadline)."""
    try:
        return _probe_blocking(backend)
    except Exception as exc:  # noqa: BLE001  # a probe bug degrades the report, never crashes it
        return _stack_failed(f"internal error in the NVIDIA probe: {exc!r}"), ()


def sample_gpu_health(backend: NvmlBackend, index: int) -> GpuHealthSample:
    """Temperature, power draw, current SM clock and clock-event reasons of one GPU.

    The backend must already be initialised. Each field is None when NVML cannot read it.
    This call is not bounded by a timeout: a caller sampling a GPU that may hang should call
    it from a worker thread.
    ``nvidia-smi --query-gpu=temperature.gpu,power.draw,clocks.sm,clocks_event_reasons.active``
    Values outside what hardware produces (``dlready.plausibility``) are None as well.
    """

    missing_functions: set[str] = set()

    def value(function: str, *args: Any) -> Any:
        try:
            return backend.call(function, index, *args)
        except NvmlCallError as err:
            if err.error_class == "NVMLError_FunctionNotFound":
                missing_functions.add(function)
            return None

    temperature = value("nvmlDeviceGetTemperature", NVML_TEMPERATURE_GPU)
    power_mw = value("nvmlDeviceGetPowerUsage")
    sm_clock = value("nvmlDeviceGetClockInfo", NVML_CLOCK_SM)
    reasons = value("nvmlDeviceGetCurrentClocksEventReasons")
    if "nvmlDeviceGetCurrentClocksEventReasons" in missing_functions:
        reasons = value("nvmlDeviceGetCurrentClocksThrottleReasons")  # drivers before R535
    draw_w = _milliwatts_to_watts(power_mw) if isinstance(power_mw, int) else None
    # A sentinel (a temperature of 2^32-5) is no reading: None, like a failed call.
    return GpuHealthSample(
        temperature_c=plausible_or_none(_as_float(temperature), GPU_RANGES["temperature_c"]),
        power_draw_w=plausible_or_none(draw_w, GPU_RANGES["power_draw_w"]),
        sm_clock_mhz=plausible_or_none(_as_float(sm_clock), GPU_RANGES["max_sm_clock_mhz"]),
        clock_event_reasons=decode_clock_event_reasons(reasons)
        if isinstance(reasons, int)
        else None,
    )


def decode_clock_event_reasons(bitmask: int) -> tuple[str, ...]:
    """Names of the active clock-event (throttle) reasons in an NVML bitmask.

    Bits dlready does not know are kept as ``unknown_0x...`` rather than dropped.
    """
    names = [name for name, _, bit in CLOCK_EVENT_REASONS if bitmask & bit]
    known = 0
    for _, _, bit in CLOCK_EVENT_REASONS:
        known |= bit
    unknown = bitmask & ~known
    bit = 1
    while unknown:
        if unknown & bit:
            names.append(f"unknown_0x{bit:x}")
            unknown &= ~bit
        bit <<= 1
    return tuple(names)


def cuda_version_text(cuda_driver_version: int) -> str:
    """NVML's CUDA driver version integer as text: 13000 -> "13.0", 12020 -> "12.2"."""
    major, rest = divmod(cuda_driver_version, 1000)
    return f"{major}.{rest // 10}"


# --- the blocking probe (runs in the worker thread) --------------------------------------------


def _probe_blocking(backend: NvmlBackend) -> tuple[DriverStack, tuple[GpuInfo, ...]]:
    try:
        backend.init()
    except NvmlCallError as err:
        return _stack_from_init_error(err), ()
    try:
        return _read_stack_and_gpus(backend)
    finally:
        # The readings are taken; a failing shutdown changes none of them.
        with contextlib.suppress(NvmlCallError):
            backend.shutdown()


def _read_stack_and_gpus(backend: NvmlBackend) -> tuple[DriverStack, tuple[GpuInfo, ...]]:
    system = _Caller(backend, index=None)
    driver_version = system.read("nvmlSystemGetDriverVersion", convert=str)
    cuda_version = system.read("nvmlSystemGetCudaDriverVersion", convert=cuda_version_text)
    library_version = system.read("nvmlSystemGetNVMLVersion", convert=str)
    # A sentinel count (2^32-1) would send the loop below through billions of indices.
    device_count = screen(system.read("nvmlDeviceGetCount", convert=int), DEVICE_COUNT)

    def stack(state: StackState, reason: str | None = None, hint: str | None = None) -> DriverStack:
        return DriverStack(
            vendor=GpuVendor.NVIDIA,
            state=state,
            reason=reason,
            hint=hint,
            driver_version=driver_version,
            cuda_driver_version=cuda_version,
            library_version=library_version,
            device_count=device_count,
        )

    if device_count.value is None:
        return stack(StackState.FAILED, f"NVML could not count the GPUs: {device_count.reason}"), ()
    gpus = tuple(_read_gpu(backend, index) for index in range(device_count.value))
    if not gpus:
        return stack(StackState.OK, "the NVIDIA driver is loaded but NVML sees no GPU"), ()
    lost = [gpu.index for gpu in gpus if gpu.error]
    if lost:
        return stack(StackState.OK, f"GPU(s) {', '.join(map(str, lost))} could not be read"), gpus
    return stack(StackState.OK), gpus


def _read_gpu(backend: NvmlBackend, index: int) -> GpuInfo:
    try:
        backend.call("nvmlDeviceGetHandleByIndex", index)
    except NvmlCallError as err:
        if err.error_class in _GPU_GONE_ERRORS:
            return _lost_gpu(index, f"NVML cannot open GPU {index}: {err}")
        hint = _HANDLE_ERROR_HINTS.get(err.error_class, _OTHER_INIT_FAILURE_HINT)
        return GpuInfo(
            index=index,
            vendor=GpuVendor.NVIDIA,
            error=f"NVML cannot open GPU {index}: {err}; {hint}",
        )
    gpu = _Caller(backend, index)
    name = gpu.read("nvmlDeviceGetName", convert=str)
    if gpu.gone_reason():
        return _lost_gpu(index, f"GPU {index} does not answer: {name.reason}")

    memory: Reading[Any] = gpu.read("nvmlDeviceGetMemoryInfo")
    power_range: Reading[Any] = gpu.read("nvmlDeviceGetPowerManagementLimitConstraints")
    cores = gpu.read("nvmlDeviceGetNumGpuCores", convert=int)
    max_sm_clock = gpu.read("nvmlDeviceGetMaxClockInfo", NVML_CLOCK_SM, convert=float)
    info = GpuInfo(
        index=index,
        vendor=GpuVendor.NVIDIA,
        name=name,
        uuid=gpu.read("nvmlDeviceGetUUID", convert=str),
        pci_bus_id=gpu.read("nvmlDeviceGetPciInfo", convert=lambda pci: str(pci["busId"])),
        architecture=gpu.read("nvmlDeviceGetArchitecture", convert=_architecture_name),
        memory_total_bytes=_derive(memory, lambda m: int(m["total"])),
        memory_free_bytes=_derive(memory, lambda m: int(m["free"])),
        compute_capability=gpu.read(
            "nvmlDeviceGetCudaComputeCapability", convert=lambda cc: f"{cc[0]}.{cc[1]}"
        ),
        cuda_cores=cores,
        max_sm_clock_mhz=max_sm_clock,
        max_memory_clock_mhz=gpu.read("nvmlDeviceGetMaxClockInfo", NVML_CLOCK_MEM, convert=float),
        memory_bus_width_bits=gpu.read("nvmlDeviceGetMemoryBusWidth", convert=int),
        fp32_peak_tflops=_fp32_peak_tflops(cores, max_sm_clock),
        power_limit_enforced_w=gpu.read(
            "nvmlDeviceGetEnforcedPowerLimit", convert=_milliwatts_to_watts
        ),
        power_limit_default_w=gpu.read(
            "nvmlDeviceGetPowerManagementDefaultLimit", convert=_milliwatts_to_watts
        ),
        power_limit_min_w=_derive(power_range, lambda r: _milliwatts_to_watts(r[0])),
        power_limit_max_w=_derive(power_range, lambda r: _milliwatts_to_watts(r[1])),
        power_draw_w=gpu.read("nvmlDeviceGetPowerUsage", convert=_milliwatts_to_watts),
        temperature_c=gpu.read("nvmlDeviceGetTemperature", NVML_TEMPERATURE_GPU, convert=float),
        temperature_slowdown_c=gpu.read(
            "nvmlDeviceGetTemperatureThreshold", NVML_TEMPERATURE_THRESHOLD_SLOWDOWN, convert=float
        ),
        temperature_shutdown_c=gpu.read(
            "nvmlDeviceGetTemperatureThreshold", NVML_TEMPERATURE_THRESHOLD_SHUTDOWN, convert=float
        ),
        fan_speed_percent=gpu.read("nvmlDeviceGetFanSpeed", convert=float),
        clock_event_reasons=_read_clock_event_reasons(gpu),
        pcie_generation_current=gpu.read("nvmlDeviceGetCurrPcieLinkGeneration", convert=int),
        pcie_generation_max=gpu.read("nvmlDeviceGetMaxPcieLinkGeneration", convert=int),
        pcie_width_current=gpu.read("nvmlDeviceGetCurrPcieLinkWidth", convert=int),
        pcie_width_max=gpu.read("nvmlDeviceGetMaxPcieLinkWidth", convert=int),
        mig_mode_enabled=gpu.read("nvmlDeviceGetMigMode", convert=_current_mode_enabled),
        persistence_mode_enabled=gpu.read(
            "nvmlDeviceGetPersistenceMode", convert=lambda mode: mode == NVML_FEATURE_ENABLED
        ),
        ecc_mode_enabled=gpu.read("nvmlDeviceGetEccMode", convert=_current_mode_enabled),
    )
    gone = gpu.gone_reason()
    if gone:
        return _lost_gpu(index, f"GPU {index} stopped answering: {gone}", info)
    return info


def _read_clock_event_reasons(gpu: _Caller) -> Reading[tuple[str, ...]]:
    reasons = gpu.read("nvmlDeviceGetCurrentClocksEventReasons", convert=decode_clock_event_reasons)
    if reasons.state is ReadState.UNSUPPORTED and "FunctionNotFound" in (reasons.reason or ""):
        # Drivers before R535 only have the older name of the same call.
        return gpu.read(
            "nvmlDeviceGetCurrentClocksThrottleReasons", convert=decode_clock_event_reasons
        )
    return reasons


class _Caller:
    """Makes guarded NVML calls for the system (index None) or one GPU."""

    def __init__(self, backend: NvmlBackend, index: int | None) -> None:
        self._backend = backend
        self._index = index
        self._gone: str | None = None

    def gone_reason(self) -> str | None:
        """Why the GPU stopped answering (GpuIsLost, Unknown), or None while it answers."""
        return self._gone

    def read(
        self, function: str, *args: Any, convert: Callable[[Any], T] | None = None
    ) -> Reading[T]:
        if self._gone:
            return Reading.failed(Source.NVML, f"{function} skipped: the GPU stopped answering")
        call_args = args if self._index is None else (self._index, *args)
        try:
            raw = self._backend.call(function, *call_args)
        except NvmlCallError as err:
            if self._index is not None and err.error_class in _GPU_GONE_ERRORS:
                self._gone = str(err)
            return _reading_from_error(function, err)
        return _derive(Reading.read(raw, Source.NVML), convert or _identity)


def _identity(value: Any) -> Any:
    return value


def _reading_from_error(function: str, err: NvmlCallError) -> Reading[Any]:
    if err.error_class == "NVMLError_NotSupported":
        return Reading.unsupported(
            Source.NVML, f"{function}: not supported on this GPU or driver (NVMLError_NotSupported)"
        )
    if err.error_class == "NVMLError_FunctionNotFound":
        return Reading.unsupported(
            Source.NVML, f"{function}: missing from this driver's NVML (NVMLError_FunctionNotFound)"
        )
    return Reading.failed(Source.NVML, f"{function}: {err.error_class}: {err.message}")


def _derive(reading: Reading[T], convert: Callable[[T], U]) -> Reading[U]:
    """Apply ``convert`` to a read value; a value of an unexpected shape is a failed reading."""
    if reading.value is None or reading.state is not ReadState.READ:
        return reading.without_value()
    try:
        return Reading(value=convert(reading.value), source=reading.source)
    except (TypeError, ValueError, KeyError, IndexError) as exc:
        return Reading.failed(reading.source, f"unexpected value {reading.value!r}: {exc}")


def _fp32_peak_tflops(cores: Reading[int], max_sm_clock_mhz: Reading[float]) -> Reading[float]:
    if cores.value is None:
        return Reading.unsupported(
            Source.DERIVED, f"needs the CUDA core count, which NVML did not give: {cores.reason}"
        )
    if max_sm_clock_mhz.value is None:
        return Reading.unsupported(
            Source.DERIVED,
            f"needs the maximum SM clock, which NVML did not give: {max_sm_clock_mhz.reason}",
        )
    # One fused multiply-add (2 FLOPs) per CUDA core per clock.
    flops = 2 * cores.value * max_sm_clock_mhz.value * 1e6
    return Reading.read(round(flops / 1e12, 2), Source.DERIVED)


def _milliwatts_to_watts(milliwatts: Any) -> float:
    return int(milliwatts) / _MILLIWATTS_PER_WATT


def _as_float(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _architecture_name(code: Any) -> str:
    return ARCHITECTURE_NAMES.get(int(code), f"unknown ({int(code)})")


def _current_mode_enabled(modes: Sequence[int]) -> bool:
    """NVML returns (current, pending) for ECC and MIG; the current one counts."""
    return modes[0] == NVML_FEATURE_ENABLED


def _lost_gpu(index: int, message: str, info: GpuInfo | None = None) -> GpuInfo:
    error = f"{message}; {_LOST_GPU_HINT}"
    if info is None:
        return GpuInfo(index=index, vendor=GpuVendor.NVIDIA, error=error)
    return msgspec.structs.replace(info, error=error)


def _stack_from_init_error(err: NvmlCallError) -> DriverStack:
    state, reason, hint = _INIT_FAILURES.get(
        err.error_class,
        (StackState.FAILED, "NVML could not be initialised", _OTHER_INIT_FAILURE_HINT),
    )
    return DriverStack(
        vendor=GpuVendor.NVIDIA,
        state=state,
        reason=f"{reason} ({err.error_class}: {err.message})",
        hint=hint,
    )


def _stack_failed(reason: str) -> DriverStack:
    return DriverStack(
        vendor=GpuVendor.NVIDIA,
        state=StackState.FAILED,
        reason=reason,
        hint=_OTHER_INIT_FAILURE_HINT,
    )


def stack_timed_out(timeout_s: float) -> DriverStack:
    return DriverStack(
        vendor=GpuVendor.NVIDIA,
        state=StackState.TIMED_OUT,
        reason=f"NVML did not answer within {timeout_s:g} s; GPU readings were skipped",
        hint="A hung NVML usually means a hung GPU or driver: check `nvidia-smi` and `dmesg` "
        "(Xid errors); a GPU reset or a reboot may be needed.",
    )
