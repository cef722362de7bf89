"""Named GPU scenarios, built in the image of the real recordings in ``tests/fixtures``.

NVIDIA scenarios start from the H100 server's NVML capture (``h100-80gb-hbm3/capture.json``,
driver 580.159.04) and change only the values listed per card below; everything else (for
example the temperature reading of a card whose published output shows none) stays as the
H100 recorded it. Each card's values carry their source. NVML conventions used throughout:

- memory in bytes (MiB x 2**20); power in milliwatts; clocks in MHz;
- ``max_clock_mem`` is the memory clock as ``nvidia-smi -q`` prints it ("Max Clocks / Memory"):
  half the effective data rate for GDDR5/GDDR6/GDDR6X (8 Gbps -> 4004, 14 Gbps -> 7000,
  21 Gbps -> 10501 MHz; the last one is NVIDIA's own RTX 4090 output in NVIDIA/nvbench#207:
  "384-bit DDR @10501MHz");
- ``max_clock_sm`` is set to the card's rated boost clock (spec sheet). A real NVML maximum is
  the top of the boost table and often higher; using the rated clock makes the derived FP32
  figure the spec sheet's FP32 figure;
- GeForce cards answer NotSupported for MIG mode and ECC mode (``nvidia-smi -q`` prints "N/A"
  for both on GeForce boards, e.g. NVIDIA/nvidia-docker#1485, a GTX 1660 Ti);
- compute capability: CUDA C++ Programming Guide, "Compute Capabilities" table, and
  https://developer.nvidia.com/cuda-gpus (Pascal GP106 6.1, Turing 7.5, Ada 8.9);
- ``nvmlDeviceGetArchitecture`` codes are NVML's ``NVML_DEVICE_ARCH_*`` (Pascal 4, Turing 6,
  Ada 8); ``test_probe_nvidia.py`` checks them against pynvml.

NVML failures are built from pynvml's own error classes and messages (:func:`nvml_error`).
The AMD scenario is sysfs text as the amdgpu driver writes it; the Apple scenario is sysctl
output. Each value is documented where it is defined.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Mapping
from typing import Any

import pynvml
from msgspec import Struct, field

from conftest import load_capture
from dlready.probes.hostfs import ReplayHostFiles
from dlready.probes.nvml_gateway import ReplayNvml, recorded_error

MIB = 2**20
H100_CAPTURE = "h100-80gb-hbm3"
H100_UUID = "GPU-b6012499-6918-735e-0cf1-3817ce68e703"


def nvml_error(code_name: str) -> dict[str, str]:
    """A recorded NVML failure with pynvml's class name and message for ``NVML_ERROR_<code>``."""
    error = pynvml.NVMLError(getattr(pynvml, f"NVML_ERROR_{code_name}"))
    return recorded_error(type(error).__name__, str(error))


def h100_replay() -> ReplayNvml:
    """The H100 server exactly as recorded."""
    return ReplayNvml.from_capture(load_capture(H100_CAPTURE)["nvml"])


# --- NVIDIA cards ---------------------------------------------------------------------------


class NvidiaCard(Struct, frozen=True):
    """One NVIDIA card as NVML reports it. ``None`` means NVML answers NotSupported."""

    nvml_name: str
    architecture_code: int
    architecture: str
    compute_capability: tuple[int, int]
    cuda_cores: int
    memory_total_mib: int
    memory_used_mib: int
    memory_bus_width_bits: int
    max_sm_clock_mhz: int
    max_memory_clock_mhz: int
    power_limit_w: float | None
    power_limit_range_w: tuple[float, float] | None
    power_draw_w: float | None
    temperature_slowdown_c: int
    temperature_shutdown_c: int
    fan_speed_percent: int | None
    pcie_generation: int
    pcie_width: int
    persistence_enabled: bool
    temperature_c: int | None = None
    """None keeps the H100's recorded temperature (37 C)."""
    sources: str = ""

    def nvml_overrides(self, index: int, bus_id: str) -> dict[str, Any]:
        """Capture keys to change on the H100 recording to make it this card."""

        def milliwatts(watts: float | None) -> Any:
            return nvml_error("NOT_SUPPORTED") if watts is None else round(watts * 1000)

        total = self.memory_total_mib * MIB
        used = self.memory_used_mib * MIB
        pci = copy.deepcopy(load_capture(H100_CAPTURE)["nvml"]["gpus"][0]["nvmlDeviceGetPciInfo"])
        pci.update(busId=bus_id, busIdLegacy=bus_id[4:])
        overrides: dict[str, Any] = {
            "nvmlDeviceGetName": self.nvml_name,
            # The H100's UUID with its last digit replaced by the index, so GPUs differ.
            "nvmlDeviceGetUUID": f"{H100_UUID[:-1]}{index}",
            "nvmlDeviceGetPciInfo": pci,
            "nvmlDeviceGetArchitecture": self.architecture_code,
            "nvmlDeviceGetMemoryInfo": {"total": total, "free": total - used, "used": used},
            "nvmlDeviceGetCudaComputeCapability": list(self.compute_capability),
            "nvmlDeviceGetNumGpuCores": self.cuda_cores,
            "nvmlDeviceGetMemoryBusWidth": self.memory_bus_width_bits,
            "max_clock_sm": self.max_sm_clock_mhz,
            "max_clock_graphics": self.max_sm_clock_mhz,
            "max_clock_mem": self.max_memory_clock_mhz,
            "nvmlDeviceGetPowerManagementLimit": milliwatts(self.power_limit_w),
            "nvmlDeviceGetPowerManagementDefaultLimit": milliwatts(self.power_limit_w),
            "nvmlDeviceGetEnforcedPowerLimit": milliwatts(self.power_limit_w),
            "nvmlDeviceGetPowerManagementLimitConstraints": (
                nvml_error("NOT_SUPPORTED")
                if self.power_limit_range_w is None
                else [milliwatts(w) for w in self.power_limit_range_w]
            ),
            "nvmlDeviceGetPowerUsage": milliwatts(self.power_draw_w),
            "temp_threshold_slowdown": self.temperature_slowdown_c,
            "temp_threshold_shutdown": self.temperature_shutdown_c,
            "nvmlDeviceGetFanSpeed": (
                nvml_error("NOT_SUPPORTED")
                if self.fan_speed_percent is None
                else self.fan_speed_percent
            ),
            "nvmlDeviceGetMaxPcieLinkGeneration": self.pcie_generation,
            "nvmlDeviceGetCurrPcieLinkGeneration": self.pcie_generation,
            "nvmlDeviceGetMaxPcieLinkWidth": self.pcie_width,
            "nvmlDeviceGetCurrPcieLinkWidth": self.pcie_width,
            "nvmlDeviceGetMigMode": nvml_error("NOT_SUPPORTED"),
            "nvmlDeviceGetEccMode": nvml_error("NOT_SUPPORTED"),
            "nvmlDeviceGetPersistenceMode": 1 if self.persistence_enabled else 0,
        }
        if self.temperature_c is not None:
            overrides["nvmlDeviceGetTemperature"] = self.temperature_c
        return overrides


GTX_1060_MAX_Q_LAPTOP = NvidiaCard(
    # A Razer laptop's `nvidia-smi` inside a container (driver 545.23.06, CUDA 12.3), published
    # in a public repository's Docker notes: "NVIDIA GeForce GTX 1060 ...  On |
    # 00000000:01:00.0 | N/A 46C P8 3W / 70W | 6MiB / 6144MiB". The name is cut at 23
    # characters by the table; a 70 W cap on a 6 GB GTX 1060 laptop is the Max-Q version.
    nvml_name="NVIDIA GeForce GTX 1060 with Max-Q Design",
    architecture_code=4,  # NVML_DEVICE_ARCH_PASCAL
    architecture="Pascal",
    compute_capability=(6, 1),
    # TechPowerUp GPU database, "NVIDIA GeForce GTX 1060 Max-Q": GP106, 1280 shading units,
    # boost 1341 MHz, 6 GB GDDR5 on a 192-bit bus at 2002 MHz (8 Gbps effective).
    cuda_cores=1280,
    memory_total_mib=6144,
    memory_used_mib=6,
    memory_bus_width_bits=192,
    max_sm_clock_mhz=1341,
    max_memory_clock_mhz=4004,
    power_limit_w=70.0,
    # Not in the published table; laptops often report these as "N/A" (NotSupported).
    power_limit_range_w=None,
    power_draw_w=3.0,
    temperature_c=46,
    # GP106 thresholds from a desktop GTX 1060 6GB `nvidia-smi -q -x` (netdata/netdata#2922:
    # gpu_temp_max_threshold 102 C, gpu_temp_slow_threshold 99 C).
    temperature_slowdown_c=99,
    temperature_shutdown_c=102,
    fan_speed_percent=None,  # the table shows "N/A": the laptop's EC drives the fans
    pcie_generation=3,
    pcie_width=16,
    persistence_enabled=True,  # "On" in the table
    sources="public nvidia-smi output (Razer laptop, driver 545.23.06); TechPowerUp "
    "GTX 1060 Max-Q; netdata/netdata#2922 (GP106 thresholds)",
)

RTX_2080_TI = NvidiaCard(
    nvml_name="NVIDIA GeForce RTX 2080 Ti",
    architecture_code=6,  # NVML_DEVICE_ARCH_TURING
    architecture="Turing",
    compute_capability=(7, 5),
    # NVIDIA RTX 2080 Ti spec page / TechPowerUp: TU102, 4352 CUDA cores, boost 1545 MHz
    # (reference board), 11 GB GDDR6, 352-bit, 14 Gbps, 250 W reference board power.
    cuda_cores=4352,
    # Current drivers report the full 11264 MiB (andru-kun/wildrig-multi#357: "MEM TOTAL:
    # 11264 MB" on a 2080 Ti); a published nvidia-smi table (driver 455.32.00) shows 0 MiB used.
    memory_total_mib=11264,
    memory_used_mib=0,
    memory_bus_width_bits=352,
    max_sm_clock_mhz=1545,
    max_memory_clock_mhz=7000,
    power_limit_w=250.0,
    # TechPowerUp VGA BIOS collection, RTX 2080 Ti reference board: 250 W target, range
    # 100-280 W.
    power_limit_range_w=(100.0, 280.0),
    # The same published table: "31% 34C P0 57W / 250W" at 00000000:01:00.0.
    power_draw_w=57.0,
    temperature_c=34,
    # NVIDIA/nvidia-settings#34, an RTX 2080 Ti's `nvidia-smi -q -x`:
    # gpu_temp_max_threshold 94 C, gpu_temp_slow_threshold 91 C.
    temperature_slowdown_c=91,
    temperature_shutdown_c=94,
    fan_speed_percent=31,
    pcie_generation=3,
    pcie_width=16,
    persistence_enabled=False,  # "Off" in the table (the Linux default)
    sources="NVIDIA RTX 2080 Ti spec page; TechPowerUp; public nvidia-smi table (driver "
    "455.32.00); andru-kun/wildrig-multi#357; NVIDIA/nvidia-settings#34",
)

RTX_4090 = NvidiaCard(
    nvml_name="NVIDIA GeForce RTX 4090",
    architecture_code=8,  # NVML_DEVICE_ARCH_ADA
    architecture="Ada Lovelace",
    compute_capability=(8, 9),
    # NVIDIA RTX 4090 spec page: 16384 CUDA cores, boost 2.52 GHz, 24 GB GDDR6X, 450 W total
    # graphics power. NVIDIA/nvbench#207 prints the same card: "SM Default Clock Rate:
    # 2520 MHz", "384-bit DDR @10501MHz".
    cuda_cores=16384,
    memory_total_mib=24564,  # `nvidia-smi --query-gpu=name,memory.total`: "24564 MiB"
    memory_used_mib=0,
    memory_bus_width_bits=384,
    max_sm_clock_mhz=2520,
    max_memory_clock_mhz=10501,
    power_limit_w=450.0,
    # TechPowerUp VGA BIOS collection, RTX 4090 Founders Edition: 450 W target, 150-600 W.
    power_limit_range_w=(150.0, 600.0),
    power_draw_w=None,  # set per scenario: kept as recorded (73.4 W), see below
    # No published 4090 thresholds were found; the H100's recorded 89/95 C stay.
    temperature_slowdown_c=89,
    temperature_shutdown_c=95,
    fan_speed_percent=0,  # GeForce boards stop their fans at idle (netdata#2922: "0%")
    pcie_generation=4,
    pcie_width=16,
    persistence_enabled=False,
    sources="NVIDIA RTX 4090 spec page; NVIDIA/nvbench#207; TechPowerUp BIOS collection",
)


class NvidiaScenario(Struct, frozen=True):
    """A machine with NVIDIA GPUs: cards, PCI bus ids, driver, and extra per-GPU changes."""

    id: str
    description: str
    cards: tuple[NvidiaCard, ...]
    bus_ids: tuple[str, ...]
    system: Mapping[str, Any] = field(default_factory=dict)
    gpu_changes: Mapping[int, Mapping[str, Any]] = field(default_factory=dict)

    def replay(self) -> ReplayNvml:
        """The NVML replay of this machine."""
        replay = h100_replay().with_gpu_count(len(self.cards)).with_system_overrides(self.system)
        for index, (card, bus_id) in enumerate(zip(self.cards, self.bus_ids, strict=True)):
            overrides = card.nvml_overrides(index, bus_id)
            if card.power_draw_w is None:
                del overrides["nvmlDeviceGetPowerUsage"]  # keep the recorded draw
            replay = replay.with_gpu_overrides(overrides, index=index)
        for index, changes in self.gpu_changes.items():
            replay = replay.with_gpu_overrides(changes, index=index)
        return replay


NVIDIA_SCENARIOS: tuple[NvidiaScenario, ...] = (
    NvidiaScenario(
        id="gtx-1060-laptop",
        description="The book's minimum: a GTX 1060 6GB laptop (Max-Q) on driver 545",
        cards=(GTX_1060_MAX_Q_LAPTOP,),
        bus_ids=("00000000:01:00.0",),
        # The published output's driver; NVML's version string is "<CUDA major>.<driver>".
        system={"driver": "545.23.06", "cuda_driver": 12030, "nvml_version": "12.545.23.06"},
    ),
    NvidiaScenario(
        id="rtx-2080-ti-desktop",
        description="The book's recommendation: an RTX 2080 Ti desktop",
        cards=(RTX_2080_TI,),
        bus_ids=("00000000:01:00.0",),
    ),
    NvidiaScenario(
        id="4x-rtx-4090",
        description="Four RTX 4090 in a workstation, one per CPU root port",
        cards=(RTX_4090,) * 4,
        bus_ids=(
            "00000000:01:00.0",
            "00000000:21:00.0",
            "00000000:41:00.0",
            "00000000:61:00.0",
        ),
    ),
    NvidiaScenario(
        id="rtx-2080-ti-in-x4-slot",
        description="The RTX 2080 Ti in a chipset slot wired x4 (the card could do x16)",
        cards=(RTX_2080_TI,),
        bus_ids=("00000000:05:00.0",),
        gpu_changes={0: {"nvmlDeviceGetCurrPcieLinkWidth": 4}},
    ),
)


def nvidia_scenario(scenario_id: str) -> NvidiaScenario:
    """A scenario by id."""
    return next(s for s in NVIDIA_SCENARIOS if s.id == scenario_id)


# --- NVML failures --------------------------------------------------------------------------


class HangingNvml:
    """An NVML whose ``nvmlInit`` never returns (a wedged driver) until ``release()``."""

    def __init__(self) -> None:
        self._released = threading.Event()
        self.calls: list[str] = []

    def release(self) -> None:
        """Let the blocked init return, so the abandoned thread ends."""
        self._released.set()

    def init(self) -> None:
        """Block until released (at most 10 s, so a probe without a timeout fails, not hangs)."""
        self.calls.append("nvmlInit")
        self._released.wait(timeout=10.0)
        raise RuntimeError("released after the test")

    def shutdown(self) -> None:
        """Record the call; the probe must not make it."""
        self.calls.append("nvmlShutdown")

    def call(self, function_name: str, *args: Any) -> Any:
        """Never reached while init blocks."""
        self.calls.append(function_name)
        raise AssertionError("NVML is hung")


def library_not_found() -> ReplayNvml:
    """This CPU-only VM as recorded: ``nvmlInit`` fails with NVMLError_LibraryNotFound."""
    return ReplayNvml.from_capture(load_capture("cpu-only-epyc-vm")["nvml"])


def old_driver_2080_ti() -> ReplayNvml:
    """The 2080 Ti on the driver of its published table (455.32.00, CUDA 11.1).

    That NVML predates ``nvmlDeviceGetNumGpuCores`` and the "clocks event" names (R535
    renamed ``...ClocksThrottleReasons`` to ``...ClocksEventReasons``): both answer
    FunctionNotFound, as pynvml does when the driver's library lacks a symbol. GeForce names
    had no "NVIDIA " prefix then ("GeForce RTX 208..." in the table).
    """
    return (
        nvidia_scenario("rtx-2080-ti-desktop")
        .replay()
        .with_system_overrides(
            {"driver": "455.32.00", "cuda_driver": 11010, "nvml_version": "11.455.32.00"}
        )
        .with_gpu_overrides(
            {
                "nvmlDeviceGetName": "GeForce RTX 2080 Ti",
                "nvmlDeviceGetNumGpuCores": nvml_error("FUNCTION_NOT_FOUND"),
                "nvmlDeviceGetCurrentClocksEventReasons": nvml_error("FUNCTION_NOT_FOUND"),
            },
            index=0,
        )
    )


class NvmlFailureScenario(Struct, frozen=True):
    """One way NVML fails, and what the probe must report."""

    id: str
    backend: Callable[[], ReplayNvml]
    expected_state: str
    reason_contains: str
    hint_contains: str | None
    gpu_count: int = 0
    lost_gpu_indices: tuple[int, ...] = ()
    gpu_error_contains: str = "dmesg"


NVML_FAILURES: tuple[NvmlFailureScenario, ...] = (
    NvmlFailureScenario(
        id="library-not-found",
        backend=library_not_found,
        expected_state="not_installed",
        reason_contains="NVMLError_LibraryNotFound",
        hint_contains="install the NVIDIA driver",
    ),
    NvmlFailureScenario(
        id="driver-not-loaded",
        backend=lambda: ReplayNvml.failing_init(**_init_error("DRIVER_NOT_LOADED")),
        expected_state="driver_not_loaded",
        reason_contains="NVMLError_DriverNotLoaded",
        hint_contains="modprobe nvidia",
    ),
    NvmlFailureScenario(
        id="version-mismatch",
        backend=lambda: ReplayNvml.failing_init(**_init_error("LIB_RM_VERSION_MISMATCH")),
        expected_state="version_mismatch",
        reason_contains="NVMLError_LibRmVersionMismatch",
        hint_contains="Reboot",
    ),
    NvmlFailureScenario(
        id="no-permission",
        backend=lambda: ReplayNvml.failing_init(**_init_error("NO_PERMISSION")),
        expected_state="no_permission",
        reason_contains="NVMLError_NoPermission",
        hint_contains="/dev/nvidia*",
    ),
    NvmlFailureScenario(
        id="unknown-init-error",
        backend=lambda: ReplayNvml.failing_init(**_init_error("UNKNOWN")),
        expected_state="failed",
        reason_contains="NVMLError_Unknown",
        hint_contains="nvidia-smi",
    ),
    NvmlFailureScenario(
        id="gpu-lost-handle",
        # GPU 2 of four fell off the bus: NVML cannot even open it.
        backend=lambda: (
            nvidia_scenario("4x-rtx-4090")
            .replay()
            .with_gpu_overrides({"nvmlDeviceGetHandleByIndex": nvml_error("GPU_IS_LOST")}, index=2)
        ),
        expected_state="ok",
        reason_contains="GPU(s) 2 could not be read",
        hint_contains=None,
        gpu_count=4,
        lost_gpu_indices=(2,),
    ),
    NvmlFailureScenario(
        id="gpu-unknown-on-name",
        backend=lambda: (
            nvidia_scenario("4x-rtx-4090")
            .replay()
            .with_gpu_overrides({"nvmlDeviceGetName": nvml_error("UNKNOWN")}, index=1)
        ),
        expected_state="ok",
        reason_contains="GPU(s) 1 could not be read",
        hint_contains=None,
        gpu_count=4,
        lost_gpu_indices=(1,),
    ),
    NvmlFailureScenario(
        id="gpu-lost-midway",
        # GPU 3 answers its name, then is lost while the probe reads its power.
        backend=lambda: (
            nvidia_scenario("4x-rtx-4090")
            .replay()
            .with_gpu_overrides({"nvmlDeviceGetPowerUsage": nvml_error("GPU_IS_LOST")}, index=3)
        ),
        expected_state="ok",
        reason_contains="GPU(s) 3 could not be read",
        hint_contains=None,
        gpu_count=4,
        lost_gpu_indices=(3,),
    ),
    NvmlFailureScenario(
        id="gpu-handle-no-permission",
        # A container whose device cgroup lets NVML see GPU 0 but not open it.
        backend=lambda: (
            nvidia_scenario("4x-rtx-4090")
            .replay()
            .with_gpu_overrides(
                {"nvmlDeviceGetHandleByIndex": nvml_error("NO_PERMISSION")}, index=0
            )
        ),
        expected_state="ok",
        reason_contains="GPU(s) 0 could not be read",
        hint_contains=None,
        gpu_count=4,
        lost_gpu_indices=(0,),
        gpu_error_contains="/dev/nvidia*",
    ),
    NvmlFailureScenario(
        id="device-count-fails",
        backend=lambda: h100_replay().with_system_overrides({"count": nvml_error("UNKNOWN")}),
        expected_state="failed",
        reason_contains="could not count",
        hint_contains=None,
    ),
)


def _init_error(code_name: str) -> dict[str, str]:
    recorded = nvml_error(code_name)
    return {"error_class": recorded["error"], "message": recorded["msg"]}


# --- AMD --------------------------------------------------------------------------------------

# A desktop with a Ryzen 7000 APU and a Radeon RX 7900 XTX, as ROCm/ROC-smi#100 shows it:
# `rocm-smi --show-hw`: GPU 0 DID 164e (the Raphael iGPU) at 0000:12:00.0, GPU 1 DID 744c at
# 0000:03:00.0; `rocm-smi`: GPU 0 42.0c 39.02W PwrCap N/A, GPU 1 50.0c 89.0W PwrCap 315.0W.
# The 7900 XTX's revision (0xc8), 24560 MiB of VRAM and "16.0 GT/s PCIe x16" link are the
# same card model in LACT's `lact cli info` (ilya-zlobintsev/LACT#533); its memory levels are a
# 7900 XTX's `cat pp_dpm_mclk` (evshiron/rocm_lab#3); VRAM used is a 7900 XTX's
# `rocm-smi --showmeminfo vram` with a model loaded (25753026560 B total, 15960199168 B used).
# The iGPU's VRAM is the 512 MiB BIOS carve-out ("amdgpu: 512M of VRAM memory ready",
# clbr/radeontop#163). Units: bytes, millidegrees C, microwatts (kernel hwmon ABI).
RX_7900_XTX_DESKTOP_FILES: Mapping[str, str] = {
    "/sys/class/drm/version": "drm 1.1.0 20060810\n",
    "/sys/class/drm/card0/device/vendor": "0x1002\n",
    "/sys/class/drm/card0/device/device": "0x744c\n",
    "/sys/class/drm/card0/device/revision": "0xc8\n",
    "/sys/class/drm/card0/device/uevent": (
        "DRIVER=amdgpu\nPCI_CLASS=30000\nPCI_ID=1002:744C\nPCI_SUBSYS_ID=148C:2422\n"
        "PCI_SLOT_NAME=0000:03:00.0\n"
    ),
    "/sys/class/drm/card0/device/mem_info_vram_total": "25753026560\n",
    "/sys/class/drm/card0/device/mem_info_vram_used": "15960199168\n",
    "/sys/class/drm/card0/device/current_link_speed": "16.0 GT/s PCIe\n",
    "/sys/class/drm/card0/device/current_link_width": "16\n",
    "/sys/class/drm/card0/device/max_link_speed": "16.0 GT/s PCIe\n",
    "/sys/class/drm/card0/device/max_link_width": "16\n",
    "/sys/class/drm/card0/device/pp_dpm_mclk": "0: 96Mhz *\n1: 456Mhz\n2: 772Mhz\n3: 1249Mhz\n",
    "/sys/class/drm/card0/device/hwmon/hwmon2/name": "amdgpu\n",
    "/sys/class/drm/card0/device/hwmon/hwmon2/temp1_input": "50000\n",
    "/sys/class/drm/card0/device/hwmon/hwmon2/power1_average": "89000000\n",
    "/sys/class/drm/card0/device/hwmon/hwmon2/power1_cap": "315000000\n",
    "/sys/class/drm/card0-DP-1/status": "connected\n",
    "/sys/class/drm/card1/device/vendor": "0x1002\n",
    "/sys/class/drm/card1/device/device": "0x164e\n",
    "/sys/class/drm/card1/device/uevent": (
        "DRIVER=amdgpu\nPCI_CLASS=30000\nPCI_ID=1002:164E\nPCI_SLOT_NAME=0000:12:00.0\n"
    ),
    "/sys/class/drm/card1/device/mem_info_vram_total": "536870912\n",
    "/sys/class/drm/card1/device/hwmon/hwmon3/name": "amdgpu\n",
    "/sys/class/drm/card1/device/hwmon/hwmon3/temp1_input": "42000\n",
    "/sys/class/drm/card1/device/hwmon/hwmon3/power1_average": "39020000\n",
    "/sys/class/drm/renderD128/device/vendor": "0x1002\n",
    "/sys/class/drm/renderD129/device/vendor": "0x1002\n",
    "/sys/module/amdgpu/parameters/ppfeaturemask": "0xfff7bfff\n",
}


def amd_files(changes: Mapping[str, str | None] | None = None) -> ReplayHostFiles:
    """The RX 7900 XTX desktop's sysfs, optionally changed (None removes a file)."""
    return ReplayHostFiles(RX_7900_XTX_DESKTOP_FILES).with_files(changes or {})


def amd_files_without_driver() -> ReplayHostFiles:
    """The same desktop booted without amdgpu: only the PCI identity files exist."""
    return ReplayHostFiles(amd_without_driver_file_texts())


def amd_without_driver_file_texts() -> dict[str, str]:
    """The files of :func:`amd_files_without_driver`, to lay over another machine's."""
    kept = {
        path: text
        for path, text in RX_7900_XTX_DESKTOP_FILES.items()
        if path.endswith(("/vendor", "/device", "/revision"))
    }
    kept["/sys/class/drm/card0/device/uevent"] = "PCI_ID=1002:744C\nPCI_SLOT_NAME=0000:03:00.0\n"
    kept["/sys/class/drm/card1/device/uevent"] = "PCI_ID=1002:164E\nPCI_SLOT_NAME=0000:12:00.0\n"
    return kept


# --- Apple ------------------------------------------------------------------------------------

# `sysctl -a | grep -e machdep.cpu -e memsize` on an M2 with 16 GB, published in a public
# repository's build notes: "hw.memsize: 17179869184", "machdep.cpu.brand_string: Apple M2".
# Apple's M2 specs: 8-core CPU, up to 10-core GPU, 8/16/24 GB unified memory. macOS 14.5 is a
# release that runs on the M2 and supports PyTorch's MPS backend (which needs macOS 12.3+).
APPLE_M2_SYSCTL: Mapping[str, str] = {
    "machdep.cpu.brand_string": "Apple M2",
    "hw.memsize": "17179869184",
    "kern.osproductversion": "14.5",
}
