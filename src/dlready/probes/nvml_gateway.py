"""The only module that imports ``pynvml`` (the ``nvidia-ml-py`` package).

Probes talk to NVML through an :class:`NvmlBackend`: ``init()``, ``shutdown()`` and
``call(function_name, *args)``, where ``function_name`` is the NVML C function name
(``"nvmlDeviceGetPowerUsage"``). Device functions take the GPU *index* as their first
argument; the real backend turns it into an NVML handle. Every failure is an
:class:`NvmlCallError` carrying the pynvml error class name (``"NVMLError_NotSupported"``),
so callers never see a pynvml type or an ``ImportError``.

Two backends:

- :class:`RealNvml` wraps pynvml. pynvml is imported inside ``init()``, so a missing or
  broken package, or a machine without ``libnvidia-ml.so``, is an ``NvmlCallError``.
- :class:`ReplayNvml` replays the ``nvml`` key of a fixture's ``capture.json`` and lets
  scenario tests change, fail or add calls per GPU. It answers only the calls that the
  capture recorded (with the same enum arguments), so a probe that calls something the real
  hardware was never asked raises :class:`ReplayGapError` instead of passing silently.

NVML enum values that callers pass as arguments are defined here (copied from ``nvml.h`` /
pynvml; ``tests/test_probe_nvidia.py`` checks them against the installed pynvml), so that
importing this module stays cheap and never loads pynvml.
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Mapping
from typing import Any, Protocol

# --- NVML enum values used as call arguments (nvml.h; checked against pynvml in the tests) -----

NVML_TEMPERATURE_GPU = 0
"""``nvmlTemperatureSensors_t``: the GPU die sensor."""

NVML_TEMPERATURE_THRESHOLD_SHUTDOWN = 0
NVML_TEMPERATURE_THRESHOLD_SLOWDOWN = 1
NVML_TEMPERATURE_THRESHOLD_GPU_MAX = 3

NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2

NVML_TIMEOUT_S = 10.0
"""The longest a whole NVML probe (init and every call) may take before it is abandoned as hung.
NVML init takes ~15 ms on the recorded H100/H200 servers (capture.json ``init_s``), but a cold
multi-GPU host without persistence mode takes seconds per GPU to initialise."""

NVML_FEATURE_ENABLED = 1
"""``nvmlEnableState_t`` value meaning "enabled" (ECC, persistence, MIG current mode)."""

# (our name, pynvml constant name, bit). Names follow ``nvidia-smi -q``'s "Clocks Event Reasons".
CLOCK_EVENT_REASONS: tuple[tuple[str, str, int], ...] = (
    ("gpu_idle", "nvmlClocksEventReasonGpuIdle", 0x1),
    ("applications_clocks_setting", "nvmlClocksEventReasonApplicationsClocksSetting", 0x2),
    ("sw_power_cap", "nvmlClocksEventReasonSwPowerCap", 0x4),
    ("hw_slowdown", "nvmlClocksEventReasonHwSlowdown", 0x8),
    ("sync_boost", "nvmlClocksEventReasonSyncBoost", 0x10),
    ("sw_thermal_slowdown", "nvmlClocksEventReasonSwThermalSlowdown", 0x20),
    ("hw_thermal_slowdown", "nvmlClocksEventReasonHwThermalSlowdown", 0x40),
    ("hw_power_brake_slowdown", "nvmlClocksEventReasonHwPowerBrakeSlowdown", 0x80),
    ("display_clock_setting", "nvmlClocksEventReasonDisplayClockSetting", 0x100),
)

# nvmlDeviceArchitecture_t (NVML_DEVICE_ARCH_*).
ARCHITECTURE_NAMES: Mapping[int, str] = {
    2: "Kepler",
    3: "Maxwell",
    4: "Pascal",
    5: "Volta",
    6: "Turing",
    7: "Ampere",
    8: "Ada Lovelace",
    9: "Hopper",
    10: "Blackwell",
}

# System-level functions: called without a device index.
_SYSTEM_FUNCTIONS = frozenset(
    {
        "nvmlSystemGetDriverVersion",
        "nvmlSystemGetCudaDriverVersion",
        "nvmlSystemGetNVMLVersion",
        "nvmlDeviceGetCount",
    }
)
_HANDLE_FUNCTION = "nvmlDeviceGetHandleByIndex"


class NvmlCallError(Exception):
    """An NVML call (or loading NVML) failed.

    Attributes:
        error_class: pynvml's error class name, e.g. ``"NVMLError_NotSupported"``; for a
            failure outside NVML itself, the Python exception's class name (``"ImportError"``).
        message: NVML's text for the error (``"Not Supported"``).
    """

    def __init__(self, error_class: str, message: str) -> None:
        super().__init__(f"{error_class}: {message}")
        self.error_class = error_class
        self.message = message


class ReplayGapError(LookupError):
    """A replayed probe made a call that the recording does not hold."""


class NvmlBackend(Protocol):
    """What the NVIDIA probe needs from NVML."""

    def init(self) -> None:
        """Load and initialise NVML; raises :class:`NvmlCallError`."""
        ...

    def shutdown(self) -> None:
        """Release NVML after a successful :meth:`init`; raises :class:`NvmlCallError`."""
        ...

    def call(self, function_name: str, *args: Any) -> Any:
        """Call an NVML function by its C name and return plain Python values.

        Device functions take the GPU index first (``call("nvmlDeviceGetName", 0)``).
        Structures come back as dicts, pairs as lists, strings as ``str``.

        Raises:
            NvmlCallError: the call failed; ``error_class`` names the NVML error.
        """
        ...


def _is_device_function(function_name: str) -> bool:
    return function_name.startswith("nvmlDevice") and function_name not in _SYSTEM_FUNCTIONS


def _plain(value: Any) -> Any:
    """Turn pynvml results (ctypes structures, bytes, tuples) into JSON-like values."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    fields = getattr(value, "_fields_", None)  # a ctypes structure (without importing ctypes)
    if fields is not None:
        return {name: _plain(getattr(value, name)) for name, *_ in fields}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def preload() -> None:
    """Import pynvml now (about 10 ms), if it is installed; see ``collect._IsolatedNvidiaProbe``."""
    with contextlib.suppress(Exception):  # RealNvml.init reports a broken package
        import pynvml  # noqa: F401


class RealNvml:
    """NVML on this machine, through pynvml (imported on :meth:`init`)."""

    def __init__(self) -> None:
        self._pynvml: Any = None
        self._handles: dict[int, Any] = {}

    def init(self) -> None:
        """Import pynvml and call ``nvmlInit``."""
        try:
            import pynvml
        except ImportError as exc:
            raise NvmlCallError("ImportError", f"cannot import pynvml: {exc}") from exc
        try:
            pynvml.nvmlInit()
        except pynvml.NVMLError as exc:
            raise NvmlCallError(type(exc).__name__, str(exc)) from exc
        except Exception as exc:  # any loader failure must become a finding
            raise NvmlCallError(type(exc).__name__, str(exc)) from exc
        self._pynvml = pynvml
        self._handles = {}

    def shutdown(self) -> None:
        """Call ``nvmlShutdown``."""
        pynvml = self._pynvml
        if pynvml is None:
            return
        self._pynvml = None
        self._handles = {}
        try:
            pynvml.nvmlShutdown()
        except Exception as exc:  # reported to the caller as NvmlCallError
            raise NvmlCallError(type(exc).__name__, str(exc)) from exc

    def call(self, function_name: str, *args: Any) -> Any:
        """Call ``pynvml.<function_name>``; see :meth:`NvmlBackend.call`."""
        pynvml = self._pynvml
        if pynvml is None:
            raise NvmlCallError("NVMLError_Uninitialized", "NVML is not initialised")
        function = getattr(pynvml, function_name, None)
        if function is None:
            raise NvmlCallError(
                "NVMLError_FunctionNotFound", f"pynvml has no {function_name} (package too old)"
            )
        try:
            if function_name == _HANDLE_FUNCTION:
                (index,) = args
                self._handles[index] = pynvml.nvmlDeviceGetHandleByIndex(index)
                return None
            if _is_device_function(function_name):
                index, *rest = args
                handle = self._handles.get(index)
                if handle is None:
                    handle = self._handles[index] = pynvml.nvmlDeviceGetHandleByIndex(index)
                return _plain(function(handle, *rest))
            return _plain(function(*args))
        except Exception as exc:  # NVMLError_* and ctypes errors alike
            raise NvmlCallError(type(exc).__name__, str(exc)) from exc


# --- Replay -------------------------------------------------------------------------------------

# Capture keys that stand for a call with enum arguments: capture key -> (function, extra args).
CAPTURE_CALLS_WITH_ARGS: Mapping[str, tuple[str, tuple[int, ...]]] = {
    "nvmlDeviceGetTemperature": ("nvmlDeviceGetTemperature", (NVML_TEMPERATURE_GPU,)),
    "temp_threshold_slowdown": (
        "nvmlDeviceGetTemperatureThreshold",
        (NVML_TEMPERATURE_THRESHOLD_SLOWDOWN,),
    ),
    "temp_threshold_shutdown": (
        "nvmlDeviceGetTemperatureThreshold",
        (NVML_TEMPERATURE_THRESHOLD_SHUTDOWN,),
    ),
    "temp_threshold_gpu_max": (
        "nvmlDeviceGetTemperatureThreshold",
        (NVML_TEMPERATURE_THRESHOLD_GPU_MAX,),
    ),
    "max_clock_sm": ("nvmlDeviceGetMaxClockInfo", (NVML_CLOCK_SM,)),
    "max_clock_mem": ("nvmlDeviceGetMaxClockInfo", (NVML_CLOCK_MEM,)),
    "max_clock_graphics": ("nvmlDeviceGetMaxClockInfo", (NVML_CLOCK_GRAPHICS,)),
    # Not in the captures; scenario tests (``smoke --burn``) add it with an override.
    "clock_sm": ("nvmlDeviceGetClockInfo", (NVML_CLOCK_SM,)),
}
_CALL_TO_CAPTURE_KEY = {call: key for key, call in CAPTURE_CALLS_WITH_ARGS.items()}
_FUNCTIONS_WITH_ARGS = frozenset(function for function, _ in CAPTURE_CALLS_WITH_ARGS.values())

# capture.json's system-level keys.
_SYSTEM_CAPTURE_KEYS: Mapping[str, str] = {
    "nvmlSystemGetDriverVersion": "driver",
    "nvmlSystemGetCudaDriverVersion": "cuda_driver",
    "nvmlSystemGetNVMLVersion": "nvml_version",
}


def recorded_error(error_class: str, message: str) -> dict[str, str]:
    """A failing call in the capture format, for scenario overrides."""
    return {"error": error_class, "msg": message}


def _raise_if_error(value: Any) -> Any:
    if isinstance(value, dict) and set(value) <= {"error", "msg"} and "error" in value:
        raise NvmlCallError(str(value["error"]), str(value.get("msg", "")))
    return value


class ReplayNvml:
    """NVML answers replayed from a recording (a ``capture.json`` ``nvml`` object).

    Per GPU, keys are NVML function names, or the capture's names for calls with enum
    arguments (:data:`CAPTURE_CALLS_WITH_ARGS`). A value ``{"error": class, "msg": text}``
    replays a failure. A top-level ``{"error": ...}`` replays a failed ``nvmlInit``.

    Instances are immutable; the ``with_*`` methods return changed copies. ``calls`` and
    ``shutdown_count`` record how a probe used the replay.
    """

    def __init__(self, capture: Mapping[str, Any]) -> None:
        self._capture: dict[str, Any] = copy.deepcopy(dict(capture))
        self._initialised = False
        self.calls: list[tuple[Any, ...]] = []
        self.shutdown_count = 0

    @classmethod
    def from_capture(cls, capture: Mapping[str, Any]) -> ReplayNvml:
        """Replay the ``nvml`` object of a fixture's ``capture.json``."""
        return cls(capture)

    @classmethod
    def failing_init(cls, error_class: str, message: str) -> ReplayNvml:
        """A machine where ``nvmlInit`` fails with the given NVML error."""
        return cls(recorded_error(error_class, message))

    @property
    def gpu_count(self) -> int:
        """Number of recorded GPUs."""
        return len(self._capture.get("gpus", []))

    def with_gpu_count(self, count: int, template_index: int = 0) -> ReplayNvml:
        """A copy with ``count`` GPUs: the existing ones, then copies of one template GPU."""
        capture = copy.deepcopy(self._capture)
        gpus = capture["gpus"][:count]
        template = capture["gpus"][template_index]
        gpus += [copy.deepcopy(template) for _ in range(count - len(gpus))]
        capture["gpus"] = gpus
        capture["count"] = count
        return ReplayNvml(capture)

    def with_gpu_overrides(
        self, overrides: Mapping[str, Any], index: int | None = None
    ) -> ReplayNvml:
        """A copy where one GPU (or every GPU, when ``index`` is None) answers differently.

        Keys are capture keys; a value of :func:`recorded_error` makes that call fail.
        """
        capture = copy.deepcopy(self._capture)
        targets = range(len(capture["gpus"])) if index is None else [index]
        for target in targets:
            capture["gpus"][target].update(copy.deepcopy(dict(overrides)))
        return ReplayNvml(capture)

    def with_system_overrides(self, overrides: Mapping[str, Any]) -> ReplayNvml:
        """A copy with changed system keys (``driver``, ``cuda_driver``, ``nvml_version``)."""
        capture = copy.deepcopy(self._capture)
        capture.update(copy.deepcopy(dict(overrides)))
        return ReplayNvml(capture)

    def init(self) -> None:
        """Replay ``nvmlInit``."""
        self.calls.append(("nvmlInit",))
        if "error" in self._capture:
            raise NvmlCallError(str(self._capture["error"]), str(self._capture.get("msg", "")))
        self._initialised = True

    def shutdown(self) -> None:
        """Replay ``nvmlShutdown``."""
        self.calls.append(("nvmlShutdown",))
        self.shutdown_count += 1
        self._initialised = False

    def call(self, function_name: str, *args: Any) -> Any:
        """Answer one call from the recording; see :meth:`NvmlBackend.call`."""
        self.calls.append((function_name, *args))
        if not self._initialised:
            raise NvmlCallError("NVMLError_Uninitialized", "Uninitialized")
        if function_name == "nvmlDeviceGetCount":
            return copy.deepcopy(_raise_if_error(self._capture.get("count", self.gpu_count)))
        if function_name in _SYSTEM_CAPTURE_KEYS:
            system_key = _SYSTEM_CAPTURE_KEYS[function_name]
            if system_key not in self._capture:
                raise ReplayGapError(f"the recording has no {system_key!r} for {function_name}")
            return copy.deepcopy(_raise_if_error(self._capture[system_key]))
        if not _is_device_function(function_name) or not args:
            raise ReplayGapError(f"{function_name}{args!r} is not a call the recording can answer")
        index, *rest = args
        gpus = self._capture.get("gpus", [])
        if not isinstance(index, int) or not 0 <= index < len(gpus):
            raise NvmlCallError("NVMLError_InvalidArgument", "Invalid Argument")
        gpu = gpus[index]
        if function_name == _HANDLE_FUNCTION:
            _raise_if_error(gpu.get(_HANDLE_FUNCTION))
            return None
        key = _CALL_TO_CAPTURE_KEY.get((function_name, tuple(rest)))
        if key is None:
            if rest or function_name in _FUNCTIONS_WITH_ARGS:
                raise ReplayGapError(f"the recording holds no {function_name}{tuple(rest)!r}")
            key = function_name
        if key not in gpu:
            raise ReplayGapError(f"GPU {index}: the recording holds no {key}")
        return copy.deepcopy(_raise_if_error(gpu[key]))
