"""``--distributed`` under a real ``torchrun`` with two gloo ranks on the CPU."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def _torchrun() -> list[str]:
    # The torchrun of this interpreter's environment, as a module so no PATH lookup is needed.
    return [sys.executable, "-m", "torch.distributed.run"]


@pytest.mark.parametrize("world_size", [2])
def test_two_gloo_ranks_all_reduce(tmp_path: Path, world_size: int) -> None:
    env = dict(os.environ, NO_COLOR="1")
    env.pop("DLREADY_SMOKE_TEST_HOOK", None)
    completed = subprocess.run(
        [
            *_torchrun(),
            "--standalone",
            f"--nproc-per-node={world_size}",
            "--redirects=3",
            f"--log-dir={tmp_path}",
            "-m",
            "dlready",
            "smoke",
            "--device",
            "cpu",
            "--distributed",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    reports = sorted(tmp_path.rglob("stdout.log"))
    assert len(reports) == world_size
    ranks = set()
    for report in reports:
        document = json.loads(report.read_text())
        assert document["exit_code"] == 0
        checks = {c["name"]: c for c in document["data"]["devices"][0]["checks"]}
        check = checks["distributed.all_reduce"]
        assert check["status"] == "pass", check["message"]
        assert check["measured"]["backend"] == "gloo"
        assert check["measured"]["world_size"] == world_size
        assert f"= {world_size * (world_size + 1) // 2}" in check["message"]
        ranks.add(check["measured"]["rank"])
    assert ranks == set(range(world_size))
