"""scripts/compare_with_nvidia_smi.py, run on the recorded servers' nvidia-smi output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import FIXTURES
from dlready.exitcodes import ExitCode
from dlready.model import to_jsonable
from dlready.output import envelope
from machines import replay_snapshot

SCRIPT = Path(__file__).parents[1] / "scripts/compare_with_nvidia_smi.py"


def _run(
    tmp_path: Path, machine: str, edit: dict[str, object] | None = None
) -> subprocess.CompletedProcess[str]:
    document = envelope("check", ExitCode.OK, {"snapshot": to_jsonable(replay_snapshot(machine))})
    for field, value in (edit or {}).items():
        document["data"]["snapshot"]["gpus"][0][field]["value"] = value
    report = tmp_path / "check.json"
    report.write_text(json.dumps(document))
    return subprocess.run(
        [sys.executable, str(SCRIPT), str(report), str(FIXTURES / machine / "query.csv")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize("machine", ["h100-80gb-hbm3", "h200-141gb"])
def test_recorded_servers_agree_with_their_nvidia_smi(tmp_path: Path, machine: str) -> None:
    result = _run(tmp_path, machine)
    assert result.returncode == 0, result.stdout
    assert "0 differ" in result.stdout
    assert "memory.total" in result.stdout
    assert "compute_cap" in result.stdout


def test_a_wrong_value_is_reported(tmp_path: Path) -> None:
    result = _run(tmp_path, "h100-80gb-hbm3", {"max_sm_clock_mhz": 1755.0})
    assert result.returncode == 1
    assert "clocks.max.sm" in result.stdout
    assert "DIFFER" in result.stdout
