"""Apple Silicon: the chip and its unified memory, read with ``sysctl``.

The GPU of an M-series chip shares the system memory ("unified memory"), so its memory is
``hw.memsize``. The Metal driver ships with macOS: the macOS version stands for the driver
version. An x86_64 Python running under Rosetta 2 cannot use the GPU (PyTorch's MPS backend
needs a native arm64 Python); ``sysctl.proc_translated`` tells it apart from an Intel Mac.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable

from dlready.model import DriverStack, GpuInfo, GpuVendor, Reading, Source, StackState
from dlready.probes.tools_gateway import run_tool

SYSCTL_TIMEOUT_S = 2.0


def run_sysctl(name: str) -> str | None:
    """``sysctl -n NAME``; None when sysctl is missing, fails, or takes over 2 s."""
    executable = shutil.which("sysctl") or "/usr/sbin/sysctl"
    run = run_tool([executable, "-n", name], timeout_s=SYSCTL_TIMEOUT_S)
    output = run.stdout.strip()
    return output if run.ok and output else None


def probe_apple(
    *, system: str, machine: str, sysctl: Callable[[str], str | None]
) -> tuple[DriverStack, tuple[GpuInfo, ...]]:
    """The Apple Silicon GPU of this Mac, if any.

    Args:
        system: ``platform.system()`` ("Darwin" on macOS).
        machine: ``platform.machine()`` ("arm64" for a native Apple Silicon Python).
        sysctl: returns ``sysctl -n NAME`` or None (:func:`run_sysctl` on a real Mac).

    Returns:
        ``NOT_APPLICABLE`` and no GPU unless this is macOS on arm64; otherwise the Metal stack
        and one GpuInfo with the chip name and unified memory.
    """
    if system != "Darwin":
        return _stack(StackState.NOT_APPLICABLE, "not macOS"), ()
    if machine != "arm64":
        if (sysctl("sysctl.proc_translated") or "").strip() == "1":
            return _stack(
                StackState.NOT_APPLICABLE,
                "this Python is x86_64 running under Rosetta 2 on Apple Silicon: "
                "it cannot use the GPU (MPS)",
                "Install a native arm64 Python (python.org universal2 installer, or arm64 "
                "Homebrew/conda) and install PyTorch into it.",
            ), ()
        return _stack(StackState.NOT_APPLICABLE, f"an Intel Mac ({machine}): no Apple GPU"), ()

    chip = _text(sysctl, "machdep.cpu.brand_string")
    memory = _integer(sysctl, "hw.memsize")
    macos = _text(sysctl, "kern.osproductversion")
    gpu = GpuInfo(
        index=0,
        vendor=GpuVendor.APPLE,
        name=chip,
        architecture=Reading.read("Apple silicon (unified memory)", Source.PLATFORM),
        memory_total_bytes=memory,
        memory_free_bytes=Reading.unsupported(
            Source.SYSCTL, "unified memory is shared with the CPU; see the memory section"
        ),
        compute_capability=Reading.unsupported(
            Source.SYSCTL, "CUDA compute capability: NVIDIA only"
        ),
    )
    stack = DriverStack(
        vendor=GpuVendor.APPLE,
        state=StackState.OK,
        reason="Metal ships with macOS; PyTorch uses it through the MPS backend",
        driver_version=macos,
        device_count=Reading.read(1, Source.PLATFORM),
    )
    return stack, (gpu,)


def _stack(state: StackState, reason: str, hint: str | None = None) -> DriverStack:
    return DriverStack(vendor=GpuVendor.APPLE, state=state, reason=reason, hint=hint)


def _text(sysctl: Callable[[str], str | None], name: str) -> Reading[str]:
    value = sysctl(name)
    if value is None or not value.strip():
        return Reading.failed(Source.SYSCTL, f"sysctl {name} gave no answer")
    return Reading.read(value.strip(), Source.SYSCTL)


def _integer(sysctl: Callable[[str], str | None], name: str) -> Reading[int]:
    text = _text(sysctl, name)
    if text.value is None:
        return text.without_value()
    try:
        return Reading.read(int(text.value), Source.SYSCTL)
    except ValueError:
        return Reading.failed(Source.SYSCTL, f"sysctl {name} gave {text.value!r}, not an integer")
