"""Pure verdict functions: a snapshot and a profile in, a judged report out.

No I/O and no hardware access: every function here is tested from tables.
"""

from __future__ import annotations

import contextlib
import enum
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import msgspec
from msgspec import Struct, field

from dlready.install.versions import compute_capability_key
from dlready.model import (
    DriverStack,
    GpuInfo,
    GpuVendor,
    MachineSnapshot,
    OperatingSystem,
    Reading,
    ReadState,
    StackState,
    StrEnum,
)
from dlready.probes.pci import nvidia_card_ruled_out, nvidia_devices_on_bus
from dlready.spec.bar import FailOn
from dlready.spec.profile import SpecProfile

if TYPE_CHECKING:
    # Only the type: the install planner is imported by check, not by the verdict.
    from dlready.install.torch_fit import TorchFit
from dlready.words import clock_event_words, probe_words, vendor_words

GIB = 1024**3
_THERMAL_REASONS = frozenset({"sw_thermal_slowdown", "hw_thermal_slowdown", "hw_slowdown"})


class Status(StrEnum):
    """One verdict; ordered from worst to best by :data:`_SEVERITY`."""

    BELOW_MINIMUM = "below_minimum"
    UNKNOWN = "unknown"
    MEETS_MINIMUM = "meets_minimum"
    MEETS_RECOMMENDED = "meets_recommended"


_SEVERITY = {
    Status.BELOW_MINIMUM: 0,
    Status.UNKNOWN: 1,
    Status.MEETS_MINIMUM: 2,
    Status.MEETS_RECOMMENDED: 3,
}


def worst(statuses: Sequence[Status]) -> Status:
    """The worst status; an empty list is unknown."""
    return min(statuses, key=_SEVERITY.__getitem__) if statuses else Status.UNKNOWN


class Criterion(Struct, frozen=True):
    """One measured value judged against its thresholds."""

    name: str
    status: Status
    measured: float | str | None
    unit: str
    minimum: float | str | None
    recommended: float | str | None
    source: str
    advice: str


class ComponentVerdict(Struct, frozen=True):
    """One component (the CPU, the memory, one GPU, the PSU...) with its criteria.

    ``status`` comes from the criteria that were measured; the ones that could not be are
    listed in ``not_judged`` (their names) and never lift or lower it. A part none of whose
    criteria could be measured is ``unknown``.
    """

    component: str
    subject: str
    status: Status
    criteria: tuple[Criterion, ...]
    advice: str
    notes: tuple[str, ...] = ()
    not_judged: tuple[str, ...] = ()


class PowerBudget(Struct, frozen=True):
    """The computed power need of the machine."""

    gpu_w: float
    gpu_sources: tuple[str, ...]
    cpu_w: float
    base_w: float
    parts_w: float
    minimum_w: float
    recommended_w: float
    book_rule_w: float


class CheckReport(Struct, frozen=True):
    """The judged machine."""

    profile: str
    profile_title: str
    profile_origin: str
    components: tuple[ComponentVerdict, ...]
    status: Status
    power_budget: PowerBudget
    install_command: str | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    unknown_parts: tuple[str, ...] = ()
    """Components that could not be judged; they do not lower ``status`` (see ``--strict``)."""
    install_alternatives: tuple[str, ...] = ()
    """When no install command fits: ``dlready install-cmd`` commands that would give one."""

    def fails(self, fail_on: FailOn, strict: bool = False) -> bool:
        """Whether ``check`` exits 1.

        True when a judged part is below the bar; when no part at all could be judged (no
        verdict is not a pass); and, with ``strict``, when anything could not be judged (a
        whole part, or one criterion of a judged part).
        """
        return bool(self.failures(fail_on, strict))

    def failures(self, fail_on: FailOn, strict: bool = False) -> list[Failure]:
        """Each reason behind exit 1 (empty: the check passes), in the order of the parts."""
        bar = Status.MEETS_RECOMMENDED if fail_on is FailOn.RECOMMENDED else Status.MEETS_MINIMUM
        judged = [c for c in self.components if c.status is not Status.UNKNOWN]
        found = [
            Failure("below_bar", c.subject, (), c.status)
            for c in judged
            if _SEVERITY[c.status] < _SEVERITY[bar]
        ]
        if not judged:
            found.append(Failure("nothing_judged", "", (), Status.UNKNOWN))
        if strict:
            found += [
                Failure("not_judged", c.subject, c.not_judged, c.status)
                for c in self.components
                if c.status is Status.UNKNOWN or c.not_judged
            ]
        return found


class Failure(Struct, frozen=True):
    """One reason why ``check`` exits 1."""

    code: str
    """``below_bar`` (a judged part below the ``--fail-on`` bar), ``not_judged`` (under
    ``--strict``: a part, or criteria of one, could not be judged), ``nothing_judged``."""
    part: str
    """The part's subject (``GPU 0: NVIDIA H100 80GB HBM3``); empty for ``nothing_judged``."""
    criteria: tuple[str, ...]
    """For ``not_judged`` of a judged part: the criteria that could not be judged."""
    status: Status


# --- generic threshold judgement -------------------------------------------------------------


class Direction(enum.Enum):
    """Whether bigger values are better."""

    AT_LEAST = "at_least"
    AT_MOST = "at_most"


def judge_number(
    reading: Reading[float] | Reading[int],
    minimum: float | None,
    recommended: float | None,
    direction: Direction = Direction.AT_LEAST,
) -> Status:
    """Judge one number; a missing recommended threshold means the minimum is the best bar."""
    if not reading.ok or reading.value is None:
        return Status.UNKNOWN
    value = float(reading.value)

    def meets(threshold: float) -> bool:
        return value >= threshold if direction is Direction.AT_LEAST else value <= threshold

    if minimum is not None and not meets(minimum):
        return Status.BELOW_MINIMUM
    if recommended is None or meets(recommended):
        return Status.MEETS_RECOMMENDED
    return Status.MEETS_MINIMUM


def _capability_value(capability: str) -> float:
    """Order compute capabilities numerically: 7.5 < 8.0 < 8.6 < 10.0 < 12.0.

    Raises:
        ValueError: if the text is not a compute capability.
    """
    major, minor = compute_capability_key(capability)
    return major * 100 + minor


CRITERION_LABELS = {
    "usable_cpus": "usable CPUs",
    "max_clock_mhz": "max clock",
    "effective_total_gib": "usable RAM",
    "ratio_to_total_vram": "RAM / VRAM",
    "vram_gib": "VRAM",
    "compute_capability": "compute capability",
    "fp32_tflops": "FP32 at max clock",
    "pcie_width_lanes": "PCIe width",
    "capacity_w": "PSU rating",
    "cpu_package_c": "CPU package temperature",
    # The build tools part (spec/build.py).
    "torch_cuda": "PyTorch's CUDA",
    "nvcc": "nvcc",
    "cuda_home": "CUDA_HOME",
    "host_compiler": "host compiler",
    "ninja": "ninja",
    "python_headers": "Python.h",
    "compile_jobs_ram": "compile jobs / RAM",
}
"""The words people read for each criterion, in every table that shows them."""


AT_MOST_CRITERIA = frozenset({"cpu_package_c", "compile_jobs_ram"})
"""Criteria whose thresholds are maxima (a temperature, a job count): never "minimum"."""
_EXPECTED_CRITERIA = frozenset({"torch_cuda", "nvcc", "cuda_home", "ninja", "python_headers"})
_ALLOWED_CRITERIA = frozenset({"host_compiler"})


def threshold_labels(name: str) -> tuple[str, str]:
    """The words for a criterion's two thresholds: ``minimum``/``recommended`` for most,
    ``≤`` for maxima, ``expected`` / ``allowed`` for the build tools' requirements."""
    if name in AT_MOST_CRITERIA:
        return "≤", "recommended ≤"
    if name in _EXPECTED_CRITERIA:
        return "expected", "recommended"
    if name in _ALLOWED_CRITERIA:
        return "allowed", "recommended"
    return "minimum", "recommended"


def criterion_label(name: str) -> str:
    """The words people read for a criterion name (``gpu2_slowdown_margin_c`` -> ...)."""
    if name in CRITERION_LABELS:
        return CRITERION_LABELS[name]
    if name.startswith("gpu") and name.endswith("_slowdown_margin_c"):
        return f"GPU {name[3:].split('_')[0]} below slowdown"
    if name.startswith("gpu") and name.endswith("_thermal_throttling"):
        return f"GPU {name[3:].split('_')[0]} heat throttling"
    return name.replace("_", " ")


def _named(thresholds: Any, key: str) -> bool:
    """Whether the profile names a criterion (in its minimum or recommended table)."""
    return key in thresholds.minimum or key in thresholds.recommended


def _num(value: float | str | None) -> float | None:
    return float(value) if isinstance(value, (int, float)) else None


def _reason(reading: Reading[Any]) -> str:
    if reading.reason in (None, "", "not probed"):
        return "dlready cannot read it on this machine"
    return reading.reason


def _not_measured(name: str, reading: Reading[Any]) -> str:
    label = criterion_label(name)
    return f"{label[:1].upper()}{label[1:]} not judged: {_reason(reading)}."


def _criterion(
    name: str,
    reading: Reading[float] | Reading[int],
    scale: float,
    unit: str,
    minimum: float | None,
    recommended: float | None,
    advice_below: str,
    advice_minimum: str,
    direction: Direction = Direction.AT_LEAST,
) -> Criterion:
    scaled: Reading[float] = reading.map(lambda value: float(value) / scale)
    status = judge_number(scaled, minimum, recommended, direction)
    advice = {
        Status.BELOW_MINIMUM: advice_below,
        Status.MEETS_MINIMUM: advice_minimum,
        Status.UNKNOWN: _not_measured(name, reading),
        Status.MEETS_RECOMMENDED: "",
    }[status]
    measured = round(scaled.value, 2) if scaled.value is not None else None
    return Criterion(
        name=name,
        status=status,
        measured=measured,
        unit=unit,
        minimum=minimum,
        recommended=recommended,
        source=str(reading.source),
        advice=advice,
    )


def judged_component(
    component: str,
    subject: str,
    criteria: Sequence[Criterion],
    notes: Sequence[str] = (),
    advice_if_empty: str = "",
    every_fix: bool = False,
) -> ComponentVerdict:
    """A part judged by its measured criteria only; the unmeasured ones are listed as not
    judged (with their reasons in the advice) and never lift or lower the status.

    The advice is the most severe criterion's; ``every_fix``: every measured criterion's, most
    severe first (the build tools part, where each missing tool has its own fix)."""
    known = [c for c in criteria if c.status is not Status.UNKNOWN]
    unknown = [c for c in criteria if c.status is Status.UNKNOWN]
    status = worst([c.status for c in known])  # nothing measured: unknown
    ordered = sorted(known, key=lambda c: _SEVERITY[c.status])
    if every_fix:
        advice = [c.advice for c in ordered if c.advice]
    else:
        advice = [next((c.advice for c in ordered if c.advice), "")]
    advice += [c.advice for c in unknown if c.advice]
    if not known:
        advice.append(advice_if_empty)
    text = " ".join(a for a in advice if a)
    return ComponentVerdict(
        component,
        subject,
        status,
        tuple(criteria),
        text,
        tuple(notes),
        tuple(c.name for c in unknown),
    )


# --- components -------------------------------------------------------------------------------


def judge_cpu(snapshot: MachineSnapshot, profile: SpecProfile) -> ComponentVerdict | None:
    """CPU: CPUs this process may use, and the maximum (single-core) clock (those the profile
    names; None when it names neither)."""
    cpu = snapshot.cpu
    minimum, recommended = profile.cpu.minimum, profile.cpu.recommended
    candidates = [
        _criterion(
            "usable_cpus",
            cpu.usable_cpus,
            1.0,
            "CPUs",
            _num(minimum.get("usable_cpus")),
            _num(recommended.get("usable_cpus")),
            "Too few CPUs for data loading: use a machine (or a container quota) with more cores.",
            "Enough CPUs for small data pipelines; more cores keep data loaders ahead of the GPU.",
        ),
        _criterion(
            "max_clock_mhz",
            cpu.max_clock_mhz,
            1.0,
            "MHz",
            _num(minimum.get("max_clock_mhz")),
            _num(recommended.get("max_clock_mhz")),
            "The single-core clock is low: Python-side work (data loading, the training loop) "
            "will be slow.",
            "A faster single-core clock speeds up Python-side work.",
        ),
    ]
    criteria = [c for c in candidates if _named(profile.cpu, c.name)]
    if not criteria:
        return None
    brand = cpu.brand.value if cpu.brand.ok else "CPU"
    notes = []
    if cpu.cgroup_cpu_limit_cpus.ok and cpu.cgroup_cpu_limit_cpus.value is not None:
        notes.append(f"cgroup CPU quota: {cpu.cgroup_cpu_limit_cpus.value:g} CPUs")
    return judged_component("cpu", str(brand), criteria, notes)


def judge_memory(snapshot: MachineSnapshot, profile: SpecProfile) -> ComponentVerdict | None:
    """Memory this process may use (the cgroup limit counts), optionally against total VRAM
    (the criteria the profile names; None when it names none)."""
    memory = snapshot.memory
    minimum, recommended = profile.memory.minimum, profile.memory.recommended
    criteria = [
        _criterion(
            "effective_total_gib",
            memory.effective_total_bytes,
            GIB,
            "GiB",
            _num(minimum.get("effective_total_gib")),
            _num(recommended.get("effective_total_gib")),
            "Too little RAM: datasets, checkpoints and data-loader workers will not fit; add RAM "
            "(or raise the container's memory limit).",
            "Enough RAM to start; more avoids swapping with larger datasets and models.",
        )
    ]
    criteria = [c for c in criteria if _named(profile.memory, c.name)]
    vram_bytes = sum(
        g.memory_total_bytes.value or 0
        for g in _compute_gpus(snapshot.gpus)
        if g.memory_total_bytes.ok
    )
    ratio_min = _num(minimum.get("ratio_to_total_vram"))
    ratio_rec = _num(recommended.get("ratio_to_total_vram"))
    if (ratio_min is not None or ratio_rec is not None) and vram_bytes:
        ratio: Reading[float] = (
            Reading.read(
                memory.effective_total_bytes.value / vram_bytes, memory.effective_total_bytes.source
            )
            if memory.effective_total_bytes.ok and memory.effective_total_bytes.value is not None
            else memory.effective_total_bytes.without_value()
        )
        criteria.append(
            _criterion(
                "ratio_to_total_vram",
                ratio,
                1.0,
                "x VRAM",
                ratio_min,
                ratio_rec,
                "Less RAM than GPU memory: loading and saving checkpoints goes through RAM; "
                "add RAM.",
                "RAM is at least the GPUs' memory; twice as much leaves room for data loading.",
            )
        )
    if not criteria:
        return None
    notes = []
    limit = memory.cgroup_limit_bytes
    if limit.ok and limit.value is not None:
        notes.append(
            f"cgroup memory limit: {limit.value / GIB:.1f} GiB (judged instead of the host's RAM)"
        )
    return judged_component("memory", "RAM", criteria, notes)


def _gpu_subject(gpu: GpuInfo) -> str:
    name = gpu.name.value if gpu.name.ok else f"{vendor_words(gpu.vendor)} GPU (name unreadable)"
    return f"GPU {gpu.index}: {name}"


def _capability_criterion(gpu: GpuInfo, profile: SpecProfile) -> Criterion:
    minimum = profile.gpu.minimum.get("compute_capability")
    recommended = profile.gpu.recommended.get("compute_capability")
    reading = gpu.compute_capability
    if gpu.vendor is not GpuVendor.NVIDIA:
        return Criterion(
            "compute_capability",
            Status.UNKNOWN,
            None,
            "",
            minimum,
            recommended,
            "derived",
            "Compute capability is an NVIDIA measure; see the ROCm/Metal support lists for "
            "this GPU.",
        )
    numeric: Reading[float] = reading.without_value()
    if reading.ok and reading.value is not None:
        try:
            numeric = Reading.read(_capability_value(reading.value), reading.source)
        except ValueError:
            numeric = Reading.failed(
                reading.source, f"unreadable compute capability {reading.value!r}"
            )
    status = judge_number(
        numeric,
        _capability_value(str(minimum)) if minimum else None,
        _capability_value(str(recommended)) if recommended else None,
    )
    advice = {
        Status.BELOW_MINIMUM: f"The GPU architecture (compute capability {reading.value}) is older "
        f"than the profile's minimum {minimum}: replace the card.",
        Status.MEETS_MINIMUM: f"Compute capability {reading.value} works, but newer kernels "
        f"(bfloat16, fused attention) want {recommended} or later.",
        Status.UNKNOWN: _not_measured("compute_capability", reading),
        Status.MEETS_RECOMMENDED: "",
    }[status]
    return Criterion(
        "compute_capability",
        status,
        reading.value,
        "",
        minimum,
        recommended,
        str(reading.source),
        advice,
    )


def _pcie_criterion(gpu: GpuInfo, profile: SpecProfile) -> Criterion | None:
    minimum = _num(profile.gpu.minimum.get("pcie_width_lanes"))
    if minimum is None or gpu.vendor is not GpuVendor.NVIDIA:
        return None
    current, maximum = gpu.pcie_width_current, gpu.pcie_width_max
    recommended = float(maximum.value) if maximum.ok and maximum.value else None
    return _criterion(
        "pcie_width_lanes",
        current,
        1.0,
        "lanes",
        min(minimum, recommended) if recommended else minimum,
        recommended,
        f"The card runs on x{current.value} PCIe lanes: move it to a full x16 slot (risers, "
        "chipset slots and eGPU enclosures limit host-to-device copies).",
        f"The card runs on x{current.value} of its x{maximum.value} lanes: a full-width slot "
        "speeds up host-to-device copies.",
    )


def _gpu_notes(gpu: GpuInfo, profile: SpecProfile) -> list[str]:
    notes: list[str] = []
    capability = gpu.compute_capability.value if gpu.compute_capability.ok else None
    with contextlib.suppress(ValueError):  # an unreadable capability has no caveats to attach
        value = _capability_value(capability or "")
        notes.extend(
            caveat.text
            for caveat in profile.gpu_caveats
            if value < _capability_value(caveat.below_compute_capability)
        )
    if gpu.vendor is GpuVendor.APPLE:
        notes.append(
            "Unified memory: the GPU's memory is the machine's RAM, shared with the CPU and "
            "everything else running (the RAM row counts the same memory); macOS lets the GPU "
            "use only part of it at once."
        )
    if gpu.mig_mode_enabled.ok and gpu.mig_mode_enabled.value:
        notes.append(
            "MIG mode is on: each MIG instance gets a fraction of this GPU's memory and SMs."
        )
    if gpu.persistence_mode_enabled.ok and gpu.persistence_mode_enabled.value is False:
        notes.append(
            "Persistence mode is off (Linux): every first CUDA or NVML call re-initialises the "
            "driver; `nvidia-smi -pm 1` (as root) or nvidia-persistenced avoids that."
        )
    reasons = gpu.clock_event_reasons.value if gpu.clock_event_reasons.ok else None
    if reasons and ("sw_power_cap" in reasons or "hw_power_brake_slowdown" in reasons):
        notes.append(f"Clocks are held back by power: {clock_event_words(reasons)}.")
    return notes


def _gpu_readings(gpu: GpuInfo) -> list[Reading[Any]]:
    # The field names, not msgspec.structs.fields: that resolves every type hint on each call
    # (0.2 ms a GPU, measured), and a saved report may hold 10,000 GPUs.
    values = (getattr(gpu, name) for name in gpu.__struct_fields__)
    return [value for value in values if isinstance(value, Reading)]


_NO_PERMISSION = "NVMLError_NoPermission"  # the probe keeps NVML's error name in ``error``


def broken_gpu_reason(gpu: GpuInfo) -> str | None:
    """Why a GPU that is present does not work, or None when it answers.

    Present and broken: NVML could not open it or lost it (``error``: GPU_IS_LOST, Xid 79,
    no permission on its device file), or every query to it failed.
    """
    if gpu.error:
        return gpu.error
    readings = _gpu_readings(gpu)
    failed = [r for r in readings if r.state is ReadState.FAILED]
    if failed and not any(r.ok for r in readings):
        return (
            f"every query to GPU {gpu.index} failed ({_reason(failed[0])}); check `nvidia-smi` "
            "and `dmesg` for Xid errors, then reseat or replace the card"
        )
    return None


_UNUSABLE_STACK_STATES = frozenset(
    {
        StackState.DRIVER_NOT_LOADED,
        StackState.VERSION_MISMATCH,
        StackState.NO_PERMISSION,
        StackState.TIMED_OUT,
        StackState.FAILED,
    }
)
"""A driver stack in one of these states cannot run the GPUs it lists (an AMD card that sysfs
shows while the amdgpu module is not loaded)."""


def judge_gpu(
    gpu: GpuInfo, profile: SpecProfile, stack: DriverStack | None = None
) -> ComponentVerdict:
    """One GPU: VRAM, compute capability, FP32 throughput, PCIe width (those the profile
    names). A GPU that is present but broken, or whose driver (``stack``, its vendor's) does
    not work, is below minimum, with its fix."""
    subject = _gpu_subject(gpu)
    broken = broken_gpu_reason(gpu)
    if broken is None and stack is not None and stack.state in _UNUSABLE_STACK_STATES:
        broken = (stack.reason or "its driver does not work") + (
            f". Fix: {stack.hint}" if stack.hint else ""
        )
    if broken is not None:
        opening = (
            "This GPU is there, but your user has no permission to use it"
            if _NO_PERMISSION in broken
            else "This GPU is installed but does not work"
        )
        return ComponentVerdict(
            "gpu", subject, Status.BELOW_MINIMUM, (), _sentences([f"{opening}: {broken}"])
        )
    minimum, recommended = profile.gpu.minimum, profile.gpu.recommended
    candidates = [
        _criterion(
            "vram_gib",
            gpu.memory_total_bytes,
            GIB,
            "GiB",
            _num(minimum.get("vram_gib")),
            _num(recommended.get("vram_gib")),
            "Too little GPU memory: models and batches will not fit; a card with more VRAM is "
            "the fix.",
            "Enough VRAM for small models; larger models need more.",
        ),
        _capability_criterion(gpu, profile),
        _criterion(
            "fp32_tflops",
            gpu.fp32_peak_tflops,
            1.0,
            "TFLOP/s",
            _num(minimum.get("fp32_tflops")),
            _num(recommended.get("fp32_tflops")),
            "The GPU is slower than the profile's minimum card.",
            "Fast enough to learn on; training larger models wants a faster card.",
        ),
    ]
    criteria = [c for c in candidates if _named(profile.gpu, c.name)]
    pcie = _pcie_criterion(gpu, profile)
    if pcie is not None:
        criteria.append(pcie)
    if not criteria:  # the profile only requires a GPU: this one is present and answers
        notes = tuple(_gpu_notes(gpu, profile))
        return ComponentVerdict("gpu", subject, Status.MEETS_RECOMMENDED, (), "", notes)
    return judged_component("gpu", subject, criteria, _gpu_notes(gpu, profile))


_DISPLAY_ONLY_BELOW_BYTES = 2 * GIB
_DISCRETE_FROM_BYTES = 4 * GIB


def display_only_gpus(gpus: Sequence[GpuInfo]) -> list[GpuInfo]:
    """Integrated GPUs (a BIOS carve-out of a few hundred MiB) beside a real discrete card:
    they drive the display and are no deep-learning devices, so they are listed but not judged.
    """
    discrete = [
        gpu
        for gpu in gpus
        if gpu.memory_total_bytes.ok and (gpu.memory_total_bytes.value or 0) >= _DISCRETE_FROM_BYTES
    ]
    if not discrete:
        return []
    return [
        gpu
        for gpu in gpus
        if gpu.vendor is not GpuVendor.APPLE
        and gpu.memory_total_bytes.ok
        and gpu.memory_total_bytes.value is not None
        and gpu.memory_total_bytes.value < _DISPLAY_ONLY_BELOW_BYTES
    ]


def _compute_gpus(gpus: Sequence[GpuInfo]) -> list[GpuInfo]:
    """The GPUs judged, powered and cooled as GPUs: all but the display-only ones."""
    display_only = {id(gpu) for gpu in display_only_gpus(gpus)}  # `in` a list is quadratic
    return [gpu for gpu in gpus if id(gpu) not in display_only]


def _no_gpu_verdict(snapshot: MachineSnapshot, profile: SpecProfile) -> ComponentVerdict:
    """No usable GPU: say why, as precisely as the probes allow.

    A driver that is installed but fails, or an NVIDIA card on the PCI bus with no working
    driver, leaves a GPU that cannot be used: below minimum when the profile requires a GPU.
    """
    nvidia = snapshot.stack(GpuVendor.NVIDIA)
    pci = snapshot.pci_display_devices
    nvidia_on_bus = nvidia_devices_on_bus(pci)
    status = Status.BELOW_MINIMUM if profile.gpu_required else Status.MEETS_RECOMMENDED
    unusable = Status.BELOW_MINIMUM if profile.gpu_required else Status.UNKNOWN
    leftover = nvidia_card_ruled_out(pci, snapshot.platform.is_wsl)
    driver_fails = nvidia is not None and nvidia.state not in (
        StackState.OK,
        StackState.NOT_INSTALLED,
    )
    if nvidia is not None and driver_fails and not leftover:
        # The driver exists but does not answer: the GPU cannot be used until it is fixed.
        advice = _sentences(
            [f"The NVIDIA driver does not work: {nvidia.reason or 'no reason given'}"]
            + ([f"Fix: {nvidia.hint}"] if nvidia.hint else [])
        )
        return ComponentVerdict("gpu", "GPU", unusable, (), advice)
    if nvidia_on_bus:
        ids = ", ".join(f"{d.bus_id} (device {d.device_id})" for d in nvidia_on_bus)
        return ComponentVerdict(
            "gpu",
            "GPU",
            unusable,
            (),
            f"An NVIDIA GPU is on the PCI bus ({ids}) but no working driver answers: install the "
            "NVIDIA driver (and reboot), then run `dlready check` again.",
        )
    advice = (
        "No GPU found: deep learning needs a CUDA-capable NVIDIA GPU (or ROCm AMD GPU / Apple "
        "Silicon); this machine can only train small models on the CPU."
    )
    if driver_fails:  # and no NVIDIA card on the PCI bus: a driver left without its card
        advice += (
            " An NVIDIA driver is installed but does not work, and no NVIDIA card is on the "
            "PCI bus: it has no GPU to drive here."
        )
    return ComponentVerdict("gpu", "GPU", status, (), advice if profile.gpu_required else "")


# A VM is charged for its vCPUs, not the host's whole CPU: the class's TDP x vCPUs / the
# threads of one such CPU, never more than the TDP. One socket of a 2020s server CPU has 64+
# threads (EPYC 7543: 32 cores / 64 threads; Xeon Gold 6338: 32 / 64, per AMD and Intel spec
# pages), a desktop CPU about 16; the smaller divisor keeps the figure on the safe side.
_VM_THREADS_PER_CPU = {"xeon": 64, "epyc": 64, "threadripper": 64}
_VM_THREADS_PER_CPU_DEFAULT = 16


def _cpu_tdp_w(snapshot: MachineSnapshot, profile: SpecProfile) -> float:
    """The CPU's power by class; in a VM only the share of its vCPUs (see above)."""
    cpu_class = snapshot.cpu.cpu_class.value if snapshot.cpu.cpu_class.ok else None
    table = profile.psu.cpu_tdp_w
    tdp_w = float(table.get(cpu_class or "other", table.get("other", 125.0)))
    vm = snapshot.platform.is_virtual_machine
    vcpus = snapshot.cpu.logical_cpus
    if vm.ok and vm.value and vcpus.ok and vcpus.value:
        threads = _VM_THREADS_PER_CPU.get(str(cpu_class), _VM_THREADS_PER_CPU_DEFAULT)
        return min(tdp_w, tdp_w * vcpus.value / threads)
    return tdp_w


def power_budget(snapshot: MachineSnapshot, profile: SpecProfile) -> PowerBudget:
    """What the machine's parts draw, and the PSU it needs (pure)."""
    rule = profile.psu
    gpu_w = 0.0
    sources = []
    # Apple GPUs are part of the SoC, and an integrated (display-only) GPU beside a discrete
    # card is part of the APU: both draw inside the CPU's figure, so neither is a GPU here.
    powered = [gpu for gpu in _compute_gpus(snapshot.gpus) if gpu.vendor is not GpuVendor.APPLE]
    for gpu in powered:
        for label, reading in (
            ("enforced limit", gpu.power_limit_enforced_w),
            ("default limit", gpu.power_limit_default_w),
        ):
            if reading.ok and reading.value:
                gpu_w += reading.value
                sources.append(
                    f"GPU {gpu.index}: {reading.value:.0f} W ({label}, {reading.source})"
                )
                break
        else:
            gpu_w += rule.default_gpu_power_w
            sources.append(f"GPU {gpu.index}: {rule.default_gpu_power_w:.0f} W (profile default)")
    cpu_w = _cpu_tdp_w(snapshot, profile)
    parts = gpu_w + cpu_w + rule.base_system_w
    book_rule = rule.watts_per_gpu * len(powered)
    return PowerBudget(
        gpu_w=gpu_w,
        gpu_sources=tuple(sources),
        cpu_w=cpu_w,
        base_w=rule.base_system_w,
        parts_w=parts,
        minimum_w=round(max(parts * (1 + rule.minimum_headroom_fraction), book_rule)),
        recommended_w=round(max(parts * (1 + rule.recommended_headroom_fraction), book_rule)),
        book_rule_w=book_rule,
    )


def judge_psu(snapshot: MachineSnapshot, budget: PowerBudget) -> ComponentVerdict:
    """The declared (or DMI) PSU against the computed budget; undeclared is unknown."""
    capacity = snapshot.power_supply.capacity_w
    if snapshot.platform.os is OperatingSystem.MACOS:
        return ComponentVerdict(
            "psu",
            "Power supply",
            Status.UNKNOWN,
            (),
            "Apple machines have a built-in supply sized for the machine; nothing to check.",
        )
    vm = snapshot.platform.is_virtual_machine
    if vm.ok and vm.value and not capacity.ok:
        need = Criterion(
            "capacity_w",
            Status.UNKNOWN,
            None,
            "W",
            budget.minimum_w,
            budget.recommended_w,
            "derived",
            "A virtual machine: the power supply belongs to the host and its provider. A "
            f"physical machine with these parts would need at least {budget.minimum_w:,.0f} W.",
        )
        return ComponentVerdict(
            "psu", "Power supply", Status.UNKNOWN, (need,), need.advice, (), (need.name,)
        )
    criterion = _criterion(
        "capacity_w",
        capacity,
        1.0,
        "W",
        budget.minimum_w,
        budget.recommended_w,
        f"The power supply is too small: this machine needs at least {budget.minimum_w:,.0f} W "
        "(GPU power limits + CPU + base load + headroom). Undersized supplies cause reboots "
        "under load.",
        f"Enough for the parts; {budget.recommended_w:,.0f} W leaves headroom for transient "
        "spikes.",
    )
    if criterion.status is Status.UNKNOWN:
        criterion = Criterion(
            criterion.name,
            Status.UNKNOWN,
            None,
            "W",
            budget.minimum_w,
            budget.recommended_w,
            criterion.source,
            f"Software cannot read the PSU rating; this machine needs at least "
            f"{budget.minimum_w:,.0f} W. Declare yours with --psu-watts N (or DLREADY_PSU_WATTS).",
        )
    return judged_component("psu", "Power supply", [criterion])


def judge_cooling(snapshot: MachineSnapshot, profile: SpecProfile) -> ComponentVerdict:
    """Thermal throttling, GPU margin to slowdown, CPU package temperature (idle readings)."""
    minimum, recommended = profile.cooling.minimum, profile.cooling.recommended
    criteria = []
    for gpu in _compute_gpus(snapshot.gpus):
        if gpu.error or gpu.vendor is GpuVendor.APPLE:
            continue
        reasons = gpu.clock_event_reasons.value if gpu.clock_event_reasons.ok else None
        thermal = sorted(set(reasons or ()) & _THERMAL_REASONS)
        if thermal:
            criteria.append(
                Criterion(
                    f"gpu{gpu.index}_thermal_throttling",
                    Status.BELOW_MINIMUM,
                    clock_event_words(thermal),
                    "",
                    "none",
                    "none",
                    str(gpu.clock_event_reasons.source),
                    f"GPU {gpu.index} is slowing down for heat now: clean the fans and filters, "
                    "improve case airflow, check the fan curve.",
                )
            )
        if not _named(profile.cooling, "gpu_slowdown_margin_c"):
            continue
        temperature, slowdown = gpu.temperature_c, gpu.temperature_slowdown_c
        margin: Reading[float]
        if (
            temperature.ok
            and slowdown.ok
            and temperature.value is not None
            and slowdown.value is not None
        ):
            margin = Reading.read(slowdown.value - temperature.value, temperature.source)
        else:
            # Described in words (the probes' reasons name sysfs files and NVML calls).
            missing_part = temperature if not temperature.ok else slowdown
            if missing_part.state is ReadState.FAILED and missing_part.reason:
                why = missing_part.reason  # a failed or implausible reading says what it was
            elif temperature.ok and temperature.value is not None:
                why = (
                    f"its temperature is {temperature.value:.0f} °C now, but its driver reports "
                    "no slowdown temperature to compare it with"
                )
            else:
                why = "its temperature could not be read"
            margin = missing_part.without_value(why)
        criteria.append(
            _criterion(
                f"gpu{gpu.index}_slowdown_margin_c",
                margin,
                1.0,
                "°C",
                _num(minimum.get("gpu_slowdown_margin_c")),
                _num(recommended.get("gpu_slowdown_margin_c")),
                f"GPU {gpu.index} is close to its slowdown temperature: improve cooling before "
                "long training runs.",
                f"GPU {gpu.index} has little thermal margin; under load it may throttle. "
                + _under_load_advice([gpu]),
            )
        )
    package = snapshot.cpu.package_temperature_c
    vm = snapshot.platform.is_virtual_machine
    if not package.ok and not (package.state is ReadState.FAILED and package.reason):
        where = " (typical of a virtual machine)" if vm.ok and vm.value else ""
        package = package.without_value(f"no CPU temperature sensor is readable{where}")
    if _named(profile.cooling, "cpu_package_max_c"):
        criteria.append(
            _criterion(
                "cpu_package_c",
                package,
                1.0,
                "°C",
                _num(minimum.get("cpu_package_max_c")),
                _num(recommended.get("cpu_package_max_c")),
                "The CPU runs hot: check the cooler's mounting and paste, and case airflow.",
                "The CPU is warm; check airflow before long runs.",
                direction=Direction.AT_MOST,
            )
        )
    gpus = [g for g in _compute_gpus(snapshot.gpus) if not g.error]
    # The criteria above say what could not be read, in words; this adds how to judge the
    # cooling under load, for these GPUs.
    empty = _under_load_advice(gpus)
    if not criteria and not gpus and _named(profile.cooling, "gpu_slowdown_margin_c"):
        empty = (
            "Nothing to measure: the profile judges cooling by each GPU's margin to its "
            "slowdown temperature, and this machine has no GPU to read."
        )
    return judged_component("cooling", "Cooling", criteria, advice_if_empty=empty)


def _under_load_advice(gpus: Sequence[GpuInfo]) -> str:
    """How to judge cooling under load on these GPUs: ``smoke --burn`` watches NVIDIA GPUs
    through NVML; for others, their vendor's monitor during a long run."""
    vendors = {gpu.vendor for gpu in gpus}
    if GpuVendor.NVIDIA in vendors:
        return "Run `dlready smoke --burn 60` to judge cooling under load."
    if GpuVendor.AMD in vendors:
        return "Watch the GPU's temperature during a long training run (`rocm-smi`)."
    return ""


def _sentences(parts: Sequence[str]) -> str:
    """Join findings as sentences, each starting with a capital and ending with a full stop."""
    sentences = (f"{part[:1].upper()}{part[1:]}".rstrip() for part in parts if part.strip())
    return " ".join(s if s.endswith((".", "!", "?")) else f"{s}." for s in sentences)


_DETECTION_PREFIX = "detection: "


def judge_software(finding: TorchFit | None) -> ComponentVerdict | None:
    """The installed PyTorch against this machine; None when it is not installed yet (then
    there is nothing to judge: ``check`` runs before PyTorch is installed)."""
    if finding is None:
        return ComponentVerdict("software", "PyTorch", Status.UNKNOWN, (), "Not judged.")
    if finding.status == "not_installed":
        return None
    status = {
        "fits": Status.MEETS_RECOMMENDED,
        "mismatch": Status.BELOW_MINIMUM,
        "unknown": Status.UNKNOWN,
    }.get(finding.status, Status.UNKNOWN)
    # "detection:" notes are about the hardware facts (an unreadable GPU...), which the
    # hardware parts already report with their fix; repeated here they would say it twice.
    warnings = [w for w in finding.warnings if not w.startswith(_DETECTION_PREFIX)]
    if status is Status.MEETS_RECOMMENDED and warnings:
        # A build that works with caveats (PTX-only kernels, a CUDA build without a GPU...)
        # is not the recommended one: the status says what the advice says.
        return ComponentVerdict(
            "software", "PyTorch", Status.MEETS_MINIMUM, (), _sentences(warnings)
        )
    advice = _sentences(finding.problems)
    if finding.fix_command and finding.status != "fits":
        # The command itself is printed once, on a line of its own, below the findings.
        advice = f"{advice} Reinstall it with the command below.".strip()
    return ComponentVerdict("software", "PyTorch", status, (), advice, tuple(warnings))


def _said_once(
    part: ComponentVerdict, snapshot: MachineSnapshot, earlier: Sequence[ComponentVerdict]
) -> ComponentVerdict:
    """``part`` without the NVIDIA driver's reason when an earlier part already gives it
    (with its fix): each reason is said once."""
    stack = snapshot.stack(GpuVendor.NVIDIA)
    reason = stack.reason if stack is not None else None
    if not reason or reason not in part.advice:
        return part
    if not any(reason in c.advice for c in earlier):
        return part
    advice = part.advice.replace(f" ({reason})", " (see GPU)").replace(reason, "see GPU")
    return msgspec.structs.replace(part, advice=advice)


def judge(
    snapshot: MachineSnapshot,
    profile: SpecProfile,
    software: TorchFit | None = None,
    install_command: str | None = None,
) -> CheckReport:
    """Judge every component of a snapshot against a profile (pure)."""
    # Only the parts the profile names are judged (docs/spec-profiles.md).
    components = [
        part
        for part in (judge_cpu(snapshot, profile), judge_memory(snapshot, profile))
        if part is not None
    ]
    display_only = display_only_gpus(snapshot.gpus)
    compute_gpus = _compute_gpus(snapshot.gpus)
    if profile.judges_gpus and compute_gpus:
        components.extend(
            judge_gpu(gpu, profile, snapshot.stack(gpu.vendor)) for gpu in compute_gpus
        )
    elif profile.judges_gpus:
        components.append(_no_gpu_verdict(snapshot, profile))
    budget = power_budget(snapshot, profile)
    if profile.judges_psu:
        components.append(judge_psu(snapshot, budget))
    if profile.judges_cooling:
        components.append(judge_cooling(snapshot, profile))
    software_verdict = judge_software(software)
    if software_verdict is not None:
        components.append(_said_once(software_verdict, snapshot, components))
    notes = tuple(
        f"Reading {probe_words(e.probe)} failed ({e.message}); what it would have shown is "
        "missing from this report"
        for e in snapshot.errors
    ) + tuple(
        f"{_gpu_subject(gpu)}: integrated or display-only GPU "
        f"({(gpu.memory_total_bytes.value or 0) / GIB:.1f} GiB), not judged"
        for gpu in display_only
    )
    known = [c.status for c in components if c.status is not Status.UNKNOWN]
    return CheckReport(
        profile=profile.name,
        profile_title=profile.title,
        profile_origin=profile.origin,
        components=tuple(components),
        status=worst(known),
        power_budget=budget,
        install_command=install_command,
        notes=notes,
        unknown_parts=tuple(c.subject for c in components if c.status is Status.UNKNOWN),
    )
