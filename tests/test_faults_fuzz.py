"""Property tests (hypothesis) for what dlready reads back: 0 crashes.

- whatever ``check`` writes, ``check --snapshot`` reads back, equal (raw NVML values of any
  64-bit size through the replayed H100, and generated readings in every model field);
- mutated real reports through ``--snapshot`` and mutated real profiles through ``--spec``
  end in a report or a one-line refusal (exit 0, 1 or 2), never a traceback.

Example counts are modest (the suite runs on every CI stop); set DLREADY_FUZZ_EXAMPLES for a
deeper sweep.
"""

from __future__ import annotations

import io
import json
import os
import typing
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from dlready.cli import app
from dlready.commands.check import build_report
from dlready.exitcodes import ExitCode
from dlready.model import (
    CpuInfo,
    GpuInfo,
    MachineSnapshot,
    MemoryInfo,
    Reading,
    ReadState,
    Source,
    to_jsonable,
)
from dlready.output import dump_json, envelope
from dlready.plausibility import screen_snapshot
from dlready.render.check_json import report_jsonable
from dlready.render.check_render import render_markdown, render_table
from dlready.snapshot_file import load_snapshot_file
from machines import replay_snapshot
from scenarios_gpu import h100_replay

REPO = Path(__file__).parents[1]
H100 = "h100-80gb-hbm3"
FUZZ = settings(
    # DLREADY_FUZZ_EXAMPLES=2000 for a deeper sweep by hand.
    max_examples=int(os.environ.get("DLREADY_FUZZ_EXAMPLES", "30")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
runner = CliRunner()

_BASE = replay_snapshot(H100)
_BASE_DOCUMENT: dict[str, Any] = to_jsonable(_BASE)


def _write_report(path: Path, snapshot: MachineSnapshot) -> None:
    """What ``check --json`` writes (same envelope, same JSON writer)."""
    report, _ = build_report(snapshot, None, None)
    document = envelope(
        "check", ExitCode.OK, report_jsonable(report, snapshot, "minimum", False), status="x"
    )
    path.write_text(dump_json(document), encoding="utf-8")


def _judge_and_render(snapshot: MachineSnapshot) -> None:
    from rich.console import Console

    report, _ = build_report(snapshot, None, None)
    render_table(report, snapshot, Console(file=io.StringIO(), width=100))
    render_markdown(report, snapshot).encode("utf-8")
    dump_json(report_jsonable(report, snapshot, "minimum", False)).encode("utf-8")


# --- whatever check writes, check reads back ------------------------------------------------

_nvml_int = st.one_of(
    st.integers(min_value=0, max_value=2**64 - 1),
    st.sampled_from([2**32 - 1, 2**32 - 5, 2**64 - 1, 0, 2**31 - 1]),
    st.integers(min_value=-(2**31), max_value=-1),
)
_NVML_INT_KEYS = (
    "nvmlDeviceGetTemperature",
    "nvmlDeviceGetNumGpuCores",
    "max_clock_sm",
    "max_clock_mem",
    "nvmlDeviceGetEnforcedPowerLimit",
    "nvmlDeviceGetPowerManagementDefaultLimit",
    "nvmlDeviceGetPowerUsage",
    "temp_threshold_slowdown",
    "temp_threshold_shutdown",
    "nvmlDeviceGetFanSpeed",
    "nvmlDeviceGetMemoryBusWidth",
    "nvmlDeviceGetCurrPcieLinkWidth",
    "nvmlDeviceGetMaxPcieLinkGeneration",
)


@st.composite
def _nvml_overrides(draw: st.DrawFn) -> dict[str, Any]:
    keys = draw(st.lists(st.sampled_from(_NVML_INT_KEYS), min_size=1, max_size=5, unique=True))
    overrides: dict[str, Any] = {key: draw(_nvml_int) for key in keys}
    if draw(st.booleans()):
        total, free = draw(_nvml_int), draw(_nvml_int)
        overrides["nvmlDeviceGetMemoryInfo"] = {"total": total, "free": free, "used": 0}
    if draw(st.booleans()):
        overrides["nvmlDeviceGetCudaComputeCapability"] = [draw(_nvml_int), draw(_nvml_int)]
    return overrides


@FUZZ
@given(overrides=_nvml_overrides())
def test_any_nvml_values_make_a_report_that_reads_back_equal(
    tmp_path: Path, overrides: dict[str, Any]
) -> None:
    snapshot = replay_snapshot(H100, nvml=h100_replay().with_gpu_overrides(overrides))
    path = tmp_path / "report.json"
    _write_report(path, snapshot)
    loaded = load_snapshot_file(path)
    assert loaded == snapshot
    _judge_and_render(loaded)


def _reading_strategy(hint: Any) -> st.SearchStrategy[Reading[Any]]:
    """Readings of the field's own type, of any size, in any state."""
    (value_type,) = typing.get_args(hint)
    values: st.SearchStrategy[Any] = {
        int: st.integers(min_value=-(2**64) + 1, max_value=2**64 - 1),
        float: st.floats(allow_nan=False, allow_infinity=False),
        str: st.text(max_size=30),
        bool: st.booleans(),
    }.get(value_type, st.lists(st.text(max_size=10), max_size=3).map(tuple))
    return st.builds(
        Reading,
        value=st.one_of(st.none(), values),
        source=st.sampled_from(Source),
        state=st.sampled_from(ReadState),
        reason=st.one_of(st.none(), st.text(max_size=40)),
    )


def _model_strategy(model: Any, base: Any) -> st.SearchStrategy[Any]:
    hints = typing.get_type_hints(model)
    fields = {
        f.name: _reading_strategy(hints[f.name])
        for f in msgspec.structs.fields(model)
        if typing.get_origin(hints[f.name]) is Reading
    }
    return st.fixed_dictionaries({}, optional=fields).map(
        lambda changes: msgspec.structs.replace(base, **changes)
    )


@FUZZ
@given(
    gpu=_model_strategy(GpuInfo, _BASE.gpus[0]),
    cpu=_model_strategy(CpuInfo, _BASE.cpu),
    memory=_model_strategy(MemoryInfo, _BASE.memory),
)
def test_generated_snapshots_round_trip_and_are_judged(
    tmp_path: Path, gpu: GpuInfo, cpu: CpuInfo, memory: MemoryInfo
) -> None:
    # What check writes: screened at the probe boundary (collect_snapshot does the same).
    written = screen_snapshot(msgspec.structs.replace(_BASE, gpus=(gpu,), cpu=cpu, memory=memory))
    path = tmp_path / "report.json"
    _write_report(path, written)
    loaded = load_snapshot_file(path)
    assert loaded == written
    _judge_and_render(loaded)


# --- mutated real reports and profiles ----------------------------------------------------------


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(node, dict):
        for key, value in node.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            found += _paths(value, (*prefix, index))
    return found


_DOCUMENT_PATHS = _paths(_BASE_DOCUMENT)[1:]
_hostile_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**400),
        st.floats(allow_nan=False, allow_infinity=False),
        st.text(alphabet=st.characters(codec=None), max_size=20),  # lone surrogates too
        st.sampled_from(["100.100", "sm_90", "-1.-1", "read", "nvml", "\x1b[2J", ""]),
    ),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(), children),
    max_leaves=8,
)


@FUZZ
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(_DOCUMENT_PATHS), _hostile_json), min_size=1, max_size=4
    ),
    mode=st.sampled_from([[], ["--json"], ["--markdown"]]),
)
def test_mutated_real_reports_never_crash(
    tmp_path: Path, mutations: list[tuple[tuple[Any, ...], Any]], mode: list[str]
) -> None:
    document = json.loads(json.dumps(_BASE_DOCUMENT))
    for path, value in mutations:
        node = document
        try:
            for part in path[:-1]:
                node = node[part]
            node[path[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a parent
    file = tmp_path / "report.json"
    file.write_text(
        json.dumps({"command": "check", "schema_version": 1, "data": {"snapshot": document}})
    )
    result = runner.invoke(app, ["check", "--snapshot", str(file), *mode])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1, 2)


_PROFILE_LINES = (REPO / "src/dlready/spec/profiles/current.toml").read_text().splitlines()
_ASSIGNMENTS = [
    i for i, line in enumerate(_PROFILE_LINES) if "=" in line and not line.startswith("#")
]
_hostile_toml_value = st.one_of(
    st.sampled_from(
        [
            "9" * 5000,
            "1e400",
            "-1",
            "nan",
            "inf",
            '"' + "7" * 5000 + '.5"',
            '"\\ud800"',
            "[" * 2000 + "]" * 2000,
            "{a = {b = {c = 1}}}",
            '"100.100"',
            "true",
            '"\x1b[2J"',
            "",
        ]
    ),
    st.integers(min_value=-(10**20), max_value=10**20).map(str),
    st.floats(allow_nan=False).map(repr),
    st.text(max_size=20).map(json.dumps),
)


@FUZZ
@given(
    mutations=st.lists(
        st.tuples(st.sampled_from(_ASSIGNMENTS), _hostile_toml_value), min_size=1, max_size=3
    ),
    bom=st.booleans(),
)
def test_mutated_real_profiles_never_crash(
    tmp_path: Path, mutations: list[tuple[int, str]], bom: bool
) -> None:
    lines = list(_PROFILE_LINES)
    for index, value in mutations:
        key = lines[index].split("=", 1)[0]
        lines[index] = f"{key}= {value}"
    spec = tmp_path / "spec.toml"
    spec.write_text(("\ufeff" if bom else "") + "\n".join(lines) + "\n", encoding="utf-8")
    saved = tmp_path / "saved.json"
    _write_report(saved, _BASE)
    result = runner.invoke(app, ["check", "--snapshot", str(saved), "--spec", str(spec)])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code in (0, 1, 2)
