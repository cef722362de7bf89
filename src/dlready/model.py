"""The typed, pure data model of one machine.

Every probe fills a :class:`MachineSnapshot`; every renderer and decision function reads one.
Nothing here touches hardware or imports psutil, pynvml, rich or torch.

Each reading is a :class:`Reading`: a value, where it came from (:class:`Source`), and a state
(:class:`ReadState`). A reading that could not be taken keeps the reason, so a report can say
*why* a value is missing instead of guessing. Units are in field names (``_bytes``, ``_mhz``,
``_w``, ``_c``) and conversions happen once, at the probe boundary.
"""

from __future__ import annotations

import enum
import functools
import math
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import msgspec
from msgspec import Struct, field

T = TypeVar("T")
U = TypeVar("U")


class StrEnum(str, enum.Enum):
    """``enum.StrEnum`` for Python 3.10: members compare and print as their values."""

    def __str__(self) -> str:
        return str(self.value)


class Source(StrEnum):
    """Where a reading came from."""

    NVML = "nvml"
    SYSFS = "sysfs"
    PROCFS = "procfs"
    PSUTIL = "psutil"
    PY_CPUINFO = "py-cpuinfo"
    SYSCTL = "sysctl"
    DMI = "dmi"
    PLATFORM = "platform"
    PACKAGE_METADATA = "package-metadata"
    USER = "user"
    ENVIRONMENT = "environment"
    DERIVED = "derived"
    PROGRAM = "program"
    """The output of an external program (``nvcc --version``), run through probes/tools_gateway."""
    FILE = "file"
    NONE = "none"


class ReadState(StrEnum):
    """Whether a reading was taken."""

    READ = "read"
    UNSUPPORTED = "unsupported"
    FAILED = "failed"


class Reading(Struct, Generic[T], frozen=True):
    """One measured value with its provenance.

    A ``None`` value with state ``read`` means the probe looked and found nothing to report
    (for example, no cgroup memory limit is set).
    """

    value: T | None
    source: Source
    state: ReadState = ReadState.READ
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """True when the value was read and is not empty."""
        return self.state is ReadState.READ and self.value is not None

    @classmethod
    def read(cls, value: T | None, source: Source) -> Reading[T]:
        """A successful reading."""
        return cls(value=value, source=source)

    @classmethod
    def unsupported(cls, source: Source, reason: str) -> Reading[T]:
        """The source does not offer this value on this machine."""
        return cls(value=None, source=source, state=ReadState.UNSUPPORTED, reason=reason)

    @classmethod
    def failed(cls, source: Source, reason: str) -> Reading[T]:
        """Reading the value raised an error or timed out."""
        return cls(value=None, source=source, state=ReadState.FAILED, reason=reason)

    def without_value(self, reason: str | None = None) -> Reading[U]:
        """No value, with this reading's source, state and reason: why a value derived from
        this one is missing (the one place a failed reading is carried forward)."""
        return Reading(
            value=None, source=self.source, state=self.state, reason=reason or self.reason
        )

    def map(self, convert: Callable[[T], U]) -> Reading[U]:
        """``convert`` applied to the value; an absent value keeps its state and reason."""
        if self.value is None:
            return self.without_value()
        return Reading(convert(self.value), self.source, self.state, self.reason)


def missing(reason: str = "not probed") -> Reading[Any]:
    """A placeholder for a value nobody looked for."""
    return Reading(value=None, source=Source.NONE, state=ReadState.UNSUPPORTED, reason=reason)


class OperatingSystem(StrEnum):
    """Operating system families that change what dlready does."""

    LINUX = "linux"
    WINDOWS = "windows"
    MACOS = "macos"
    OTHER = "other"


class PlatformInfo(Struct, frozen=True):
    """Operating system, Python and runtime environment."""

    os: OperatingSystem
    os_release: Reading[str] = field(default_factory=missing)
    kernel: Reading[str] = field(default_factory=missing)
    machine_arch: Reading[str] = field(default_factory=missing)
    python_version: Reading[str] = field(default_factory=missing)
    hostname: Reading[str] = field(default_factory=missing)
    in_container: Reading[bool] = field(default_factory=missing)
    is_wsl: Reading[bool] = field(default_factory=missing)
    is_virtual_machine: Reading[bool] = field(default_factory=missing)


class CpuClass(StrEnum):
    """Marketing class of a CPU, derived from its brand string."""

    CORE_I3 = "core-i3"
    CORE_I5 = "core-i5"
    CORE_I7 = "core-i7"
    CORE_I9 = "core-i9"
    CORE_ULTRA = "core-ultra"
    RYZEN_3 = "ryzen-3"
    RYZEN_5 = "ryzen-5"
    RYZEN_7 = "ryzen-7"
    RYZEN_9 = "ryzen-9"
    THREADRIPPER = "threadripper"
    XEON = "xeon"
    EPYC = "epyc"
    APPLE_M = "apple-m"
    OTHER = "other"


class CpuInfo(Struct, frozen=True):
    """The host CPU as seen by this process."""

    vendor: Reading[str] = field(default_factory=missing)
    brand: Reading[str] = field(default_factory=missing)
    architecture: Reading[str] = field(default_factory=missing)
    cpu_class: Reading[str] = field(default_factory=missing)
    physical_cores: Reading[int] = field(default_factory=missing)
    logical_cpus: Reading[int] = field(default_factory=missing)
    affinity_cpus: Reading[int] = field(default_factory=missing)
    cgroup_cpu_limit_cpus: Reading[float] = field(default_factory=missing)
    usable_cpus: Reading[float] = field(default_factory=missing)
    base_clock_mhz: Reading[float] = field(default_factory=missing)
    max_clock_mhz: Reading[float] = field(default_factory=missing)
    dl_isa_flags: Reading[tuple[str, ...]] = field(default_factory=missing)
    package_temperature_c: Reading[float] = field(default_factory=missing)


class MemoryInfo(Struct, frozen=True):
    """System memory; ``effective_total_bytes`` is what this process may really use."""

    total_bytes: Reading[int] = field(default_factory=missing)
    available_bytes: Reading[int] = field(default_factory=missing)
    swap_total_bytes: Reading[int] = field(default_factory=missing)
    cgroup_limit_bytes: Reading[int] = field(default_factory=missing)
    effective_total_bytes: Reading[int] = field(default_factory=missing)


class GpuVendor(StrEnum):
    """GPU vendors dlready knows how to detect."""

    NVIDIA = "nvidia"
    AMD = "amd"
    APPLE = "apple"
    INTEL = "intel"
    OTHER = "other"


class StackState(StrEnum):
    """State of a vendor's driver stack as a whole (NVML, ROCm, Metal)."""

    OK = "ok"
    NOT_INSTALLED = "not_installed"
    DRIVER_NOT_LOADED = "driver_not_loaded"
    VERSION_MISMATCH = "version_mismatch"
    NO_PERMISSION = "no_permission"
    TIMED_OUT = "timed_out"
    FAILED = "failed"
    NOT_APPLICABLE = "not_applicable"


class DriverStack(Struct, frozen=True):
    """One vendor's driver and management library (for NVIDIA: the driver seen through NVML)."""

    vendor: GpuVendor
    state: StackState
    reason: str | None = None
    hint: str | None = None
    driver_version: Reading[str] = field(default_factory=missing)
    cuda_driver_version: Reading[str] = field(default_factory=missing)
    library_version: Reading[str] = field(default_factory=missing)
    device_count: Reading[int] = field(default_factory=missing)


class GpuInfo(Struct, frozen=True):
    """One GPU. A GPU that failed as a whole keeps its index and carries ``error``."""

    index: int
    vendor: GpuVendor
    name: Reading[str] = field(default_factory=missing)
    uuid: Reading[str] = field(default_factory=missing)
    pci_bus_id: Reading[str] = field(default_factory=missing)
    architecture: Reading[str] = field(default_factory=missing)
    memory_total_bytes: Reading[int] = field(default_factory=missing)
    memory_free_bytes: Reading[int] = field(default_factory=missing)
    compute_capability: Reading[str] = field(default_factory=missing)
    cuda_cores: Reading[int] = field(default_factory=missing)
    max_sm_clock_mhz: Reading[float] = field(default_factory=missing)
    max_memory_clock_mhz: Reading[float] = field(default_factory=missing)
    memory_bus_width_bits: Reading[int] = field(default_factory=missing)
    fp32_peak_tflops: Reading[float] = field(default_factory=missing)
    power_limit_enforced_w: Reading[float] = field(default_factory=missing)
    power_limit_default_w: Reading[float] = field(default_factory=missing)
    power_limit_min_w: Reading[float] = field(default_factory=missing)
    power_limit_max_w: Reading[float] = field(default_factory=missing)
    power_draw_w: Reading[float] = field(default_factory=missing)
    temperature_c: Reading[float] = field(default_factory=missing)
    temperature_slowdown_c: Reading[float] = field(default_factory=missing)
    temperature_shutdown_c: Reading[float] = field(default_factory=missing)
    fan_speed_percent: Reading[float] = field(default_factory=missing)
    clock_event_reasons: Reading[tuple[str, ...]] = field(default_factory=missing)
    pcie_generation_current: Reading[int] = field(default_factory=missing)
    pcie_generation_max: Reading[int] = field(default_factory=missing)
    pcie_width_current: Reading[int] = field(default_factory=missing)
    pcie_width_max: Reading[int] = field(default_factory=missing)
    mig_mode_enabled: Reading[bool] = field(default_factory=missing)
    persistence_mode_enabled: Reading[bool] = field(default_factory=missing)
    ecc_mode_enabled: Reading[bool] = field(default_factory=missing)
    error: str | None = None


class PciDisplayDevice(Struct, frozen=True):
    """A display or 3D controller on the PCI bus, seen whether or not its driver works."""

    bus_id: str
    vendor_id: str
    device_id: str
    driver: str | None = None


class PowerSupplyInfo(Struct, frozen=True):
    """The power supply. Software cannot read it, except DMI type 39 on some servers."""

    declared_capacity_w: Reading[float] = field(default_factory=missing)
    dmi_capacity_w: Reading[float] = field(default_factory=missing)

    @property
    def capacity_w(self) -> Reading[float]:
        """The capacity to judge against: the user's declaration wins over DMI."""
        if self.declared_capacity_w.ok:
            return self.declared_capacity_w
        if self.dmi_capacity_w.ok:
            return self.dmi_capacity_w
        return self.declared_capacity_w


class TorchInstall(Struct, frozen=True):
    """The installed PyTorch, read from package metadata without importing it."""

    installed: bool
    version: Reading[str] = field(default_factory=missing)
    local_variant: Reading[str] = field(default_factory=missing)
    cuda_version: Reading[str] = field(default_factory=missing)
    hip_version: Reading[str] = field(default_factory=missing)
    location: Reading[str] = field(default_factory=missing)


class ToolInfo(Struct, frozen=True):
    """One program of the build toolchain: where it is on ``PATH`` and what version it says."""

    name: str
    path: Reading[str] = field(default_factory=missing)
    version: Reading[str] = field(default_factory=missing)
    banner: Reading[str] = field(default_factory=missing)
    """The first line of its version output, as printed (``gcc (Debian 12.2.0-14) 12.2.0``)."""


class HostCompilerLimits(Struct, frozen=True):
    """The host compilers a CUDA toolkit's nvcc accepts (the check in its ``host_config.h``)."""

    gcc_max_major: int | None = None
    clang_max_major: int | None = None
    msvc_min: int | None = None
    """Lowest accepted ``_MSC_VER`` (cl.exe 19.20 is 1920), inclusive."""
    msvc_max: int | None = None
    """Highest accepted ``_MSC_VER``, inclusive."""
    origin: str = ""
    """The header read, or the table entry (with its source) used instead."""


class BuildTools(Struct, frozen=True):
    """What building a PyTorch C++/CUDA extension (``torch.utils.cpp_extension``) would use."""

    nvcc: ToolInfo = field(default_factory=lambda: ToolInfo("nvcc"))
    cuda_home_env: Reading[str] = field(default_factory=missing)
    """``$CUDA_HOME`` as set (read first by torch)."""
    cuda_path_env: Reading[str] = field(default_factory=missing)
    """``$CUDA_PATH`` as set (read when CUDA_HOME is not; Windows installers set it)."""
    cuda_home: Reading[str] = field(default_factory=missing)
    """The toolkit folder an extension build would use, chosen as torch chooses it."""
    cuda_home_origin: Reading[str] = field(default_factory=missing)
    """How it was chosen: ``CUDA_HOME``, ``CUDA_PATH``, ``nvcc on PATH`` or ``default``."""
    cuda_home_nvcc: ToolInfo = field(default_factory=lambda: ToolInfo("nvcc"))
    """``<cuda_home>/bin/nvcc``: the compiler that build would really run."""
    cuda_home_has_headers: Reading[bool] = field(default_factory=missing)
    """``<cuda_home>/include/cuda_runtime.h`` exists."""
    toolkit_elsewhere: Reading[str] = field(default_factory=missing)
    """A complete toolkit found where the build would not look (the fix for a wrong home)."""
    host_compiler_limits: Reading[HostCompilerLimits] = field(default_factory=missing)
    """Read from the toolkit's ``include/crt/host_config.h``; missing when unreadable."""
    host_compilers: tuple[ToolInfo, ...] = ()
    ninja: ToolInfo = field(default_factory=lambda: ToolInfo("ninja"))
    python_headers: Reading[str] = field(default_factory=missing)
    """The path of this interpreter's ``Python.h``; value None when it is not installed."""
    python_include_dir: Reading[str] = field(default_factory=missing)
    cudnn_version: Reading[str] = field(default_factory=missing)
    max_jobs_env: Reading[int] = field(default_factory=missing)
    """``$MAX_JOBS``: the parallel compile jobs torch's ninja builds run (None: unset)."""

    def compiler(self, name: str) -> ToolInfo | None:
        """The host compiler entry named ``name`` (gcc, g++, clang, cl), if it was looked for."""
        return next((tool for tool in self.host_compilers if tool.name == name), None)


class ProbeError(Struct, frozen=True):
    """A probe that failed as a whole; the rest of the report still stands."""

    probe: str
    message: str


class MachineSnapshot(Struct, frozen=True):
    """Everything dlready knows about one machine at one moment."""

    captured_at: str
    dlready_version: str
    platform: PlatformInfo
    cpu: CpuInfo
    memory: MemoryInfo
    driver_stacks: tuple[DriverStack, ...]
    gpus: tuple[GpuInfo, ...]
    power_supply: PowerSupplyInfo
    torch: TorchInstall
    pci_display_devices: Reading[tuple[PciDisplayDevice, ...]] = field(default_factory=missing)
    build: BuildTools | None = None
    """The extension build toolchain; None in snapshots saved before dlready looked for it."""
    probe_seconds: dict[str, float] = field(default_factory=dict)
    errors: tuple[ProbeError, ...] = ()

    def stack(self, vendor: GpuVendor) -> DriverStack | None:
        """The driver stack of one vendor, if it was probed."""
        for stack in self.driver_stacks:
            if stack.vendor is vendor:
                return stack
        return None


# --- JSON (de)serialisation -------------------------------------------------------------------
# Kept generic and driven by the type hints, so a new field needs no serialiser code.


_PLAIN_TYPES = (str, int, float, bool, type(None))


def to_jsonable(obj: Any) -> Any:
    """Turn a model object into plain JSON types (dicts, lists, str, numbers, bools, None)."""
    if isinstance(obj, _PLAIN_TYPES) and not isinstance(obj, enum.Enum):
        return obj
    names = _field_names(type(obj))
    if names is not None:
        return {name: to_jsonable(getattr(obj, name)) for name in names}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(item) for item in obj]
    if isinstance(obj, dict):
        return {str(key): to_jsonable(value) for key, value in obj.items()}
    return obj


_FIELD_NAMES: dict[type, tuple[str, ...] | None] = {}


def _field_names(cls: type) -> tuple[str, ...] | None:
    """A model class's field names, looked up once per class (a report has a million values)."""
    if cls not in _FIELD_NAMES:
        _FIELD_NAMES[cls] = cls.__struct_fields__ if issubclass(cls, Struct) else None
    return _FIELD_NAMES[cls]


class SnapshotFormatError(ValueError):
    """A JSON document does not match the snapshot model."""


_LARGEST_INTEGER = 2**64
"""No reading needs more than 64 bits (NVML's counters are C integers); a larger integer is
refused instead of overflowing later arithmetic."""
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")

Decoder = Callable[[Any], Any]
"""Turns one JSON value into a model value; raises :class:`_Mismatch`."""


class _Mismatch(Exception):  # noqa: N818  # internal; becomes SnapshotFormatError with its path
    """A value that does not fit; ``where`` is filled in (innermost first) on the way up."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
        self.where: list[str] = []


def from_jsonable(cls: Any, data: Any, path: str = "$") -> Any:
    """Rebuild a model object of type ``cls`` from :func:`to_jsonable` output.

    Strings lose lone UTF-16 surrogates (``"\\ud800"`` is valid JSON but cannot be printed or
    encoded); they become U+FFFD.

    Raises:
        SnapshotFormatError: naming the JSON path of the first value that does not fit.
    """
    try:
        return _decoder(cls)(data)
    except _Mismatch as exc:
        location = "".join(reversed(exc.where))
        raise SnapshotFormatError(f"{path}{location}: {exc.message}") from None


def clean_text(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD (they crash every encoder)."""
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


@functools.cache
def _decoder(cls: Any) -> Decoder:
    """The decoder of one type, built once: re-judging 10,000 GPUs must not re-read type hints
    10,000 times."""
    origin = typing.get_origin(cls)
    args = typing.get_args(cls)
    if cls is Any:
        return _identity
    if origin in (typing.Union, types.UnionType):
        return _union_decoder(args)
    if origin is tuple:
        return _tuple_decoder(_decoder(args[0]) if args else _identity)
    if origin is dict:
        return _dict_decoder(_decoder(args[1]) if len(args) == 2 else _identity)
    target = origin or cls
    if target is Reading:
        return _reading_decoder(_decoder(args[0]) if args else _identity)
    if isinstance(target, type) and issubclass(target, Struct):
        return _struct_decoder(cls, target)
    if isinstance(target, type) and issubclass(target, enum.Enum):
        return _enum_decoder(target)
    if target is float:
        return _float
    if target is int:
        return _int
    if target is str:
        return _str
    if target is bool:
        return _bool
    raise TypeError(f"cannot read type {cls!r}")  # a model field of a type this module lacks


def _identity(data: Any) -> Any:
    return data


def _union_decoder(args: tuple[Any, ...]) -> Decoder:
    optional = type(None) in args
    members = [_decoder(arg) for arg in args if arg is not type(None)]

    def decode(data: Any) -> Any:
        if data is None and optional:
            return None
        first: _Mismatch | None = None
        for member in members:
            try:
                return member(data)
            except _Mismatch as exc:  # noqa: PERF203  # try each member of the union
                first = first or exc
        raise first or _Mismatch("unexpected null")

    return decode


def _tuple_decoder(item: Decoder) -> Decoder:
    def decode(data: Any) -> Any:
        if not isinstance(data, list):
            raise _Mismatch("expected a list")
        position = 0
        try:
            result = []
            for position, value in enumerate(data):  # noqa: B007  # position names the error
                result.append(item(value))
            return tuple(result)
        except _Mismatch as exc:
            exc.where.append(f"[{position}]")
            raise

    return decode


def _dict_decoder(value_decoder: Decoder) -> Decoder:
    def decode(data: Any) -> Any:
        if not isinstance(data, dict):
            raise _Mismatch("expected an object")
        result = {}
        for key, value in data.items():
            try:
                result[clean_text(key)] = value_decoder(value)
            except _Mismatch as exc:  # noqa: PERF203  # the key names the error
                exc.where.append(f".{clean_text(key)}")
                raise
        return result

    return decode


def _struct_decoder(cls: Any, target: Any) -> Decoder:
    hints = typing.get_type_hints(target)
    bindings = dict(zip(getattr(target, "__parameters__", ()), typing.get_args(cls), strict=False))
    fields = [
        (
            f.name,
            f.required,
            _decoder(_substitute(hints[f.name], bindings)),
        )
        for f in msgspec.structs.fields(target)
    ]

    def decode(data: Any) -> Any:
        if not isinstance(data, dict):
            raise _Mismatch("expected an object")
        kwargs = {}
        for name, required, field_decoder in fields:
            if name not in data:
                if required:
                    exc = _Mismatch("missing")
                    exc.where.append(f".{name}")
                    raise exc
                continue
            try:
                kwargs[name] = field_decoder(data[name])
            except _Mismatch as exc:
                exc.where.append(f".{name}")
                raise
        return target(**kwargs)

    return decode


_SOURCES = {member.value: member for member in Source}
_STATES = {member.value: member for member in ReadState}


def _reading_decoder(value_decoder: Decoder) -> Decoder:
    """:class:`Reading` is most of a snapshot (about 30 per GPU), so it has its own decoder: a
    fast path for what ``check --json`` writes, and the careful path (same checks and messages
    as the generic one) for anything else."""
    source_decoder = _enum_decoder(Source)
    state_decoder = _enum_decoder(ReadState)

    def careful(data: Any) -> Any:
        if not isinstance(data, dict):
            raise _Mismatch("expected an object")
        field_name = "value"
        try:
            value = data.get("value")
            if value is not None:
                value = value_decoder(value)
            field_name = "source"
            if "source" not in data:
                raise _Mismatch("missing")
            source = source_decoder(data["source"])
            field_name = "state"
            state = state_decoder(data.get("state", "read"))
            field_name = "reason"
            reason = data.get("reason")
            if reason is not None:
                reason = _str(reason)
        except _Mismatch as exc:
            exc.where.append(f".{field_name}")
            raise
        return Reading(value, source, state, reason)

    def decode(data: Any) -> Any:
        try:
            source = _SOURCES[data["source"]]
            state = _STATES[data["state"]]
            reason = data["reason"]
            value = data["value"]
        except (KeyError, TypeError):  # not an object, a key missing, an unknown or odd value
            return careful(data)
        if type(reason) is not str and reason is not None:  # str subclasses differ
            return careful(data)
        if value is not None:
            try:
                value = value_decoder(value)
            except _Mismatch as exc:
                exc.where.append(".value")
                raise
        if reason is not None and not reason.isascii():
            reason = clean_text(reason)
        return Reading(value, source, state, reason)

    return decode


def _enum_decoder(target: type[enum.Enum]) -> Decoder:
    by_value = {member.value: member for member in target}
    allowed = ", ".join(str(value) for value in by_value)

    def decode(data: Any) -> Any:
        try:
            return by_value[data]
        except (KeyError, TypeError):  # TypeError: an unhashable list or object
            raise _Mismatch(f"{_shown(data)} is not one of {allowed}") from None

    return decode


def _float(data: Any) -> float:
    if isinstance(data, bool) or not isinstance(data, (int, float)):
        raise _Mismatch(f"expected a number, got {_shown(data)}")
    if isinstance(data, int) and abs(data) >= _LARGEST_INTEGER:
        raise _Mismatch(f"{_shown(data)} is out of range")
    number = float(data)
    if not math.isfinite(number):
        raise _Mismatch(f"expected a finite number, got {_shown(data)}")
    return number


def _int(data: Any) -> int:
    if not isinstance(data, int) or isinstance(data, bool):
        raise _Mismatch(f"expected int, got {_shown(data)}")
    if abs(data) >= _LARGEST_INTEGER:
        raise _Mismatch(f"{_shown(data)} is out of range (integers stop at 2^64)")
    return data


def _str(data: Any) -> str:
    if not isinstance(data, str):
        raise _Mismatch(f"expected str, got {_shown(data)}")
    return clean_text(data)


def _bool(data: Any) -> bool:
    if not isinstance(data, bool):
        raise _Mismatch(f"expected bool, got {_shown(data)}")
    return data


def _shown(data: Any) -> str:
    """A short, printable description of a JSON value for an error message."""
    if isinstance(data, int) and not isinstance(data, bool) and abs(data) >= 10**15:
        return f"a {int(math.log10(abs(data))) + 1}-digit number"
    if isinstance(data, (dict, list)):
        return "an object" if isinstance(data, dict) else "a list"
    if isinstance(data, str):
        data = clean_text(data)
        return repr(data if len(data) <= 80 else data[:77] + "...")
    return repr(data)


def _substitute(hint: Any, bindings: dict[Any, Any]) -> Any:
    """Replace type variables (``T`` in ``Reading[T]``) by their bound types."""
    if isinstance(hint, TypeVar):
        return bindings.get(hint, Any)
    args = typing.get_args(hint)
    if not args:
        return hint
    new_args = tuple(_substitute(arg, bindings) for arg in args)
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return typing.Union[new_args]  # noqa: UP007  # rebuilt from a tuple of members
    return origin[new_args] if len(new_args) > 1 else origin[new_args[0]]


# The form only: "12.0" and "100.100" pass (the latter is then screened as implausible),
# "sm_90" does not.
_CAPABILITY_PATTERN = re.compile(r"\d{1,20}\.\d{1,20}")


def snapshot_from_jsonable(data: Any) -> MachineSnapshot:
    """Rebuild a snapshot; raises :class:`SnapshotFormatError` on a malformed document."""
    snapshot: MachineSnapshot = from_jsonable(MachineSnapshot, data, "$")
    for position, gpu in enumerate(snapshot.gpus):
        capability = gpu.compute_capability.value
        if (
            gpu.compute_capability.state is ReadState.READ
            and capability is not None
            and not _CAPABILITY_PATTERN.fullmatch(capability)
        ):
            raise SnapshotFormatError(
                f"$.gpus[{position}].compute_capability.value: expected MAJOR.MINOR like "
                f'"8.6", got {capability!r}'
            )
    return snapshot
