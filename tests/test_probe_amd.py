"""The AMD probe on sysfs files as the amdgpu driver writes them (see scenarios_gpu.py)."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import RECORDED_MACHINES, load_procfiles
from dlready.model import GpuVendor, ReadState, Source, StackState
from dlready.probes.amd import AMD_DEVICE_NAMES, probe_amd
from dlready.probes.hostfs import ReplayHostFiles
from scenarios_gpu import amd_files, amd_files_without_driver

# What the probe must read from the RX 7900 XTX desktop (values and units documented in
# scenarios_gpu.py): bytes, watts from microwatts, degrees C from millidegrees.
EXPECTED_7900_XTX: dict[str, Any] = {
    "name": "AMD Radeon RX 7900 XTX / 7900 XT / 7900 GRE",
    "architecture": "RDNA 3",
    "pci_bus_id": "0000:03:00.0",
    "memory_total_bytes": 25753026560,
    "memory_free_bytes": 25753026560 - 15960199168,
    "max_memory_clock_mhz": 1249.0,
    "power_limit_enforced_w": 315.0,
    "power_draw_w": 89.0,
    "temperature_c": 50.0,
    "pcie_generation_current": 4,
    "pcie_generation_max": 4,
    "pcie_width_current": 16,
    "pcie_width_max": 16,
}
EXPECTED_IGPU: dict[str, Any] = {
    "name": "AMD GPU (device 0x164e)",  # not in dlready's table: named by its id
    "pci_bus_id": "0000:12:00.0",
    "memory_total_bytes": 536870912,
    "power_draw_w": 39.02,
    "temperature_c": 42.0,
}


def test_rx_7900_xtx_desktop() -> None:
    stack, gpus = probe_amd(amd_files())
    assert stack.state is StackState.OK
    assert stack.device_count.value == 2
    assert [(gpu.index, gpu.vendor) for gpu in gpus] == [(0, GpuVendor.AMD), (1, GpuVendor.AMD)]
    dgpu, igpu = gpus
    assert {name: getattr(dgpu, name).value for name in EXPECTED_7900_XTX} == EXPECTED_7900_XTX
    assert {name: getattr(igpu, name).value for name in EXPECTED_IGPU} == EXPECTED_IGPU
    assert dgpu.memory_total_bytes.source is Source.SYSFS


@pytest.mark.parametrize(
    ("field", "state", "reason_part"),
    [
        pytest.param("power_limit_enforced_w", ReadState.UNSUPPORTED, "power1_cap", id="no-cap"),
        pytest.param("memory_free_bytes", ReadState.UNSUPPORTED, "vram_used", id="no-vram-used"),
        pytest.param("max_sm_clock_mhz", ReadState.UNSUPPORTED, "pp_dpm_sclk", id="no-sclk"),
        pytest.param("architecture", ReadState.UNSUPPORTED, "table", id="unknown-device-id"),
        pytest.param("compute_capability", ReadState.UNSUPPORTED, "NVIDIA", id="not-cuda"),
    ],
)
def test_igpu_missing_files_keep_their_reason(
    field: str, state: ReadState, reason_part: str
) -> None:
    _, (_, igpu) = probe_amd(amd_files())
    reading = getattr(igpu, field)
    assert reading.state is state
    assert reason_part in (reading.reason or "")


@pytest.mark.parametrize(
    ("changes", "field", "expected"),
    [
        pytest.param(
            {"/sys/class/drm/card0/device/product_name": "AMD Radeon Pro Board\n"},
            "name",
            "AMD Radeon Pro Board",
            id="product-name-wins-over-the-table",
        ),
        pytest.param(
            {"/sys/class/drm/card0/device/current_link_speed": "8.0 GT/s PCIe\n"},
            "pcie_generation_current",
            3,
            id="link-trained-down-to-gen3",
        ),
        pytest.param(
            {
                "/sys/class/drm/card0/device/hwmon/hwmon2/power1_average": None,
                "/sys/class/drm/card0/device/hwmon/hwmon2/power1_input": "89000000\n",
            },
            "power_draw_w",
            89.0,
            id="power1-input-when-no-average",
        ),
        pytest.param(
            {"/sys/class/drm/card0/device/mem_info_vram_total": "garbage\n"},
            "memory_total_bytes",
            None,
            id="unparsable-vram-is-failed",
        ),
    ],
)
def test_variations(changes: dict[str, str | None], field: str, expected: Any) -> None:
    _, gpus = probe_amd(amd_files(changes))
    reading = getattr(gpus[0], field)
    assert reading.value == expected
    if expected is None:
        assert reading.state is ReadState.FAILED


def test_driver_version_from_module_or_kernel() -> None:
    stack, _ = probe_amd(amd_files({"/proc/sys/kernel/osrelease": "6.8.0-45-generic\n"}))
    assert stack.driver_version.value == "in-kernel (Linux 6.8.0-45-generic)"
    stack, _ = probe_amd(amd_files({"/sys/module/amdgpu/version": "6.8.5\n"}))
    assert stack.driver_version.value == "6.8.5"


@pytest.mark.parametrize(
    ("files", "state", "reason_part"),
    [
        pytest.param(
            amd_files_without_driver(), StackState.DRIVER_NOT_LOADED, "not loaded", id="no-amdgpu"
        ),
        pytest.param(
            amd_files_without_driver().with_files(
                {"/sys/module/amdgpu/parameters/ppfeaturemask": "0xfff7bfff\n"}
            ),
            StackState.DRIVER_NOT_LOADED,
            "not bound",
            id="amdgpu-loaded-not-bound",
        ),
        pytest.param(
            amd_files_without_driver().with_files(
                {"/sys/class/drm/card0/device/uevent": "DRIVER=radeon\n"}
            ),
            StackState.DRIVER_NOT_LOADED,
            "radeon",
            id="legacy-radeon-driver",
        ),
    ],
)
def test_gpus_without_amdgpu(files: ReplayHostFiles, state: StackState, reason_part: str) -> None:
    stack, gpus = probe_amd(files)
    assert stack.state is state
    assert reason_part in (stack.reason or "")
    assert "modprobe amdgpu" in (stack.hint or "")
    assert len(gpus) == 2
    assert gpus[0].name.value == EXPECTED_7900_XTX["name"]
    assert gpus[0].memory_total_bytes.state is ReadState.UNSUPPORTED


def test_only_cards_not_connectors_or_render_nodes_and_not_other_vendors() -> None:
    nvidia_card = {
        "/sys/class/drm/card2/device/vendor": "0x10de\n",
        "/sys/class/drm/card2/device/device": "0x2684\n",
        "/sys/class/drm/card2/device/uevent": "DRIVER=nvidia\n",
    }
    _, gpus = probe_amd(amd_files(nvidia_card))
    assert [gpu.pci_bus_id.value for gpu in gpus] == ["0000:03:00.0", "0000:12:00.0"]


@pytest.mark.parametrize("machine", RECORDED_MACHINES)
def test_recorded_machines_have_no_amd_gpu(machine: str) -> None:
    stack, gpus = probe_amd(ReplayHostFiles.from_procfiles(load_procfiles(machine)))
    assert stack.state is StackState.NOT_APPLICABLE
    assert gpus == ()


def test_no_amd_gpu_among_drm_cards() -> None:
    files = ReplayHostFiles({"/sys/class/drm/card0/device/vendor": "0x8086\n"})
    stack, gpus = probe_amd(files)
    assert stack.state is StackState.NOT_APPLICABLE
    assert "no AMD GPU" in (stack.reason or "")
    assert gpus == ()


def test_device_table_ids_are_pci_ids() -> None:
    assert all(0 < device_id <= 0xFFFF for device_id in AMD_DEVICE_NAMES)
    assert all(name.startswith("AMD ") for name, _ in AMD_DEVICE_NAMES.values())
