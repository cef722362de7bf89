"""The typed, pure data model of one machine.

Every probe fills a :class:`MachineSnapshot`; every renderer and decision function reads one.
Nothing here touches hardware or imports psutil, pynvml, rich or torch.

Each reading is a :class:`Reading`: a value, where it came from (:class:`Source`), and a state
(:class:`ReadState`). A reading that could not be taken keeps the reason, so a report can say
*why* a value is missing instead of guessing. Units are in field names (``_bytes``, ``_mhz``,
``_w``, ``_c``) and conversions happen once, at the probe boundary.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

T = TypeVar("T")


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


@dataclass(frozen=True)
class Reading(Generic[T]):
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


def missing(reason: str = "not probed") -> Reading[Any]:
    """A placeholder for a value nobody looked for."""
    return Reading(value=None, source=Source.NONE, state=ReadState.UNSUPPORTED, reason=reason)


class OperatingSystem(StrEnum):
    """Operating system families that change what dlready does."""

    LINUX = "linux"
    WINDOWS = "windows"
    MACOS = "macos"
    OTHER = "other"


@dataclass(frozen=True)
class PlatformInfo:
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


@dataclass(frozen=True)
class CpuInfo:
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


@dataclass(frozen=True)
class MemoryInfo:
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


@dataclass(frozen=True)
class DriverStack:
    """One vendor's driver and management library (for NVIDIA: the driver seen through NVML)."""

    vendor: GpuVendor
    state: StackState
    reason: str | None = None
    hint: str | None = None
    driver_version: Reading[str] = field(default_factory=missing)
    cuda_driver_version: Reading[str] = field(default_factory=missing)
    library_version: Reading[str] = field(default_factory=missing)
    device_count: Reading[int] = field(default_factory=missing)


@dataclass(frozen=True)
class GpuInfo:
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


@dataclass(frozen=True)
class PciDisplayDevice:
    """A display or 3D controller on the PCI bus, seen whether or not its driver works."""

    bus_id: str
    vendor_id: str
    device_id: str
    driver: str | None = None


@dataclass(frozen=True)
class PowerSupplyInfo:
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


@dataclass(frozen=True)
class TorchInstall:
    """The installed PyTorch, read from package metadata without importing it."""

    installed: bool
    version: Reading[str] = field(default_factory=missing)
    local_variant: Reading[str] = field(default_factory=missing)
    cuda_version: Reading[str] = field(default_factory=missing)
    hip_version: Reading[str] = field(default_factory=missing)
    location: Reading[str] = field(default_factory=missing)


@dataclass(frozen=True)
class ToolInfo:
    """One program of the build toolchain: where it is on ``PATH`` and what version it says."""

    name: str
    path: Reading[str] = field(default_factory=missing)
    version: Reading[str] = field(default_factory=missing)
    banner: Reading[str] = field(default_factory=missing)
    """The first line of its version output, as printed (``gcc (Debian 12.2.0-14) 12.2.0``)."""


@dataclass(frozen=True)
class HostCompilerLimits:
    """The host compilers a CUDA toolkit's nvcc accepts (the check in its ``host_config.h``)."""

    gcc_max_major: int | None = None
    clang_max_major: int | None = None
    msvc_min: int | None = None
    """Lowest accepted ``_MSC_VER`` (cl.exe 19.20 is 1920), inclusive."""
    msvc_max: int | None = None
    """Highest accepted ``_MSC_VER``, inclusive."""
    origin: str = ""
    """The header read, or the table entry (with its source) used instead."""


@dataclass(frozen=True)
class BuildTools:
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


@dataclass(frozen=True)
class ProbeError:
    """A probe that failed as a whole; the rest of the report still stands."""

    probe: str
    message: str


@dataclass(frozen=True)
class MachineSnapshot:
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


def to_jsonable(obj: Any) -> Any:
    """Turn a model object into plain JSON types (dicts, lists, str, numbers, bools, None)."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, enum.Enum):
        return obj.value
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(item) for item in obj]
    if isinstance(obj, dict):
        return {str(key): to_jsonable(value) for key, value in obj.items()}
    return obj


class SnapshotFormatError(ValueError):
    """A JSON document does not match the snapshot model."""


def from_jsonable(cls: Any, data: Any, path: str = "$") -> Any:
    """Rebuild a model object of type ``cls`` from :func:`to_jsonable` output.

    Raises:
        SnapshotFormatError: naming the JSON path of the first value that does not fit.
    """
    origin = typing.get_origin(cls)
    args = typing.get_args(cls)
    if cls is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        if data is None and type(None) in args:
            return None
        non_none = [arg for arg in args if arg is not type(None)]
        errors = []
        for arg in non_none:
            try:
                return from_jsonable(arg, data, path)
            except SnapshotFormatError as exc:  # noqa: PERF203  # try each member of the union
                errors.append(str(exc))
        raise SnapshotFormatError(errors[0] if errors else f"{path}: unexpected null")
    if origin is tuple:
        if not isinstance(data, list):
            raise SnapshotFormatError(f"{path}: expected a list")
        item_type = args[0] if args else Any
        return tuple(from_jsonable(item_type, item, f"{path}[{i}]") for i, item in enumerate(data))
    if origin is dict:
        if not isinstance(data, dict):
            raise SnapshotFormatError(f"{path}: expected an object")
        value_type = args[1] if len(args) == 2 else Any
        return {k: from_jsonable(value_type, v, f"{path}.{k}") for k, v in data.items()}
    target = origin or cls
    if dataclasses.is_dataclass(target):
        return _dataclass_from_jsonable(cls, target, data, path)
    if isinstance(target, type) and issubclass(target, enum.Enum):
        try:
            return target(data)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in target)
            raise SnapshotFormatError(f"{path}: {data!r} is not one of {allowed}") from None
    if target is float:
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise SnapshotFormatError(f"{path}: expected a number, got {data!r}")
        try:
            number = float(data)
        except OverflowError:
            raise SnapshotFormatError(f"{path}: {data!r} is out of range") from None
        if not math.isfinite(number):
            raise SnapshotFormatError(f"{path}: expected a finite number, got {data!r}")
        return number
    if target in (int, str, bool):
        if not isinstance(data, target) or (target is int and isinstance(data, bool)):
            raise SnapshotFormatError(f"{path}: expected {target.__name__}, got {data!r}")
        return data
    raise SnapshotFormatError(f"{path}: cannot read type {cls!r}")


def _dataclass_from_jsonable(cls: Any, target: Any, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise SnapshotFormatError(f"{path}: expected an object")
    hints = typing.get_type_hints(target)
    type_vars = getattr(target, "__parameters__", ())
    bindings = dict(zip(type_vars, typing.get_args(cls), strict=False))
    kwargs = {}
    for f in dataclasses.fields(target):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise SnapshotFormatError(f"{path}.{f.name}: missing")
            continue
        hint = _substitute(hints[f.name], bindings)
        kwargs[f.name] = from_jsonable(hint, data[f.name], f"{path}.{f.name}")
    return target(**kwargs)


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


_CAPABILITY_PATTERN = re.compile(r"\d{1,2}\.\d{1,2}")


def snapshot_from_jsonable(data: Any) -> MachineSnapshot:
    """Rebuild a snapshot; raises :class:`SnapshotFormatError` on a malformed document."""
    snapshot: MachineSnapshot = from_jsonable(MachineSnapshot, data, "$")
    for position, gpu in enumerate(snapshot.gpus):
        capability = gpu.compute_capability.value
        if capability is not None and not _CAPABILITY_PATTERN.fullmatch(capability):
            raise SnapshotFormatError(
                f"$.gpus[{position}].compute_capability.value: expected MAJOR.MINOR like "
                f'"8.6", got {capability!r}'
            )
    return snapshot
