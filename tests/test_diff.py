"""``dlready diff``: two saved check or fleet reports, field by field."""

from __future__ import annotations

import copy
import json
import os
import threading
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dlready.cli import app
from dlready.commands.check import build_report
from dlready.exitcodes import ExitCode
from dlready.fleet.assemble import Gathered, assemble
from dlready.model import to_jsonable
from dlready.output import envelope
from dlready.probes.nvml_gateway import ReplayNvml
from dlready.render.check_json import report_jsonable
from dlready.report_diff import MAX_REPORT_FILE_BYTES, diff_reports
from fleet_scenarios import h100_fleet
from machines import load_capture, replay_snapshot

runner = CliRunner()


def _check_document(machine: str = "h100-80gb-hbm3", **kwargs: Any) -> dict[str, Any]:
    snapshot = replay_snapshot(machine, **kwargs)
    report, _build = build_report(snapshot, None, None)
    data = report_jsonable(report, snapshot, "minimum", False)
    return json.loads(json.dumps(envelope("check", ExitCode.OK, data)))


def _fleet_document(gathered: Gathered) -> dict[str, Any]:
    return json.loads(json.dumps(envelope("fleet", ExitCode.OK, to_jsonable(assemble(gathered)))))


def _write(tmp_path: Path, name: str, document: Any) -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(document))
    return path


def test_the_same_report_twice_is_the_same(tmp_path: Path) -> None:
    document = _check_document()
    a = _write(tmp_path, "a.json", document)
    b = _write(tmp_path, "b.json", document)
    result = runner.invoke(app, ["diff", str(a), str(b)])
    assert result.exit_code == 0, result.output
    assert "are the same" in result.stdout


def test_two_recorded_machines_differ_field_by_field(tmp_path: Path) -> None:
    a = _write(tmp_path, "h100.json", _check_document("h100-80gb-hbm3"))
    b = _write(tmp_path, "h200.json", _check_document("h200-141gb"))
    result = runner.invoke(app, ["diff", str(a), str(b)])
    assert result.exit_code == 1
    assert (
        'changed         data.snapshot.gpus[index=0].name: "NVIDIA H100 80GB HBM3" -> "NVIDIA H200"'
        in result.stdout
    )
    assert "data.snapshot.gpus[index=0].memory_total_bytes" in result.stdout
    assert "differ:" in result.stdout


def test_a_reading_taken_on_one_side_only_is_not_comparable() -> None:
    before = _check_document()
    after = copy.deepcopy(before)
    gpu = after["data"]["snapshot"]["gpus"][0]
    gpu["power_limit_enforced_w"] = {
        "value": None,
        "source": "nvml",
        "state": "failed",
        "reason": "NVML timed out",
    }
    (difference,) = diff_reports(before, after)
    assert difference.kind == "not_comparable"
    assert difference.path == "data.snapshot.gpus[index=0].power_limit_enforced_w"
    assert difference.reason == "after: failed (NVML timed out)"


def test_a_rank_that_disappeared_and_a_speed_that_changed() -> None:
    def slow(g: Gathered) -> None:
        g.results["health"][3]["matmul_tflops"] = 500.0

    def noisy(g: Gathered) -> None:
        g.results["health"][3]["matmul_tflops"] = 794.3 * 0.97  # within run-to-run noise

    before = _fleet_document(h100_fleet(1))
    assert diff_reports(before, _fleet_document(h100_fleet(1, change=noisy))) == []
    changed = diff_reports(before, _fleet_document(h100_fleet(1, change=slow)))
    paths = {d.path: d for d in changed}
    assert paths["data.ranks[rank=3].matmul_tflops"].after == 500.0
    assert paths["data.ranks[rank=3].status"].after == "straggler"
    assert any(d.kind == "appeared" and d.path.startswith("data.findings") for d in changed)
    smaller = _fleet_document(h100_fleet(1, gpus_per_node=7))
    kinds = {d.path: d.kind for d in diff_reports(before, smaller)}
    assert kinds["data.ranks[rank=7]"] == "disappeared"
    assert kinds["data.world_size"] == "changed"


def test_json_output_is_the_versioned_envelope(tmp_path: Path) -> None:
    a = _write(tmp_path, "a.json", _check_document("h100-80gb-hbm3"))
    b = _write(tmp_path, "b.json", _check_document("h200-141gb"))
    result = runner.invoke(app, ["diff", "--json", str(a), str(b)])
    assert result.exit_code == 1
    document = json.loads(result.stdout)
    assert document["command"] == "diff"
    assert document["status"] == "different"
    assert document["data"]["counts"]["changed"] >= 2
    first = document["data"]["differences"][0]
    assert set(first) == {"path", "kind", "before", "after", "reason"}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not JSON"),
        ('{"a": 1}', "not a dlready report"),
        ('{"command": "smoke", "data": {}, "schema_version": 1}', "a `smoke` report"),
        ('{"command": "check", "data": {}, "schema_version": 99}', "schema_version 99"),
        ('{"command": "check", "data": {}, "schema_version": true}', "schema_version True"),
        ('{"command": "check", "data": {"x": NaN}, "schema_version": 1}', "NaN"),
    ],
)
def test_bad_input_exits_2(tmp_path: Path, content: str, message: str) -> None:
    good = _write(tmp_path, "good.json", _check_document())
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = runner.invoke(app, ["diff", str(good), str(bad)])
    assert result.exit_code == 2
    assert message in result.stderr
    assert result.stdout == ""


def test_a_check_report_and_a_fleet_report_cannot_be_compared(tmp_path: Path) -> None:
    a = _write(tmp_path, "check.json", _check_document())
    b = _write(tmp_path, "fleet.json", _fleet_document(h100_fleet(1)))
    result = runner.invoke(app, ["diff", str(a), str(b)])
    assert result.exit_code == 2
    assert "cannot compare a `check` report with a `fleet` report" in result.stderr


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    good = _write(tmp_path, "good.json", _check_document())
    result = runner.invoke(app, ["diff", str(good), str(tmp_path / "nope.json")])
    assert result.exit_code == 2
    assert "cannot read" in result.stderr


def test_volatile_values_only_with_all() -> None:
    before = _check_document()
    after = copy.deepcopy(before)
    after["data"]["snapshot"]["captured_at"] = "2030-01-01T00:00:00+00:00"
    assert diff_reports(before, after) == []
    (difference,) = diff_reports(before, after, include_volatile=True)
    assert difference.path == "data.snapshot.captured_at"


def test_refusals_are_the_json_envelope_too(tmp_path: Path) -> None:
    import subprocess
    import sys

    good = _write(tmp_path, "good.json", _check_document())
    completed = subprocess.run(
        [sys.executable, "-m", "dlready", "diff", "--json", str(good), str(tmp_path / "no.json")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 2
    document = json.loads(completed.stdout)
    assert (document["command"], document["exit_code"]) == ("diff", 2)
    assert document["errors"][0]["code"] == "bad_input"
    assert "cannot read" in completed.stderr


def test_a_value_derived_from_a_volatile_one_is_left_out_with_it() -> None:
    # The recorded H100 at 37 °C, then warmer after a job: the same machine, run to run.
    warm = ReplayNvml.from_capture(load_capture("h100-80gb-hbm3")["nvml"]).with_gpu_overrides(
        {"nvmlDeviceGetTemperature": 61}
    )
    before = _check_document()
    after = _check_document(nvml=warm)
    assert diff_reports(before, after) == []
    paths = {d.path for d in diff_reports(before, after, include_volatile=True)}
    assert "data.snapshot.gpus[index=0].temperature_c" in paths
    assert any("gpu0_slowdown_margin_c" in path for path in paths), paths


def test_numbers_are_printed_in_the_one_number_format(tmp_path: Path) -> None:
    def slow(g: Gathered) -> None:
        g.results["health"][3]["matmul_tflops"] = 600.0

    a = _write(tmp_path, "a.json", _fleet_document(h100_fleet(1)))
    b = _write(tmp_path, "b.json", _fleet_document(h100_fleet(1, change=slow)))
    result = runner.invoke(app, ["diff", str(a), str(b)])
    assert result.exit_code == 1
    # 600 / 794.3 = 75.5394..., printed with four significant digits like every number.
    assert "data.ranks[rank=3].matmul_percent_of_median: 100 -> 75.54" in result.stdout
    assert "data.ranks[rank=3].matmul_tflops: 794.3 -> 600\n" in result.stdout


def _invoke_within(args: list[str], seconds: float = 30.0) -> Any:
    """The CLI's result, or a failure (not a hung test run) when it does not return in time."""
    outcome: dict[str, Any] = {}
    worker = threading.Thread(
        target=lambda: outcome.update(result=runner.invoke(app, args)), daemon=True
    )
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"diff {args} did not return within {seconds:g} s"
    return outcome["result"]


@pytest.mark.parametrize("kind", ["fifo", "endless device", "directory", "huge file"])
def test_a_path_that_is_no_small_regular_file_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    good = _write(tmp_path, "good.json", _check_document())
    if kind == "fifo":
        path, message = tmp_path / "pipe.json", "it is a FIFO (named pipe), not a regular file"
        os.mkfifo(path)  # nobody writes it: a plain open() blocks forever
    elif kind == "endless device":
        path, message = Path("/dev/zero"), "it is a character device, not a regular file"
    elif kind == "directory":
        path, message = tmp_path, "it is a directory, not a regular file"
    else:
        path, message = tmp_path / "huge.json", "it is larger than 512 MiB"
        with path.open("wb") as sparse:  # sparse: takes no disk, reads as zeros
            sparse.truncate(MAX_REPORT_FILE_BYTES + 1)
    result = _invoke_within(["diff", str(good), str(path)])
    assert result.exit_code == 2
    assert f"{path}: cannot read: {message}" in result.stderr
    assert result.stdout == ""


def test_more_gpus_pair_parts_by_kind_not_by_position() -> None:
    """One H100 against four RTX 4090s: GPU 0 is compared with GPU 0, the power supply with
    the power supply; three GPU parts appeared (positions would pair the PSU with a GPU)."""
    from scenarios_gpu import nvidia_scenario

    before = _check_document()
    after = _check_document(nvml=nvidia_scenario("4x-rtx-4090").replay())
    found = diff_reports(before, after)
    paths = {d.path: d for d in found}
    appeared = sorted(d.path for d in found if d.kind == "appeared" and d.path.endswith("]"))
    assert [p for p in appeared if p.startswith("data.components[component=gpu")] == [
        "data.components[component=gpu#2]",
        "data.components[component=gpu#3]",
        "data.components[component=gpu#4]",
    ]
    subject = paths["data.components[component=gpu].subject"]
    assert (subject.before, subject.after) == (
        "GPU 0: NVIDIA H100 80GB HBM3",
        "GPU 0: NVIDIA GeForce RTX 4090",
    )
    assert not [d for d in found if d.path.endswith("].component")]  # no part became another


def test_not_judged_entries_pair_by_part() -> None:
    """A part that could not be judged on one side only is one entry that appeared, not every
    later entry shifted by one (a Mac's GPU row before the power supply)."""
    before = _check_document()
    after = copy.deepcopy(before)
    parts = after["data"]["not_judged"]
    parts.insert(1, {"criteria": ["compute_capability"], "part": "GPU 0: Apple M2"})
    found = diff_reports(before, after)
    assert [(d.kind, d.path) for d in found] == [
        ("appeared", "data.not_judged[part=GPU 0: Apple M2]")
    ]
