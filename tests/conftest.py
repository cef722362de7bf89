"""Shared test helpers: where the recorded machines live."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"
TOOLS = Path(__file__).parent.parent / "tools"
# The developer tools' modules (the install-command parser) do not ship in the package.
sys.path.insert(0, str(TOOLS))
RECORDED_MACHINES = ("h100-80gb-hbm3", "h200-141gb", "cpu-only-epyc-vm")


def load_capture(machine: str) -> dict[str, Any]:
    """The ``capture.json`` of one recorded machine."""
    data: dict[str, Any] = json.loads((FIXTURES / machine / "capture.json").read_text())
    return data


def load_procfiles(machine: str) -> str:
    """The ``procfiles.txt`` of one recorded machine."""
    return (FIXTURES / machine / "procfiles.txt").read_text()


@pytest.fixture(autouse=True)
def _no_color(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests read plain text; colour is tested explicitly where it matters."""
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("DLREADY_PSU_WATTS", raising=False)
