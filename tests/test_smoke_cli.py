"""``dlready smoke`` end to end: exit codes, JSON, explanations, docs, and no torch in the CLI."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dlready.cli import app
from dlready.smoke import catalog

TESTS = Path(__file__).parent
DOC = (TESTS.parent / "docs" / "smoke.md").read_text(encoding="utf-8")
runner = CliRunner()


def _json(stdout: str) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(stdout)
    return document


def _subprocess(args: list[str], env: dict[str, str], timeout: float = 120) -> Any:
    return subprocess.run(
        [sys.executable, "-m", "dlready", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def _env(hook: str | None = None, extra_path: Path | None = None) -> dict[str, str]:
    env = dict(os.environ)
    paths = [str(TESTS)] if extra_path is None else [str(extra_path), str(TESTS)]
    env["PYTHONPATH"] = os.pathsep.join([*paths, env.get("PYTHONPATH", "")])
    env["NO_COLOR"] = "1"
    env.pop("DLREADY_SMOKE_TEST_HOOK", None)
    if hook:
        env["DLREADY_SMOKE_TEST_HOOK"] = f"smoke_hooks:{hook}"
    return env


def test_json_report_on_the_cpu() -> None:
    result = runner.invoke(app, ["smoke", "--device", "cpu", "--json"])
    assert result.exit_code == 0, result.output
    document = _json(result.stdout)
    assert document["command"] == "smoke"
    assert document["exit_code"] == 0
    assert document["status"] == "ok"
    assert document["errors"] == []
    data = document["data"]
    assert set(data) == {
        "mode",
        "torch",
        "devices",
        "counts",
        "wall_s",
        "usage_error",
        "notes",
        "rank",
    }
    assert data["rank"] is None  # not under torchrun
    assert data["mode"] == "quick"
    assert data["torch"]["version"].startswith("2.")
    (device,) = data["devices"]
    assert device["device"] == "cpu"
    assert [check["name"] for check in device["checks"]] == list(catalog.suite())
    assert sum(data["counts"].values()) == len(device["checks"])
    assert data["counts"]["fail"] == 0
    for check in device["checks"]:
        assert set(check) == {
            "name", "status", "duration_s", "message", "measured", "expected",
            "error_type", "explanation", "fix",
        }  # fmt: skip
    speed = {c["name"]: c for c in device["checks"]}["speed.matmul.float32"]
    assert speed["measured"]["unit"] == "TFLOP/s"
    assert speed["measured"]["value"] > 0
    assert speed["expected"]["value"] is None
    assert speed["expected"]["source"].startswith("unknown:")


def test_table_report_is_plain_without_a_terminal() -> None:
    result = runner.invoke(app, ["smoke", "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "\x1b[" not in result.stdout
    assert "autograd.book_example" in result.stdout
    assert "z = 23, dz/dw = 20" in result.stdout
    assert "expected: unknown" in result.stdout
    assert re.search(r"\d+ checks: \d+ pass", result.stdout)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["--device", "gpu"], "not one of", id="bad-device"),
        pytest.param(["--device", "cuda:x"], "not one of", id="bad-ordinal"),
        # The hint names no device that may not exist (no --device cuda on a GPU-less host).
        pytest.param(["--all-devices", "--device", "cpu"], "drop one of them", id="all-with-cpu"),
        pytest.param(["--all-devices", "--device", "mps"], "drop one of them", id="all-with-mps"),
        pytest.param(["--quick", "--full"], "exclude each other", id="quick-and-full"),
        pytest.param(["--full", "--quick"], "exclude each other", id="full-and-quick"),
        pytest.param(["--burn", "-1"], "--burn", id="negative-burn"),
        pytest.param(["--timeout", "0"], "--timeout", id="zero-timeout"),
        pytest.param(["--burn", "soon"], "", id="burn-not-a-number"),
        # Infinite or nan limits would switch hang protection off or skip the burn silently.
        pytest.param(["--timeout", "inf"], "at most 86400 seconds", id="timeout-inf"),
        pytest.param(["--timeout", "nan"], "at most 86400 seconds", id="timeout-nan"),
        pytest.param(["--timeout", "1e308"], "at most 86400 seconds", id="timeout-huge"),
        pytest.param(["--timeout", "-inf"], "at least 1", id="timeout-minus-inf"),
        # Too short for any check to finish: every check would read as a hang.
        pytest.param(["--timeout", "0.001"], "at least 1 and at most", id="timeout-too-short"),
        pytest.param(["--timeout", "0.99"], "at least 1 and at most", id="timeout-below-1-s"),
        pytest.param(["--burn", "inf"], "0 to 86400 seconds", id="burn-inf"),
        pytest.param(["--burn", "nan"], "0 to 86400 seconds", id="burn-nan"),
        pytest.param(["--burn", "1e308"], "0 to 86400 seconds", id="burn-huge"),
    ],
)
def test_usage_errors_exit_2(args: list[str], says: str) -> None:
    result = runner.invoke(app, ["smoke", *args])
    assert result.exit_code == 2
    assert says in result.stderr
    assert "--device cuda" not in result.stderr
    if says:  # not the flag parser's own refusal of a bad number
        assert result.stderr.startswith("error: ")
        assert len(result.stderr.splitlines()) == 2  # the error line and its hint
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("device", "says"),
    [
        pytest.param("cuda", "no NVIDIA GPU", id="cuda-without-gpu"),
        pytest.param("cuda:1", "no NVIDIA GPU", id="cuda-1-without-gpu"),
        pytest.param("mps", "macOS", id="mps-off-macos"),
    ],
)
def test_a_device_that_does_not_exist_exits_2_with_the_report(device: str, says: str) -> None:
    result = runner.invoke(app, ["smoke", "--device", device, "--json"])
    assert result.exit_code == 2, result.output
    data = _json(result.stdout)["data"]
    assert data["usage_error"] is True
    check = data["devices"][0]["checks"][0]
    assert check["name"] == "device"
    assert check["status"] == "fail"
    assert says in check["explanation"]
    assert check["fix"]


def test_torch_not_installed_exits_3_with_the_install_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = importlib.util.find_spec

    def find_spec(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "torch" else original(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)
    result = runner.invoke(app, ["smoke", "--json"])
    assert result.exit_code == 3
    assert "torch is not installed" in result.stderr
    assert "install" in result.stderr
    document = _json(result.stdout)
    assert document["exit_code"] == 3
    assert document["data"]["reason"] == "torch_not_installed"
    assert "Traceback" not in result.output


def test_broken_torch_exits_3_without_a_traceback(tmp_path: Path) -> None:
    fake = tmp_path / "torch"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "raise OSError('libcudnn.so.9: cannot open shared object file: No such file')\n"
    )
    completed = _subprocess(["smoke"], _env(extra_path=tmp_path))
    assert completed.returncode == 3
    assert "torch cannot be imported (OSError: libcudnn.so.9" in completed.stderr
    assert "Traceback" not in completed.stderr
    assert completed.stdout == ""


def test_a_wrong_op_in_the_worker_fails_the_run_with_an_explanation() -> None:
    completed = _subprocess(["smoke", "--device", "cpu", "--json"], _env("wrong_mm"))
    assert completed.returncode == 1, completed.stderr
    document = _json(completed.stdout)
    checks = {c["name"]: c for c in document["data"]["devices"][0]["checks"]}
    failed = checks["linear.float32"]
    assert failed["status"] == "fail"
    assert "float64 reference" in failed["message"]
    assert "wrong values" in failed["explanation"]
    assert {
        "code": "fail",
        "message": f"linear.float32: {failed['message']}",
        "hint": None,
        "detail": {"check": "linear.float32"},
        "more": [],
    } in document["errors"]
    assert checks["tensors.create"]["status"] == "pass"


def test_out_of_memory_is_explained() -> None:
    completed = _subprocess(["smoke", "--device", "cpu"], _env("raise_oom_in_matmul"))
    assert completed.returncode == 1
    assert "speed.matmul.float32" in completed.stdout
    assert "ran out of memory" in completed.stdout
    assert "Traceback" not in completed.stdout + completed.stderr


def test_a_hang_is_reported_and_the_report_still_prints() -> None:
    completed = _subprocess(
        ["smoke", "--device", "cpu", "--timeout", "3"], _env("hang_in_autograd")
    )
    assert completed.returncode == 1
    # Piped output is 80 columns wide: one line per check (render/smoke_render.py).
    # It ran until its limit, which the time column says (not 0.00 s).
    assert re.search(r"^timeout autograd\.book_example \(3\.00 s\)", completed.stdout, re.MULTILINE)
    assert re.search(r"^pass speed\.memory_copy \(", completed.stdout, re.MULTILINE)
    assert "did not finish" in completed.stdout


def test_cli_modules_do_not_import_torch() -> None:
    code = (
        "import sys; import dlready.cli, dlready.commands.smoke, dlready.smoke.runner, "
        "dlready.smoke.judge, dlready.render.smoke_render; "
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert completed.returncode == 0, completed.stderr


def test_every_option_in_help_is_documented() -> None:
    result = runner.invoke(app, ["smoke", "--help"])
    assert result.exit_code == 0
    options = set(re.findall(r"--[a-z][a-z-]+", result.stdout)) - {"--help"}
    assert {"--device", "--all-devices", "--full", "--quick", "--burn", "--json"} <= options
    for option in options:
        assert f"`{option}" in DOC, f"{option} is not documented in docs/smoke.md"


def test_every_check_is_documented() -> None:
    for spec in catalog.ALL_CHECKS:
        short = spec.name.rsplit(".", 1)[-1]
        assert f"`{spec.name}`" in DOC or f"`.{short}`" in DOC, spec.name


def test_every_json_field_is_documented() -> None:
    result = runner.invoke(app, ["smoke", "--device", "cpu", "--json"])
    data = _json(result.stdout)["data"]
    fields = set(data) | set(data["torch"]) | set(data["devices"][0])
    for check in data["devices"][0]["checks"]:
        fields |= set(check)
        if check["expected"]:
            fields |= set(check["expected"])
    fields |= set(data["devices"][0]["info"])
    for name in fields:
        assert f"`{name}`" in DOC, f"JSON field {name!r} is not documented in docs/smoke.md"


def test_gpu_check_script_degrades_cleanly_without_a_gpu(tmp_path: Path) -> None:
    script = TESTS.parent / "scripts" / "gpu-check.sh"
    env = _env()
    env.update(OUT=str(tmp_path / "out"), BURN_S="1", FIT_SEQ="128", PYTHON=sys.executable)
    completed = subprocess.run(
        ["bash", str(script)], capture_output=True, text=True, timeout=300, env=env, check=False
    )
    assert completed.returncode == 0, completed.stderr
    out = tmp_path / "out"
    names = sorted(path.name for path in out.iterdir())
    assert names == [
        "check.json", "check.txt", "compare.txt", "fit-infer.json", "fit-train.json",
        "fleet.json", "fleet.md", "nvidia-smi.csv", "smoke-burn.json", "smoke-full.json",
        "smoke-quick.txt", "stderr.log", "summary.txt",
    ]  # fmt: skip
    header = script.read_text().split("\nset -u\n")[0]
    for name in names:
        assert name in header, f"{name} is not listed in the script's header"
    for report in ("smoke-full.json", "smoke-burn.json"):
        document = json.loads((out / report).read_text())
        assert document["command"] == "smoke"
        assert document["exit_code"] in (0, 1, 2)
    assert "dlready check" in (out / "check.txt").read_text()
    # Without a CUDA GPU the fleet is one process on gloo, launched by torchrun.
    fleet = json.loads((out / "fleet.json").read_text())
    assert fleet["command"] == "fleet"
    assert (fleet["data"]["launcher"], fleet["data"]["backend"]) == ("torchrun", "gloo")
    assert (out / "fleet.md").read_text().startswith("## dlready fleet")
    for task in ("train", "infer"):
        fit = json.loads((out / f"fit-{task}.json").read_text())
        assert fit["command"] == "fit"
        assert fit["data"]["request"]["task"] == task
        items = {item["name"]: item for item in fit["data"]["measurement"]["items"]}
        assert items["weights"]["ratio"] == pytest.approx(1.0, rel=0.01)
    summary = (out / "summary.txt").read_text()
    for step in ("check", "check-text", "smoke-full", "fleet", "fit-train", "fit-infer"):
        assert f"\n{step}: exit " in summary, step
    assert "CUDA GPUs torch sees: 0" in summary
    assert "float32 matmul" in summary  # the fleet digest
    assert "all_reduce: no speed measured (a single rank has no peer)" in summary
    assert "activations: estimate / measured = " in summary  # the fit digest
    assert "TIMED OUT" not in summary
    assert "no digest" not in summary
    for path in out.iterdir():
        assert "Traceback" not in path.read_text(), path.name


def _digest(kind: str, document: object, tmp_path: Path) -> str:
    path = tmp_path / f"{kind}.json"
    path.write_text(json.dumps(document))
    completed = subprocess.run(
        [sys.executable, str(TESTS.parent / "scripts" / "gpu_check_digest.py"), kind, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stderr == ""
    return completed.stdout


def test_gpu_check_digest_of_a_fleet_of_two_h100_nodes(tmp_path: Path) -> None:
    from dlready.exitcodes import ExitCode
    from dlready.fleet.assemble import assemble
    from dlready.model import to_jsonable
    from dlready.output import envelope
    from fleet_scenarios import RECORDED_BF16_TFLOPS, h100_fleet

    report = to_jsonable(assemble(h100_fleet(2, 8)))
    document = json.loads(json.dumps(envelope("fleet", ExitCode.OK, report)))
    lines = _digest("fleet", document, tmp_path).splitlines()
    ranks = [line for line in lines if line.startswith("  rank ")]
    assert len(ranks) == 16
    expected = report["ranks"][0]["matmul_expected_tflops"]
    percent = RECORDED_BF16_TFLOPS / expected * 100
    assert ranks[9] == (
        f"  rank 9 cuda:1 NVIDIA H100 80GB HBM3: ok, bfloat16 matmul {RECORDED_BF16_TFLOPS:g} "
        f"TFLOP/s, {percent:.0f} % of the expected {expected:g}"
    )
    busbw = [line for line in lines if line.startswith("  all_reduce ")]
    # One line per group (2 nodes, 8 cross-node groups, the world), each its largest message.
    assert len(busbw) == 2 + 8 + 1
    largest = max(s["size_bytes"] for s in report["collective_speeds"])
    assert all(f"{largest / 2**20:g} MiB: busbw " in line for line in busbw)
    floor = next(e for e in report["link_expectations"] if e["scope"] == "intra-node")["gbps"]
    assert sum(f"(the link should carry {floor:.1f} GB/s)" in line for line in busbw) == 2


@pytest.mark.parametrize(
    ("kind", "content", "says"),
    [
        pytest.param("fleet", "not json", "no JSON", id="not-json"),
        pytest.param("fit", "[1, 2]", "not a dlready report", id="a-list"),
        pytest.param("fleet", '{"exit_code": 3, "data": null, "errors": [{"message": "no torch"}]}',
                     "error: no torch", id="refusal"),
        pytest.param("fleet", '{"data": {"ranks": [7]}}', "cannot digest", id="odd-shape"),
    ],
)  # fmt: skip
def test_gpu_check_digest_of_a_report_it_cannot_read_is_one_line(
    kind: str, content: str, says: str, tmp_path: Path
) -> None:
    path = tmp_path / "report.json"
    path.write_text(content)
    completed = subprocess.run(
        [sys.executable, str(TESTS.parent / "scripts" / "gpu_check_digest.py"), kind, str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0
    assert says in completed.stdout
    assert "Traceback" not in completed.stdout + completed.stderr


def test_a_device_that_does_not_exist_is_one_error_line_not_a_report() -> None:
    result = runner.invoke(app, ["smoke", "--device", "cuda"])
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # no report of 25 skipped checks that reads as a failure
    first, hint = result.stderr.splitlines()[:2]
    assert first.startswith("error: --device cuda: no such device on this machine: ")
    assert "no NVIDIA GPU" in first
    assert hint.startswith("hint: leave --device out")


def test_a_stop_signal_is_reported_as_interrupted_like_every_command(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from dlready.result import StopSignals
    from dlready.smoke.runner import Runner

    def stopped(_self: Runner, _nvidia_gpu_present: bool) -> Any:
        # What result.StopSignals does on SIGTERM, inside the running suite.
        StopSignals.received = "SIGTERM"
        raise KeyboardInterrupt

    monkeypatch.setattr(StopSignals, "received", None)
    monkeypatch.setattr(Runner, "run", stopped)
    result = runner.invoke(app, ["smoke", "--device", "cpu", "--json"])
    assert result.exit_code == 3, result.output
    document = _json(result.stdout)
    assert document["status"] == "interrupted"
    assert document["exit_code"] == 3
    (error,) = document["errors"]
    assert error["code"] == "interrupted"
    assert error["detail"] == {"signal": "SIGTERM"}
    assert "interrupted (SIGTERM)" in result.stderr
