"""Words people read for the model's internal names (clock-event reasons, driver states).

One place, so that no enum value reaches human output; JSON keeps the names themselves.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# NVML clock-event reasons (``nvidia-smi -q`` "Clocks Event Reasons"), in plain words.
_CLOCK_EVENT_WORDS = {
    "gpu_idle": "idle",
    "applications_clocks_setting": "clocks set by an application",
    "sw_power_cap": "power cap",
    "hw_slowdown": "hardware slowdown (heat or power)",
    "sync_boost": "held with other GPUs (sync boost)",
    "sw_thermal_slowdown": "heat (driver slowdown)",
    "hw_thermal_slowdown": "heat (hardware slowdown)",
    "hw_power_brake_slowdown": "power brake (power supply signal)",
    "display_clock_setting": "display clock setting",
}

# NVIDIA/AMD/Apple driver stack states, as a short phrase.
_STACK_STATE_WORDS = {
    "ok": "working",
    "not_installed": "not installed",
    "driver_not_loaded": "installed but not loaded",
    "version_mismatch": "driver and library versions differ (reboot needed)",
    "no_permission": "no permission to use it",
    "timed_out": "did not answer in time",
    "failed": "not working",
    "not_applicable": "not applicable here",
}


def clock_event_words(reasons: Iterable[str]) -> str:
    """``hw_thermal_slowdown, sw_power_cap`` -> ``heat (hardware slowdown), power cap``."""
    words = []
    for reason in reasons:
        if reason.startswith("unknown_"):
            words.append(f"an unnamed reason ({reason.removeprefix('unknown_')})")
        else:
            words.append(_CLOCK_EVENT_WORDS.get(reason, reason.replace("_", " ")))
    return ", ".join(words)


def stack_state_words(state: str) -> str:
    """``driver_not_loaded`` -> ``installed but not loaded``."""
    return _STACK_STATE_WORDS.get(state, state.replace("_", " "))


_VENDOR_WORDS = {"nvidia": "NVIDIA", "amd": "AMD", "apple": "Apple", "intel": "Intel"}
_OS_WORDS = {"linux": "Linux", "windows": "Windows", "macos": "macOS"}


def vendor_words(vendor: str) -> str:
    """``nvidia`` -> ``NVIDIA``; an unknown vendor is "an unknown vendor's"."""
    return _VENDOR_WORDS.get(vendor, "unknown vendor's")


def os_words(os_name: str) -> str:
    """``macos`` -> ``macOS``."""
    return _OS_WORDS.get(os_name, "an unrecognised operating system")


def arch_support_words(arch: str, support: str) -> str:
    """How a torch build serves a GPU architecture (``ArchSupport``), in words."""
    return {
        "native": f"this build has native code for {arch}",
        "ptx": f"this build reaches {arch} only through PTX, compiled on first use",
        "missing": f"this build has no code for {arch}",
    }.get(support, f"whether this build has code for {arch} is unknown")


_PROBE_WORDS = {
    "platform": "the system",
    "cpu": "the CPU",
    "memory": "the memory",
    "torch": "the installed PyTorch",
    "pci": "the PCI bus",
    "nvidia": "the NVIDIA GPUs",
    "amd": "the AMD GPUs",
    "apple": "the Apple GPU",
    "build": "the build tools",
}


def probe_words(probe: str) -> str:
    """``nvidia`` -> ``the NVIDIA GPUs``: what a probe reads."""
    return _PROBE_WORDS.get(probe, f"part of the machine ({probe})")


# NVML's exception names and messages (``NVMLError_GpuIsLost: GPU is lost``) are kept in the
# snapshot and the JSON; people read these words instead.
_NVML_ERROR_WORDS = {
    "NVMLError_GpuIsLost": "the GPU is lost",
    "NVMLError_NoPermission": "no permission to open it",
    "NVMLError_Unknown": "an unknown driver error",
    "NVMLError_NotSupported": "not supported by this GPU",
    "NVMLError_FunctionNotFound": "missing from this driver",
    "NVMLError_LibraryNotFound": "the NVIDIA driver's library was not found",
    "NVMLError_LibRmVersionMismatch": "the driver and its library differ in version",
    "NVMLError_DriverNotLoaded": "the driver is not loaded",
    "NVMLError_InsufficientPower": "not enough power connected to the card",
    "NVMLError_Timeout": "it did not answer in time",
}
# " (NVMLError_X: message)" after words that already say it; "NVMLError_X: message" inline.
_NVML_IN_BRACKETS = re.compile(r" \(NVMLError_\w+(?::[^()]*(?:\([^()]*\)[^()]*)*)?\)")
_NVML_INLINE = re.compile(r"(NVMLError_\w+)(?:: ([^;]*))?")


def plain_error_text(text: str) -> str:
    """``... (NVMLError_LibRmVersionMismatch: RM has detected ...)`` -> ``...``, and
    ``NVMLError_GpuIsLost: GPU is lost`` -> ``the GPU stopped answering``: words for people."""
    text = _NVML_IN_BRACKETS.sub("", text)
    return _NVML_INLINE.sub(
        lambda m: _NVML_ERROR_WORDS.get(m.group(1), m.group(2) or "a driver error"), text
    )


# How `dlready fleet` was started (``fleet.launch.Launch.launcher``).
_LAUNCHER_WORDS = {
    "torchrun": "launched by torchrun",
    "slurm": "launched by Slurm (srun)",
    "environment": "launched from RANK and WORLD_SIZE variables",
    "single": "one process, no launcher",
}


def launcher_words(launcher: str) -> str:
    """``single`` -> ``one process, no launcher``; ``torchrun`` -> ``launched by torchrun``."""
    return _LAUNCHER_WORDS.get(launcher, f"launched by {launcher.replace('_', ' ')}")
