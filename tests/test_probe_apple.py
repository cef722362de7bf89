"""The Apple Silicon probe on sysctl output (see scenarios_gpu.APPLE_M2_SYSCTL)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dlready.model import GpuVendor, ReadState, Source, StackState
from dlready.probes import apple
from dlready.probes.apple import probe_apple, run_sysctl
from scenarios_gpu import APPLE_M2_SYSCTL


def m2_sysctl(name: str) -> str | None:
    return APPLE_M2_SYSCTL.get(name)


def test_apple_m2() -> None:
    stack, (gpu,) = probe_apple(system="Darwin", machine="arm64", sysctl=m2_sysctl)
    assert stack.vendor is GpuVendor.APPLE
    assert stack.state is StackState.OK
    assert stack.driver_version.value == "14.5"
    assert stack.device_count.value == 1
    assert gpu.vendor is GpuVendor.APPLE
    assert gpu.name.value == "Apple M2"
    assert gpu.memory_total_bytes.value == 16 * 2**30
    assert gpu.memory_total_bytes.source is Source.SYSCTL
    assert gpu.memory_free_bytes.state is ReadState.UNSUPPORTED
    assert gpu.error is None


@pytest.mark.parametrize(
    ("system", "machine", "sysctl_values", "reason_part", "has_hint"),
    [
        pytest.param("Linux", "x86_64", {}, "not macOS", False, id="linux"),
        pytest.param("Windows", "AMD64", {}, "not macOS", False, id="windows"),
        pytest.param("Darwin", "x86_64", {}, "Intel Mac", False, id="intel-mac"),
        pytest.param(
            "Darwin",
            "x86_64",
            {"sysctl.proc_translated": "1"},
            "Rosetta 2",
            True,
            id="x86-python-under-rosetta",
        ),
    ],
)
def test_not_applicable(
    system: str, machine: str, sysctl_values: dict[str, str], reason_part: str, has_hint: bool
) -> None:
    stack, gpus = probe_apple(system=system, machine=machine, sysctl=sysctl_values.get)
    assert stack.state is StackState.NOT_APPLICABLE
    assert reason_part in (stack.reason or "")
    assert (stack.hint is not None) is has_hint
    assert gpus == ()


@pytest.mark.parametrize(
    ("missing", "field"),
    [
        pytest.param("machdep.cpu.brand_string", "name", id="no-brand"),
        pytest.param("hw.memsize", "memory_total_bytes", id="no-memsize"),
    ],
)
def test_sysctl_without_answer_is_a_failed_reading(missing: str, field: str) -> None:
    values = {k: v for k, v in APPLE_M2_SYSCTL.items() if k != missing}
    _, (gpu,) = probe_apple(system="Darwin", machine="arm64", sysctl=values.get)
    reading = getattr(gpu, field)
    assert reading.state is ReadState.FAILED
    assert missing in (reading.reason or "")


def test_non_integer_memsize_is_a_failed_reading() -> None:
    values = {**APPLE_M2_SYSCTL, "hw.memsize": "sixteen"}
    _, (gpu,) = probe_apple(system="Darwin", machine="arm64", sysctl=values.get)
    assert gpu.memory_total_bytes.state is ReadState.FAILED


def fake_sysctl(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    """Put a ``sysctl`` shell script first on PATH."""
    executable = tmp_path / "sysctl"
    executable.write_text("#!/bin/sh\n" + script)
    executable.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}{os.pathsep}{os.environ.get('PATH', '')}")


def test_run_sysctl_returns_the_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sysctl(
        tmp_path, monkeypatch, '[ "$1" = -n ] && [ "$2" = hw.memsize ] && echo 17179869184\n'
    )
    assert run_sysctl("hw.memsize") == "17179869184"


def test_run_sysctl_failure_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sysctl(tmp_path, monkeypatch, "echo 'unknown oid' >&2; exit 1\n")
    assert run_sysctl("dlready.no.such.name") is None


def test_run_sysctl_hang_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_sysctl(tmp_path, monkeypatch, "exec sleep 30\n")
    monkeypatch.setattr(apple, "SYSCTL_TIMEOUT_S", 0.2)
    started = time.perf_counter()
    assert run_sysctl("hw.memsize") is None
    assert time.perf_counter() - started < 5.0


def test_run_sysctl_without_sysctl_is_none(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(apple.shutil, "which", lambda _: str(tmp_path / "no-sysctl"))
    assert run_sysctl("hw.memsize") is None
