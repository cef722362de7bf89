"""The README, docs and CI stay true to the code."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import typer

from dlready.cli import app
from dlready.exitcodes import ExitCode

REPO = Path(__file__).parents[1]
README = (REPO / "README.md").read_text()


def _readme_commands() -> list[str]:
    return re.findall(r"```sh\n(python3 -m venv .venv && [^\n]+)\n```", README)


def test_readme_has_the_two_setup_commands_and_ci_runs_the_test_one_verbatim() -> None:
    commands = _readme_commands()
    assert len(commands) == 2
    run_check, run_tests = commands
    assert run_check.endswith("dlready check")
    assert "pytest" in run_tests
    assert "torch==2.13.0" in (REPO / "pyproject.toml").read_text()
    ci_lines = (REPO / ".ci/run").read_text().splitlines()
    assert run_tests in ci_lines


def test_test_setup_never_asks_for_an_unpinned_torch() -> None:
    pyproject = (REPO / "pyproject.toml").read_text()
    test_extra = re.search(r"^test = \[(.*)\]$", pyproject, re.MULTILINE)
    assert test_extra is not None
    torch_pins = re.findall(r'"(torch[^"]*)"', test_extra.group(1))
    assert torch_pins == ["torch==2.13.0"]


def _command_options(name: str) -> list[str]:
    command = typer.main.get_command(app)
    sub = command.commands[name]  # type: ignore[attr-defined]
    return [
        opt
        for param in sub.params
        for opt in param.opts
        if opt.startswith("--") and opt != "--help"
    ]


@pytest.mark.parametrize(
    ("command", "doc"),
    [
        ("check", "docs/check.md"),
        ("install-cmd", "docs/install-cmd.md"),
        ("smoke", "docs/smoke.md"),
    ],
)
def test_every_flag_is_documented(command: str, doc: str) -> None:
    text = (REPO / doc).read_text()
    missing = [opt for opt in _command_options(command) if f"`{opt}" not in text]
    assert not missing, f"{doc} does not document {missing}"


def test_exit_codes_are_documented() -> None:
    text = (REPO / "docs/exit-codes.md").read_text()
    for code in ExitCode:
        assert f"| {int(code)} | {code.name} |" in text
        assert f"| {int(code)} |" in README


def test_check_json_keys_are_documented() -> None:
    from dlready.render.check_json import report_jsonable  # noqa: F401  # the documented producer

    schema = (REPO / "docs/json-schema.md").read_text()
    result = subprocess.run(
        [sys.executable, "-m", "dlready", "check", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    import json

    document = json.loads(result.stdout)
    for key in [*document, *document["data"]]:
        assert f"`{key}`" in schema, f"json-schema.md does not document {key}"
    for section in ("platform", "cpu", "memory", "power_supply", "torch"):
        for key in document["data"]["snapshot"][section]:
            assert f"`{key}`" in schema, f"json-schema.md does not document {section}.{key}"


@pytest.mark.parametrize("command", ["check", "install-cmd", "smoke", "fleet", "diff", "fit"])
def test_each_command_help_states_its_own_exit_codes(command: str) -> None:
    """fit's and diff's 1 is not "not ready": each --help ends with what its codes mean."""
    from typer.testing import CliRunner

    from dlready.exitcodes import exit_codes_help

    result = CliRunner().invoke(app, [command, "--help"], terminal_width=2000)
    assert result.exit_code == 0
    assert exit_codes_help(command) in result.stdout
    assert f"- `{command}`" in (REPO / "docs/exit-codes.md").read_text()
