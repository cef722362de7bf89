"""Fault harness for what dlready reads: hostile snapshot and spec files, absurd NVML values,
replaced host files (issue #8, input half).

Every row asserts the same contract: no traceback, a documented exit code, a bounded time, and
(for readings) the rest of the report still printed. Injected values come from the real
recordings: NVML answers are the H100 server's capture with one key changed (its sentinels are
NVML's own "no value" integers, 2^32-1 and friends), host files are the recorded /proc files
with one file replaced.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dlready.cli import app
from dlready.model import to_jsonable
from machines import replay_snapshot
from scenarios_gpu import h100_replay, nvml_error

runner = CliRunner()
REPO = Path(__file__).parents[1]
H100 = "h100-80gb-hbm3"
DOCUMENTED_EXIT_CODES = {0, 1, 2, 3}
OUTPUT_MODES = ([], ["--json"], ["--markdown"])
BOUND_S = 20.0
"""Far above any row's real cost (well under a second); a row past it is a hang."""
UINT32_MAX = 2**32 - 1
UINT64_MAX = 2**64 - 1
CGROUP_CPU_MAX = "/sys/fs/cgroup/process_api/1c8e565e525b15c10182d838dc0ca81d/cpu.max"


def _invoke(args: list[str]) -> Any:
    started = time.monotonic()
    result = runner.invoke(app, args)
    elapsed = time.monotonic() - started
    assert elapsed < BOUND_S, f"HANG: {args} took {elapsed:.1f} s"
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError(f"TRACEBACK: {args}: {result.exception!r}") from result.exception
    assert "Traceback" not in result.output, f"TRACEBACK: {args}"
    assert result.exit_code in DOCUMENTED_EXIT_CODES, f"WRONG exit {result.exit_code}: {args}"
    return result


def _run_cli(
    args: list[str], env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A real process, for files that could block (a FIFO) and for real stdout encoding."""
    started = time.monotonic()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "dlready", *args],
            capture_output=True,
            text=True,
            encoding="utf-8",
            errors="replace",
            timeout=BOUND_S,
            env={**os.environ, "NO_COLOR": "1", **(env or {})},
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise AssertionError(f"HANG: {args} ran past {BOUND_S} s") from None
    assert time.monotonic() - started < BOUND_S
    assert "Traceback" not in result.stderr, f"TRACEBACK: {args}: {result.stderr[-800:]}"
    assert result.returncode in DOCUMENTED_EXIT_CODES, f"WRONG exit {result.returncode}: {args}"
    return result


def _h100_document(gpus: int = 2) -> dict[str, Any]:
    document: dict[str, Any] = to_jsonable(
        replay_snapshot(H100, nvml=h100_replay().with_gpu_count(gpus))
    )
    return document


def _report_of(document: dict[str, Any]) -> str:
    return json.dumps(
        {"schema_version": 1, "command": "check", "exit_code": 0, "data": {"snapshot": document}}
    )


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """An edit of one dotted path of a snapshot document (``gpus.0.temperature_c.value``)."""

    def edit(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = document
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node[part]
        node[int(last) if isinstance(node, list) else last] = value

    return edit


def _edited(edit: Callable[[dict[str, Any]], None]) -> bytes:
    document = _h100_document()
    edit(document)
    return _report_of(document).encode()


# --- hostile snapshot files ------------------------------------------------------------------
# (content, exit codes allowed, text that must appear on stderr (refused) or stdout (read))

SNAPSHOT_FILES: list[Any] = [
    pytest.param(
        b'{"command":"check","schema_version":1,"data":[1]}',
        {2},
        "$.data.snapshot: missing",
        id="data-not-an-object",
    ),
    pytest.param(
        b'{"command":"check","schema_version":1,"data":null}',
        {2},
        "$.data.snapshot: missing",
        id="data-null",
    ),
    pytest.param(
        b'{"command":"check","schema_version":1,"data":{"snapshot":[]}}',
        {2},
        "$: expected an object",
        id="snapshot-a-list",
    ),
    pytest.param(b"[" * 100_000 + b"]" * 100_000, {2}, "nested too deeply", id="nested-100k"),
    pytest.param(
        b'{"a":' * 100_000 + b"1" + b"}" * 100_000, {2}, "nested too deeply", id="nested-objects"
    ),
    pytest.param(b"[1]", {2}, "the file holds a list", id="a-json-list"),
    pytest.param(b'"snapshot"', {2}, "the file holds a string", id="a-json-string"),
    pytest.param(b"", {2}, "not JSON", id="empty"),
    pytest.param(b"\xff\xfe{\x00", {2}, "not UTF-8", id="utf-16"),
    pytest.param(b"1" * 5000, {2}, "not JSON", id="5000-digit-number"),
    pytest.param(
        b'{"schema_version":1,"command":"smoke","exit_code":0,"data":{"checks":[]}}',
        {2},
        "this is a `dlready smoke --json` report, not a machine snapshot",
        id="smoke-report",
    ),
    pytest.param(
        b'{"schema_version":1,"command":"install-cmd","exit_code":0,"data":{}}',
        {2},
        "this is a `dlready install-cmd --json` report",
        id="install-cmd-report",
    ),
    pytest.param(
        b'{"command":"check","schema_version":99,"data":{}}',
        {2},
        "schema_version 99 is not supported",
        id="future-schema",
    ),
    pytest.param(
        lambda: _edited(_set("memory.effective_total_bytes.value", 10**400)),
        {2},
        "$.memory.effective_total_bytes.value: a 401-digit number is out of range",
        id="int-10^400",
    ),
    pytest.param(
        lambda: _edited(_set("gpus.0.power_limit_enforced_w.value", 1e308)),
        {0, 1},
        # The PSU budget falls back to the GPU's default limit: the reason is in --json only.
        "json:implausible reading (1e+308 W)",
        id="power-1e308",
    ),
    pytest.param(
        lambda: _edited(_set("gpus.0.memory_total_bytes.value", UINT64_MAX)),
        {0, 1},
        "implausible reading (about 10^19 bytes)",
        id="vram-2^64-1",
    ),
    pytest.param(
        lambda: _edited(_set("gpus.0.memory_total_bytes.value", -(2**30))),
        {0, 1},
        "implausible reading (-1,073,741,824 bytes)",
        id="vram-negative",
    ),
    pytest.param(
        lambda: _edited(_set("gpus.0.temperature_c.value", -300)),
        {0, 1},
        "implausible reading (-300 °C)",
        id="temperature-below-absolute-zero",
    ),
    pytest.param(
        lambda: _edited(_set("memory.total_bytes.value", 10**23 * 1024)),
        {2},
        "$.memory.total_bytes.value: a 27-digit number is out of range",
        id="memtotal-10^23-kB",
    ),
    pytest.param(
        lambda: _edited(_set("gpus.0.compute_capability.value", "100.100")),
        {0, 1},
        "implausible reading (100.100)",
        id="capability-100.100",
    ),
    pytest.param(
        lambda: _edited(_set("memory.effective_total_bytes.value", 10**18)),
        {0, 1},
        "implausible reading (about 10^18 bytes)",
        id="memtotal-10^18-bytes",
    ),
    pytest.param(
        lambda: _edited(_set("gpus.0.name.value", "NVIDIA \ud800 H100")),
        {0, 1},
        "NVIDIA \ufffd H100",
        id="lone-surrogate-name",
    ),
    pytest.param(
        lambda: _edited(_set("probe_seconds", {"cpu\udfff": 0.1})),
        {0, 1},
        "",
        id="lone-surrogate-key",
    ),
    pytest.param(
        lambda: b"\xef\xbb\xbf" + _edited(lambda document: None),
        {0, 1},
        "meets",
        id="utf-8-bom",
    ),
]


def _content(content: bytes | Callable[[], bytes]) -> bytes:
    return content() if callable(content) else content


@pytest.mark.parametrize(("content", "codes", "text"), SNAPSHOT_FILES)
@pytest.mark.parametrize("mode", OUTPUT_MODES, ids=["table", "json", "markdown"])
def test_hostile_snapshot_file(
    tmp_path: Path,
    content: bytes | Callable[[], bytes],
    codes: set[int],
    text: str,
    mode: list[str],
) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(_content(content))
    result = _invoke(["check", "--snapshot", str(path), *mode])
    assert result.exit_code in codes, f"WRONG exit {result.exit_code}: {result.output[-500:]}"
    json_only = text.startswith("json:")
    text = text.removeprefix("json:")
    if result.exit_code == 2:
        assert text in result.stderr, f"WRONG message: {result.stderr}"
        assert result.stderr.count("\n") <= 2, f"WRONG: not one line: {result.stderr}"
    elif mode == ["--json"]:
        report = json.loads(result.stdout)
        assert text in json.dumps(report, ensure_ascii=False), f"WRONG: {text!r} not in the report"
    elif not json_only:
        assert text in result.stdout, f"WRONG: {text!r} not in {result.stdout[-1500:]}"


@pytest.mark.parametrize("mode", OUTPUT_MODES, ids=["table", "json", "markdown"])
def test_lone_surrogates_reach_a_real_stdout_cleanly(tmp_path: Path, mode: list[str]) -> None:
    path = tmp_path / "report.json"
    path.write_bytes(_edited(_set("gpus.0.name.value", "H100 \ud800\udfff\ud800")))
    result = _run_cli(["check", "--snapshot", str(path), *mode])
    assert result.returncode in (0, 1)
    # The escaped pair decodes to one real character; the lone one becomes U+FFFD.
    assert "H100 \U000103ff\ufffd" in result.stdout


# --- files that must not be read: FIFOs, devices, directories -------------------------------


def _special_path(tmp_path: Path, kind: str) -> str:
    if kind == "fifo":
        path = tmp_path / "pipe"
        os.mkfifo(path)
        return str(path)
    if kind == "directory":
        return str(tmp_path)
    return "/dev/zero"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs exist on POSIX only")
@pytest.mark.parametrize("kind", ["fifo", "/dev/zero", "directory"])
@pytest.mark.parametrize("flag", ["--snapshot", "--spec"])
def test_special_files_are_refused_without_blocking(tmp_path: Path, kind: str, flag: str) -> None:
    special = _special_path(tmp_path, kind)
    saved = tmp_path / "saved.json"
    saved.write_bytes(_edited(lambda document: None))
    args = ["check", flag, special] if flag == "--snapshot" else ["check", "--snapshot", str(saved)]
    if flag == "--spec":
        args += ["--spec", special]
    result = _run_cli(args)
    assert result.returncode == 2, result.stderr
    expected = "is a directory" if kind == "directory" else "not a regular file"
    assert expected in result.stderr.lower(), result.stderr


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs exist on POSIX only")
def test_a_fifo_as_torch_version_py_leaves_torch_unknown(tmp_path: Path) -> None:
    package = tmp_path / "torch"
    package.mkdir()
    (package / "__init__.py").write_text("")
    os.mkfifo(package / "version.py")
    code = "from dlready.probes.torch_meta import probe_torch; print(probe_torch().version.reason)"
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=BOUND_S,
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        check=True,
    )
    assert time.monotonic() - started < BOUND_S
    assert "no readable version.py" in result.stdout
    assert "FIFO" in result.stdout


# --- hostile spec files ----------------------------------------------------------------------

SPEC_HEADER = 'schema = 1\nname = "mine"\ntitle = "Mine"\n'

SPEC_FILES: list[Any] = [
    pytest.param(b"a = " + b"[" * 100_000 + b"]" * 100_000, "nest too deeply", id="nested-arrays"),
    pytest.param(
        b"a = " + b"{b = " * 50_000 + b"1" + b"}" * 50_000, "nest too deeply", id="nested-tables"
    ),
    pytest.param(
        (SPEC_HEADER + '[gpu.minimum]\ncompute_capability = "' + "7" * 5000 + '.5"\n').encode(),
        "expected a compute capability",
        id="5000-digit-capability",
    ),
    pytest.param(
        (SPEC_HEADER + "[gpu.minimum]\nvram_gib = " + "9" * 5000 + "\n").encode(),
        "not valid TOML",
        id="5000-digit-integer",
    ),
    pytest.param(
        (SPEC_HEADER + "[gpu.minimum]\nvram_gib = 1e400\n").encode(),
        "expected a number from 0 to 1,000,000",
        id="float-1e400",
    ),
    pytest.param(b"\xff\xfe", "not UTF-8", id="not-utf-8"),
    pytest.param(b"", "schema: missing", id="empty"),
    pytest.param(b'{"schema": 1}', "not valid TOML", id="json-not-toml"),
]


@pytest.mark.parametrize(("content", "text"), SPEC_FILES)
def test_hostile_spec_file(tmp_path: Path, content: bytes, text: str) -> None:
    saved = tmp_path / "saved.json"
    saved.write_bytes(_edited(lambda document: None))
    spec = tmp_path / "spec.toml"
    spec.write_bytes(content)
    result = _invoke(["check", "--snapshot", str(saved), "--spec", str(spec)])
    assert result.exit_code == 2, f"WRONG exit {result.exit_code}"
    assert text in result.stderr, f"WRONG message: {result.stderr}"


def test_a_spec_with_a_bom_is_read_like_a_snapshot_with_one(tmp_path: Path) -> None:
    saved = tmp_path / "saved.json"
    saved.write_bytes(b"\xef\xbb\xbf" + _edited(lambda document: None))
    spec = tmp_path / "spec.toml"
    builtin = REPO / "src/dlready/spec/profiles/book-2020.toml"
    spec.write_bytes(b"\xef\xbb\xbf" + builtin.read_bytes())
    result = _invoke(["check", "--snapshot", str(saved), "--spec", str(spec)])
    assert result.exit_code in (0, 1)


# --- absurd NVML values and errors, judged through the whole path -----------------------------
# (capture key changed on GPU 0 of a two-GPU H100 replay, value, model field that must become
#  an implausible reading). Values are NVML's own sentinels or impossible physical values.

NVML_VALUES: list[Any] = [
    pytest.param("nvmlDeviceGetTemperature", UINT32_MAX - 4, "temperature_c", id="temp-2^32-5"),
    pytest.param("nvmlDeviceGetTemperature", -300, "temperature_c", id="temp-minus-300"),
    pytest.param(
        "temp_threshold_slowdown", UINT32_MAX, "temperature_slowdown_c", id="slowdown-2^32-1"
    ),
    pytest.param(
        "nvmlDeviceGetMemoryInfo",
        {"total": UINT64_MAX, "free": UINT64_MAX, "used": 0},
        "memory_total_bytes",
        id="vram-2^64-1",
    ),
    pytest.param(
        "nvmlDeviceGetMemoryInfo",
        {"total": -(2**30), "free": 0, "used": 0},
        "memory_total_bytes",
        id="vram-negative",
    ),
    pytest.param("nvmlDeviceGetNumGpuCores", UINT32_MAX, "fp32_peak_tflops", id="cores-2^32-1"),
    pytest.param("max_clock_sm", UINT32_MAX, "max_sm_clock_mhz", id="sm-clock-2^32-1"),
    # Not shown in the table: the PSU budget falls back to the default limit (a real reading).
    pytest.param(
        "nvmlDeviceGetEnforcedPowerLimit", UINT32_MAX, "power_limit_enforced_w", id="power-2^32-1"
    ),
    pytest.param("nvmlDeviceGetPowerUsage", UINT32_MAX, "power_draw_w", id="draw-2^32-1"),
    pytest.param("nvmlDeviceGetFanSpeed", UINT32_MAX, "fan_speed_percent", id="fan-2^32-1"),
    pytest.param(
        "nvmlDeviceGetCurrPcieLinkWidth", UINT32_MAX, "pcie_width_current", id="pcie-2^32-1"
    ),
    pytest.param(
        "nvmlDeviceGetCudaComputeCapability",
        [UINT32_MAX, UINT32_MAX],
        "compute_capability",
        id="capability-2^32-1",
    ),
    pytest.param(
        "nvmlDeviceGetCudaComputeCapability", [100, 100], "compute_capability", id="capability-100"
    ),
]


def _both_gpus_shown(output: str) -> bool:
    """Both GPUs have rows (GPUs judged alike share one: "GPU 0, 1")."""
    return "GPU 0, 1" in output or ("GPU 0" in output and "GPU 1" in output)


_NOT_IN_THE_TABLE = {"power_limit_enforced_w", "power_draw_w", "fan_speed_percent"}


def _judged_both_ways(tmp_path: Path, nvml: Any) -> tuple[dict[str, Any], list[Any]]:
    """Probe the replay, write what `check --json` writes, read it back in every mode."""
    snapshot = replay_snapshot(H100, nvml=nvml)
    document: dict[str, Any] = to_jsonable(snapshot)
    path = tmp_path / "report.json"
    path.write_text(_report_of(document))
    results = [_invoke(["check", "--snapshot", str(path), *mode]) for mode in OUTPUT_MODES]
    for result in results:
        assert result.exit_code in (0, 1), f"WRONG: check refused its own report: {result.stderr}"
    return document, results


@pytest.mark.parametrize(("key", "value", "field"), NVML_VALUES)
def test_absurd_nvml_values_are_unknown_not_judged(
    tmp_path: Path, key: str, value: Any, field: str
) -> None:
    nvml = h100_replay().with_gpu_count(2).with_gpu_overrides({key: value}, index=0)
    document, (table, as_json, markdown) = _judged_both_ways(tmp_path, nvml)
    reading = document["gpus"][0][field]
    assert reading["state"] == "failed", f"WRONG: judged {reading}"
    assert "implausible reading" in reading["reason"], f"WRONG: {reading}"
    assert document["gpus"][1][field]["state"] != "failed", "WRONG: the healthy GPU lost a reading"
    if field not in _NOT_IN_THE_TABLE:
        assert "implausible reading" in table.stdout
    for output in (table.stdout, markdown.stdout):
        judged = re.sub(r"implausible reading \([^)]*\)", "", output)
        assert "4,294,967" not in judged, "WRONG: a sentinel was judged"
    assert _both_gpus_shown(table.stdout), "WRONG: other rows lost"
    assert _both_gpus_shown(markdown.stdout), "WRONG: other rows lost"
    gpu_rows = [
        c for c in json.loads(as_json.stdout)["data"]["components"] if c["component"] == "gpu"
    ]
    assert len(gpu_rows) == 2


def test_a_sentinel_gpu_count_fails_the_count_instead_of_looping(tmp_path: Path) -> None:
    nvml = h100_replay().with_system_overrides({"count": UINT32_MAX})
    snapshot = replay_snapshot(H100, nvml=nvml)
    nvidia = snapshot.driver_stacks[0]
    assert nvidia.state == "failed"
    assert "implausible reading" in (nvidia.reason or "")
    assert snapshot.gpus == ()


@pytest.mark.parametrize(
    ("error", "expected", "unexpected"),
    [
        pytest.param("NO_PERMISSION", "permission problem", "reseat", id="no-permission"),
        pytest.param("GPU_IS_LOST", "reseat", "permission", id="gpu-lost"),
        pytest.param("INSUFFICIENT_POWER", "external power", "reseat", id="insufficient-power"),
    ],
)
def test_a_gpu_handle_error_is_explained_by_its_cause(
    tmp_path: Path, error: str, expected: str, unexpected: str
) -> None:
    nvml = (
        h100_replay()
        .with_gpu_count(2)
        .with_gpu_overrides({"nvmlDeviceGetHandleByIndex": nvml_error(error)}, index=0)
    )
    _, (table, _, markdown) = _judged_both_ways(tmp_path, nvml)
    for output in (table.stdout, markdown.stdout):
        gpu0 = "\n".join(line for line in output.splitlines() if "GPU 0" in line)
        assert expected in gpu0, f"WRONG: {gpu0}"
        assert unexpected not in gpu0, f"WRONG (misleading): {gpu0}"


# --- replaced host files ----------------------------------------------------------------------

HOST_FILES: list[Any] = [
    pytest.param(
        "/proc/meminfo",
        "MemTotal:       100000000000000000000000 kB\nMemAvailable: 1000 kB\n",
        ("memory", "total_bytes"),
        id="memtotal-10^23-kB",
    ),
    pytest.param(
        "/proc/meminfo",
        "MemTotal:       -5 kB\n",
        ("memory", "total_bytes"),
        id="memtotal-negative",
    ),
    pytest.param(CGROUP_CPU_MAX, "-1 100000\n", ("cpu", "cgroup_cpu_limit_cpus"), id="cpu.max-1"),
]


@pytest.mark.parametrize(("path", "content", "field"), HOST_FILES)
def test_absurd_host_files_are_unknown_not_judged(
    tmp_path: Path, path: str, content: str, field: tuple[str, str]
) -> None:
    snapshot = replay_snapshot(H100, files_extra={path: content})
    document: dict[str, Any] = to_jsonable(snapshot)
    reading = document[field[0]][field[1]]
    assert reading["state"] == "failed", f"WRONG: judged {reading}"
    assert "implausible reading" in reading["reason"]
    saved = tmp_path / "report.json"
    saved.write_text(_report_of(document))
    for mode in OUTPUT_MODES:
        result = _invoke(["check", "--snapshot", str(saved), *mode])
        assert result.exit_code in (0, 1)
        assert "GPU 0" in result.stdout or "gpu" in result.stdout, "WRONG: other rows lost"


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs exist on POSIX only")
@pytest.mark.parametrize("name", ["proc/meminfo", "proc/cpuinfo", "sys/fs/cgroup/cpu.max"])
def test_a_fifo_in_place_of_a_host_file_reads_as_missing(tmp_path: Path, name: str) -> None:
    from dlready.probes.hostfs import RealHostFiles

    path = tmp_path / name
    path.parent.mkdir(parents=True)
    os.mkfifo(path)
    started = time.monotonic()
    assert RealHostFiles(root=str(tmp_path)).read_text("/" + name) is None
    assert time.monotonic() - started < BOUND_S


def test_a_failed_checks_report_says_the_check_did_not_run(tmp_path: Path) -> None:
    failed = _invoke(["check", "--json", "--spec", str(tmp_path / "missing.toml")])
    assert failed.exit_code == 2
    path = tmp_path / "failed.json"
    path.write_text(failed.stdout)
    result = _invoke(["check", "--snapshot", str(path)])
    assert result.exit_code == 2
    assert "holds no snapshot: the check it records did not run" in result.stderr
    assert "missing.toml: cannot read" in result.stderr
