"""``dlready check`` end to end: output formats, exit codes, errors, snapshots, torch-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from dlready import __version__
from dlready.cli import app
from dlready.exitcodes import ExitCode
from dlready.model import snapshot_from_jsonable, to_jsonable
from dlready.output import SCHEMA_VERSION
from machines import replay_snapshot

runner = CliRunner()
REPO = Path(__file__).parents[1]


def _saved_snapshot(tmp_path: Path, machine: str, **kwargs: object) -> Path:
    path = tmp_path / f"{machine}.json"
    path.write_text(json.dumps(to_jsonable(replay_snapshot(machine, **kwargs))))  # type: ignore[arg-type]
    return path


def test_version() -> None:
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout.strip() == f"dlready {__version__}"


@pytest.mark.parametrize("command", ["check", "install-cmd", "smoke"])
def test_every_command_has_help_with_exit_codes(command: str) -> None:
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Exit codes" in result.stdout


def test_check_json_on_this_machine_is_a_versioned_envelope() -> None:
    result = runner.invoke(app, ["check", "--json"])
    document = json.loads(result.stdout)
    assert document["schema_version"] == SCHEMA_VERSION
    assert document["command"] == "check"
    assert document["exit_code"] == result.exit_code
    data = document["data"]
    assert data["profile"]["name"] == "book-2020"
    assert {c["component"] for c in data["components"]} >= {
        "cpu",
        "memory",
        "gpu",
        "psu",
        "cooling",
    }
    snapshot = data["snapshot"]
    # Every reading carries value, source and state; units are in the names.
    assert set(snapshot["memory"]["total_bytes"]) == {"value", "source", "state", "reason"}
    assert snapshot["memory"]["total_bytes"]["source"] == "procfs"
    assert snapshot_from_jsonable(snapshot).cpu.logical_cpus.value == os.cpu_count()


def test_check_exit_code_follows_the_bar(tmp_path: Path) -> None:
    # The recorded CPU VM has 2 CPUs and no GPU: below the book's minimum.
    saved = _saved_snapshot(tmp_path, "cpu-only-epyc-vm")
    below = runner.invoke(app, ["check", "--snapshot", str(saved)])
    assert below.exit_code == ExitCode.NOT_READY
    assert "BELOW MIN" in below.stdout
    # The H100 server meets the minimum everywhere it can be judged...
    h100 = _saved_snapshot(tmp_path, "h100-80gb-hbm3")
    assert runner.invoke(app, ["check", "--snapshot", str(h100)]).exit_code == ExitCode.OK
    # ...but its VM hides the CPU clock: --strict turns "unknown" into a failure.
    strict = runner.invoke(app, ["check", "--snapshot", str(h100), "--strict"])
    assert strict.exit_code == ExitCode.NOT_READY


def test_snapshot_rejudged_with_another_profile_keeps_the_readings(tmp_path: Path) -> None:
    first = runner.invoke(
        app, ["check", "--json", "--snapshot", str(_saved_snapshot(tmp_path, "h100-80gb-hbm3"))]
    )
    report = tmp_path / "report.json"
    report.write_text(first.stdout)
    again = runner.invoke(
        app, ["check", "--json", "--snapshot", str(report), "--profile", "current"]
    )
    before, after = json.loads(first.stdout)["data"], json.loads(again.stdout)["data"]
    assert after["profile"]["name"] == "current"
    assert after["snapshot"] == before["snapshot"]
    minimums = {
        (c["component"], k["name"]): k["minimum"]
        for c in after["components"]
        for k in c["criteria"]
    }
    assert minimums[("gpu", "compute_capability")] == "7.5"


def test_markdown_report(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["check", "--markdown", "--snapshot", str(_saved_snapshot(tmp_path, "h100-80gb-hbm3"))]
    )
    assert result.stdout.startswith("## dlready check: meets rec · not judged: CPU max clock")
    assert "| **GPU 0: NVIDIA H100 80GB HBM3** | | **meets rec** |" in result.stdout
    assert "| | VRAM | meets rec | 79.65 GiB |" in result.stdout
    # A re-judged snapshot says so: of which host, and when.
    assert "Saved snapshot " in result.stdout
    assert "re-judged, not probed now" in result.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--json", "--markdown"], "cannot be combined", id="json-and-markdown"),
        pytest.param(
            ["--profile", "nope"],
            "unknown profile 'nope'; choose one of: book-2020, current",
            id="bad-profile",
        ),
        pytest.param(
            ["--snapshot", "/no/such.json"], "/no/such.json: cannot read", id="missing-snapshot"
        ),
        pytest.param(["--spec", "/no/such.toml"], "/no/such.toml: cannot read", id="missing-spec"),
        pytest.param(["--psu-watts", "0"], "", id="psu-watts-zero"),
        pytest.param(["--fail-on", "maximum"], "", id="bad-fail-on"),
    ],
)
def test_usage_errors_exit_2_without_traceback(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["check", *args])
    assert result.exit_code == ExitCode.USAGE
    if "--json" in args:  # the envelope, whatever happened
        assert json.loads(result.stdout)["exit_code"] == ExitCode.USAGE
    else:
        assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert message in result.stderr


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param("{not json", "not JSON", id="not-json"),
        pytest.param(
            '{"command": "check", "schema_version": 99, "data": {}}',
            "schema_version 99",
            id="future-schema",
        ),
        pytest.param(
            '{"captured_at": "x"}',
            "not a dlready snapshot: $.dlready_version: missing",
            id="partial",
        ),
        pytest.param(
            '{"command": "check", "schema_version": 1, "data": {"snapshot": {"cpu": 3}}}',
            "not a dlready snapshot",
            id="wrong-types",
        ),
    ],
)
def test_bad_snapshot_files(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    result = runner.invoke(app, ["check", "--snapshot", str(path)])
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_bad_spec_file_names_file_line_and_key(tmp_path: Path) -> None:
    spec = tmp_path / "mine.toml"
    spec.write_text('schema = 1\nname = "mine"\ntitle = "t"\n[memory.minimum]\nram_gib = 32\n')
    result = runner.invoke(
        app,
        [
            "check",
            "--spec",
            str(spec),
            "--snapshot",
            str(_saved_snapshot(tmp_path, "h100-80gb-hbm3")),
        ],
    )
    assert result.exit_code == ExitCode.USAGE
    assert f"{spec}:5: memory.minimum.ram_gib: unknown key" in result.stderr


def test_bad_psu_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DLREADY_PSU_WATTS", "a lot")
    result = runner.invoke(app, ["check"])
    assert result.exit_code == ExitCode.USAGE
    assert "DLREADY_PSU_WATTS='a lot' is not a number of watts" in result.stderr


def test_psu_flag_is_used(tmp_path: Path) -> None:
    result = runner.invoke(app, ["check", "--json", "--psu-watts", "850"])
    psu = json.loads(result.stdout)["data"]["snapshot"]["power_supply"]["declared_capacity_w"]
    assert psu == {"value": 850.0, "source": "user", "state": "read", "reason": None}


def _run(
    args: list[str], env_extra: dict[str, str], drop: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in drop}
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-m", "dlready", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


def test_colour_only_when_forced_and_never_with_no_color() -> None:
    coloured = _run(["check"], {"FORCE_COLOR": "1"}, drop=("NO_COLOR",))
    assert "\x1b[" in coloured.stdout
    plain = _run(["check"], {"FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert "\x1b[" not in plain.stdout
    piped = _run(["check"], {}, drop=("NO_COLOR", "FORCE_COLOR"))
    assert "\x1b[" not in piped.stdout


def test_check_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "from typer.testing import CliRunner\n"
        "import dlready, dlready.cli\n"
        "r = CliRunner().invoke(dlready.cli.app, ['check', '--json'])\n"
        "assert r.exit_code in (0, 1), r.stderr\n"
        "assert 'torch' not in sys.modules, 'check imported torch'\n"
        "print('ok')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.stdout.strip() == "ok", result.stderr


def test_results_on_stdout_diagnostics_on_stderr() -> None:
    result = _run(["check", "--json"], {})
    json.loads(result.stdout)  # stdout is exactly one JSON document
    assert result.returncode in (0, 1)


def test_list_profiles() -> None:
    result = runner.invoke(app, ["check", "--list-profiles"])
    assert result.exit_code == 0
    assert result.stdout.splitlines()[0].startswith("book-2020 (default): ")


def _edited_snapshot(tmp_path: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    document = to_jsonable(replay_snapshot("h100-80gb-hbm3"))
    edit(document)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(document))
    return path


def _set_gpu(field: str, value: object) -> Callable[[dict[str, Any]], None]:
    def edit(document: dict[str, Any]) -> None:
        document["gpus"][0][field]["value"] = value

    return edit


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        pytest.param(
            _set_gpu("compute_capability", "sm_90"),
            "$.gpus[0].compute_capability.value: expected MAJOR.MINOR",
            id="capability-form",
        ),
        pytest.param(
            _set_gpu("temperature_c", 10**400), "$.gpus[0].temperature_c.value: ", id="huge-number"
        ),
        pytest.param(
            _set_gpu("temperature_c", "hot"),
            "$.gpus[0].temperature_c.value: expected a number",
            id="text-for-number",
        ),
    ],
)
def test_hand_edited_snapshots_fail_cleanly(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None], message: str
) -> None:
    result = runner.invoke(app, ["check", "--snapshot", str(_edited_snapshot(tmp_path, edit))])
    assert result.exit_code == ExitCode.USAGE
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_nan_in_a_snapshot_is_refused(tmp_path: Path) -> None:
    path = _edited_snapshot(tmp_path, _set_gpu("temperature_c", 1.5))
    path.write_text(path.read_text().replace('"value": 1.5', '"value": NaN'))
    result = runner.invoke(app, ["check", "--snapshot", str(path)])
    assert result.exit_code == ExitCode.USAGE
    assert "NaN is not a JSON number" in result.stderr


@pytest.mark.parametrize("watts", ["nan", "inf", "1e400", "-5", "0"])
def test_psu_watts_must_be_plausible(watts: str, monkeypatch: pytest.MonkeyPatch) -> None:
    flag = runner.invoke(app, ["check", "--json", "--psu-watts", watts])
    assert flag.exit_code == ExitCode.USAGE
    document = json.loads(flag.stdout)  # --json: the envelope even for a refused flag
    assert (document["exit_code"], document["data"]) == (ExitCode.USAGE, None)
    assert "between 1 and 100000" in document["errors"][0]["message"]
    monkeypatch.setenv("DLREADY_PSU_WATTS", watts)
    env = runner.invoke(app, ["check", "--json"])
    assert env.exit_code == ExitCode.USAGE
    assert "between 1 and 100000" in env.stderr


@pytest.mark.parametrize(
    ("toml_tail", "message"),
    [
        pytest.param(
            "[psu]\nminimum_headroom_fraction = 1e308\n",
            "expected a fraction between 0 and 10",
            id="huge-headroom",
        ),
        pytest.param(
            "[psu]\nwatts_per_gpu = inf\n",
            "expected a number from 0 to 1,000,000",
            id="infinite-watts",
        ),
        pytest.param(
            "[psu.cpu_tdp_w]\nepyc = -100\n", "expected a number from 0 to 1,000,000", id="negative"
        ),
        pytest.param(
            "[gpu.recommended]\npcie_width_lanes = 16\n", "unknown key", id="pcie-recommended"
        ),
        pytest.param(
            '[[gpu.caveats]]\ntext = "old"\n',
            "every caveat needs below_compute_capability",
            id="caveat-incomplete",
        ),
        pytest.param(
            "[memory.minimum]\neffective_total_gib = 64\n[memory.recommended]\neffective_total_gib = 32\n",
            "memory.minimum.effective_total_gib: 64 is stricter",
            id="minimum-above-recommended",
        ),
        pytest.param(
            '[gpu.minimum]\ncompute_capability = "8.0"\n[gpu.recommended]\ncompute_capability = "7.5"\n',
            "gpu.minimum.compute_capability",
            id="capability-order",
        ),
    ],
)
def test_spec_files_are_validated(tmp_path: Path, toml_tail: str, message: str) -> None:
    spec = tmp_path / "mine.toml"
    spec.write_text('schema = 1\nname = "mine"\ntitle = "t"\n' + toml_tail)
    result = runner.invoke(
        app,
        [
            "check",
            "--spec",
            str(spec),
            "--snapshot",
            str(_saved_snapshot(tmp_path, "h100-80gb-hbm3")),
        ],
    )
    assert result.exit_code == ExitCode.USAGE, result.stdout
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_spec_file_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    spec = tmp_path / "windows.toml"
    spec.write_bytes('\ufeffschema = 1\nname = "w"\ntitle = "t"\n'.encode())
    result = runner.invoke(
        app,
        [
            "check",
            "--spec",
            str(spec),
            "--snapshot",
            str(_saved_snapshot(tmp_path, "h100-80gb-hbm3")),
        ],
    )
    assert result.exit_code == ExitCode.OK, result.stderr


@pytest.mark.parametrize(
    ("redirect", "message"),
    [
        pytest.param(">/dev/full", "cannot write the result to stdout", id="disk-full"),
        pytest.param(">&-", "stdout is closed", id="stdout-closed"),
    ],
)
@pytest.mark.parametrize("args", ["check --json", "check", "install-cmd"])
def test_unwritable_stdout_is_exit_3_without_traceback(
    redirect: str, message: str, args: str
) -> None:
    result = subprocess.run(
        f"{sys.executable} -m dlready {args} {redirect}",
        shell=True,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == ExitCode.COULD_NOT_RUN
    assert "Traceback" not in result.stderr
    assert message in result.stderr


def test_install_command_line_is_never_wrapped(tmp_path: Path) -> None:
    result = runner.invoke(
        app, ["check", "--snapshot", str(_saved_snapshot(tmp_path, "h100-80gb-hbm3"))]
    )
    lines = result.stdout.splitlines()
    command = lines[lines.index("Newest PyTorch for this machine:") + 1].strip()
    assert command.startswith("pip install torch==")
    assert command.endswith("--index-url https://download.pytorch.org/whl/cu130")


def test_check_says_why_there_is_no_install_command(tmp_path: Path) -> None:
    def python_4(document: dict[str, Any]) -> None:
        document["platform"]["python_version"]["value"] = "4.0.0"

    result = runner.invoke(
        app, ["check", "--json", "--snapshot", str(_edited_snapshot(tmp_path, python_4))]
    )
    data = json.loads(result.stdout)["data"]
    assert data["install_command"] is None
    assert any(
        note.startswith("no PyTorch install command for this machine: ") for note in data["notes"]
    )
