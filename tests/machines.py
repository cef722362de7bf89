"""Whole-machine replays: every probe fed from one recorded machine (plus documented changes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from conftest import load_capture, load_procfiles
from dlready.model import MachineSnapshot, TorchInstall
from dlready.probes.collect import ProbeBackends, collect_snapshot
from dlready.probes.host_gateway import ReplayHost
from dlready.probes.hostfs import ReplayHostFiles
from dlready.probes.nvml_gateway import ReplayNvml
from dlready.probes.tools_gateway import ReplayTools
from dlready.probes.torch_meta import torch_install_from_version_py

# torch as recorded on each machine (collect_env.txt / capture.json "torch").
RECORDED_TORCH_VERSION_PY = {
    "h100-80gb-hbm3": "__version__ = '2.11.0+cu130'\ncuda = '13.0'\nhip = None\n",
    "h200-141gb": "__version__ = '2.11.0+cu130'\ncuda = '13.0'\nhip = None\n",
}


def recorded_torch(machine: str) -> TorchInstall:
    """The torch install each recorded machine had (none on the CPU VM at recording time)."""
    text = RECORDED_TORCH_VERSION_PY.get(machine)
    if text is None:
        return TorchInstall(installed=False)
    return torch_install_from_version_py(text, "/usr/lib/python3/site-packages/torch")


def replay_backends(
    machine: str,
    *,
    nvml: Any = None,
    files_extra: Mapping[str, str | bytes | None] | None = None,
    host_overrides: Mapping[str, Any] | None = None,
    torch: TorchInstall | None = None,
    tools: ReplayTools | None = None,
) -> ProbeBackends:
    """Backends replaying ``machine``; ``nvml`` defaults to the machine's own NVML recording."""
    capture = load_capture(machine)
    files = ReplayHostFiles.from_procfiles(load_procfiles(machine))
    if files_extra:
        files = files.with_files(files_extra)
    host = ReplayHost.from_capture(capture, **dict(host_overrides or {}))
    torch_install = torch if torch is not None else recorded_torch(machine)
    return ProbeBackends(
        files=files,
        host=host,
        nvml=nvml if nvml is not None else ReplayNvml.from_capture(capture["nvml"]),
        sysctl=lambda name: None,
        torch=lambda: torch_install,
        # Build tools were not recorded on these machines: none unless a test gives some.
        tools=tools if tools is not None else ReplayTools(),
        nvml_timeout_s=2.0,
    )


def replay_snapshot(
    machine: str, *, psu_watts: float | None = None, **kwargs: Any
) -> MachineSnapshot:
    """A full snapshot of a recorded machine."""
    return collect_snapshot(backends=replay_backends(machine, **kwargs), psu_watts=psu_watts)
