"""Human output at 60, 80 and 120 columns: no printed command broken across lines, no word
split inside (issue 7, item 9).

Each case is a command line run through the CLI with ``COLUMNS`` set, compared with the same
command at a width where nothing wraps. To cover another command, add a :class:`LayoutCase`
to ``CASES`` (``setup`` writes any input files and returns the arguments).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from msgspec import Struct, field
from typer.testing import CliRunner

from dlready.cli import app
from dlready.exitcodes import ExitCode
from dlready.fleet.assemble import Gathered, assemble
from dlready.fleet.report import FleetReport
from dlready.model import MachineSnapshot, to_jsonable
from dlready.output import envelope
from dlready.render.fleet_render import render_markdown, render_text
from fleet_scenarios import RECORDED_BF16_TFLOPS, h100_fleet
from machines import replay_snapshot
from scenarios_gpu import nvidia_scenario, nvml_error

TESTS = Path(__file__).parent
WIDTHS = (60, 80, 120)
UNWRAPPED = 2000
runner = CliRunner()


def _snapshot_args(build: Callable[[], object], *extra: str) -> Callable[[Path], list[str]]:
    def setup(tmp_path: Path) -> list[str]:
        path = tmp_path / "snapshot.json"
        path.write_text(json.dumps(to_jsonable(build())))
        return ["check", "--snapshot", str(path), *extra]

    return setup


def _lost_gpu() -> object:
    nvml = (
        nvidia_scenario("4x-rtx-4090")
        .replay()
        .with_gpu_overrides({"nvmlDeviceGetHandleByIndex": nvml_error("GPU_IS_LOST")}, index=2)
    )
    return replay_snapshot("h100-80gb-hbm3", nvml=nvml, psu_watts=1200)


def _fit_args(tmp_path: Path, machine: str, *args: str) -> list[str]:
    """``dlready fit`` against the 4x RTX 4090 workstation (one card) or the H100 server."""
    nvml = nvidia_scenario("4x-rtx-4090").replay() if machine == "4x-rtx-4090" else None
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(to_jsonable(replay_snapshot("h100-80gb-hbm3", nvml=nvml))))
    return ["fit", *args, "--snapshot", str(path), "--gpus", "1"]


def _check_reports_diff(*machines: str) -> Callable[[Path], list[str]]:
    """``dlready diff`` of the saved ``check --json`` reports of two recorded machines."""

    def setup(tmp_path: Path) -> list[str]:
        paths = []
        for machine in machines:
            snapshot = tmp_path / f"{machine}-snapshot.json"
            snapshot.write_text(json.dumps(to_jsonable(replay_snapshot(machine))))
            saved = runner.invoke(app, ["check", "--snapshot", str(snapshot), "--json"])
            assert saved.exit_code in (0, 1), saved.output
            paths.append(tmp_path / f"{machine}.json")
            paths[-1].write_text(saved.stdout)
        return ["diff", *map(str, paths)]

    return setup


def _slow_rank(gathered: Gathered) -> None:
    """Rank 11 computes at 75 % of its peers: a straggler, whose fix names a command."""
    gathered.results["health"][11]["matmul_tflops"] = RECORDED_BF16_TFLOPS * 0.75


def _fleet_reports_diff(tmp_path: Path) -> list[str]:
    paths = []
    for name, change in (("healthy", None), ("straggler", _slow_rank)):
        report = to_jsonable(assemble(h100_fleet(2, 8, change=change)))
        paths.append(tmp_path / f"{name}.json")
        paths[-1].write_text(json.dumps(envelope("fleet", ExitCode.OK, report)))
    return ["diff", *map(str, paths)]


class LayoutCase(Struct, frozen=True):
    id: str
    setup: Callable[[Path], list[str]]
    env: dict[str, str] = field(default_factory=dict)
    has_commands: bool = True
    """False where the output holds no command to keep whole (words are still checked)."""


def _fit_snapshot_args(tmp_path: Path, snapshot: MachineSnapshot, *args: str) -> list[str]:
    path = tmp_path / "snapshot.json"
    path.write_text(json.dumps(to_jsonable(snapshot)))
    return ["fit", *args, "--snapshot", str(path)]


CASES = [
    LayoutCase("check-cpu-vm", _snapshot_args(lambda: replay_snapshot("cpu-only-epyc-vm"))),
    LayoutCase(
        "check-cpu-vm-markdown",
        _snapshot_args(lambda: replay_snapshot("cpu-only-epyc-vm"), "--markdown"),
    ),
    LayoutCase("check-h100", _snapshot_args(lambda: replay_snapshot("h100-80gb-hbm3"))),
    LayoutCase("check-4x-4090-one-lost", _snapshot_args(_lost_gpu)),
    LayoutCase("check-4x-4090-one-lost-markdown", _snapshot_args(_lost_gpu, "--markdown")),
    LayoutCase(
        "check-gtx-1060-current",
        _snapshot_args(
            lambda: replay_snapshot(
                "h100-80gb-hbm3", nvml=nvidia_scenario("gtx-1060-laptop").replay()
            ),
            "--profile",
            "current",
        ),
    ),
    LayoutCase(
        # batch 4: the recommendation then includes gradient checkpointing (a quoted call)
        "fit-7b-train-4090",
        lambda tmp_path: _fit_args(
            tmp_path, "4x-rtx-4090", "llama-2-7b", "--task", "train", "--batch", "4"
        ),
    ),
    LayoutCase(
        "fit-70b-train-h100-markdown",
        lambda tmp_path: _fit_args(
            tmp_path, "h100-80gb-hbm3", "llama-2-70b", "--task", "train", "--markdown"
        ),
    ),
    LayoutCase(
        "fit-8b-4x-4090-one-lost",
        lambda tmp_path: _fit_snapshot_args(tmp_path, _lost_gpu(), "llama-3-8b"),
    ),
    LayoutCase(
        "diff-check-h100-h200",
        _check_reports_diff("h100-80gb-hbm3", "h200-141gb"),
        has_commands=False,
    ),
    LayoutCase("diff-check-cpu-vm-h100", _check_reports_diff("cpu-only-epyc-vm", "h100-80gb-hbm3")),
    LayoutCase("diff-fleet-straggler", _fleet_reports_diff, has_commands=False),
    LayoutCase(
        "smoke-cpu-out-of-memory",
        lambda _: ["smoke", "--device", "cpu"],
        {"DLREADY_SMOKE_TEST_HOOK": "smoke_hooks:raise_oom_in_matmul"},
    ),
]

# Where a command starts: a line (after its indent) or a `quoted` span.
_COMMAND_LINE = re.compile(r"^\s*((?:pip3?|conda|uv|python3?|dlready|nvidia-smi|sudo)\s.*)$")
_QUOTED = re.compile(r"`([^`\n]+)`")


def _run(args: list[str], width: int, env: dict[str, str]) -> str:
    environment = {"COLUMNS": str(width), "NO_COLOR": "1", "PYTHONPATH": str(TESTS), **env}
    result = runner.invoke(app, args, env=environment)
    assert result.exit_code in (0, 1), result.output
    return result.stdout


def _commands(text: str) -> set[str]:
    found = {
        m.group(1).strip()
        for line in text.splitlines()
        if (m := _COMMAND_LINE.match(line)) and "·" not in line  # "dlready smoke · ..." heads
    }
    return found | {m.group(1) for m in _QUOTED.finditer(text)}


def _words(text: str) -> set[str]:
    """Words with letters and no digits (timings differ from run to run)."""
    words = {word.strip(".,;:()[]`'\"|*•").lower() for word in text.split()}
    return {w for w in words if re.search(r"[^\W\d_]", w) and not re.search(r"\d", w)}


def split_words(narrow: str, wide: str) -> set[str]:
    """Words in the narrow output that the unwrapped output does not have (split or cut)."""
    known = _words(wide)
    return {word for word in _words(narrow) if word and word not in known}


def broken_commands(narrow: str, wide: str) -> set[str]:
    """Commands of the unwrapped output that no single line of the narrow output holds whole."""
    lines = narrow.splitlines()
    return {command for command in _commands(wide) if not any(command in line for line in lines)}


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_layout_keeps_words_and_commands_whole(case: LayoutCase, tmp_path: Path) -> None:
    args = case.setup(tmp_path)
    wide = _run(args, UNWRAPPED, case.env)
    assert bool(_commands(wide)) == case.has_commands  # there is something to keep whole
    for width in WIDTHS:
        narrow = _run(args, width, case.env)
        assert not split_words(narrow, wide), (width, split_words(narrow, wide))
        assert not broken_commands(narrow, wide), (width, broken_commands(narrow, wide))
        assert "…" not in narrow, width  # nothing cut short


def test_the_checks_catch_a_split_word_and_a_broken_command() -> None:
    wide = "  Criterion   meets rec\n  pip install torch --index-url https://x/cu130\n"
    narrow = "  Criteri\n  on   meets rec\n  pip install torch\n  --index-url https://x/cu130\n"
    assert split_words(narrow, wide) == {"criteri", "on"}
    assert broken_commands(narrow, wide) == {"pip install torch --index-url https://x/cu130"}


def test_the_title_does_not_wrap_mid_phrase_at_80_columns(tmp_path: Path) -> None:
    args = _snapshot_args(lambda: replay_snapshot("cpu-only-epyc-vm"))(tmp_path)
    lines = _run(args, 80, {}).splitlines()
    assert lines[0] == "dlready check · profile book-2020"
    assert "16/64 GB" in lines[1]


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("command", ["", "check", "install-cmd", "smoke", "fit", "fleet", "diff"])
def test_help_never_splits_a_word(command: str, width: int) -> None:
    """click's wrapper broke `docs/json-schema.md` and `install-cmd` at their hyphens, and
    `dlready install-cmd | sh` between its words."""
    args = [command, "--help"] if command else ["--help"]
    result = runner.invoke(app, args, env={"COLUMNS": str(width)}, terminal_width=width)
    assert result.exit_code == 0
    wide = runner.invoke(app, args, env={"COLUMNS": str(UNWRAPPED)}, terminal_width=UNWRAPPED)
    words = set(re.findall(r"\S+", wide.stdout))
    for token in re.findall(r"\S+", result.stdout):
        assert token in words, f"{token!r} at {width} columns is a piece of a word"
    for line in result.stdout.splitlines():
        assert line.count("`") % 2 == 0, f"a `command` broken at {width} columns: {line!r}"


def test_diff_prints_text_values_whole(tmp_path: Path) -> None:
    """A changed install command or piece of advice is printed whole, never cut at 80 characters."""
    args = _check_reports_diff("cpu-only-epyc-vm", "h100-80gb-hbm3")(tmp_path)
    narrow = _run(args, 60, {})
    differences = json.loads(_run([*args, "--json"], 60, {}))["data"]["differences"]
    texts = [
        json.dumps(value, ensure_ascii=False)
        for difference in differences
        for value in (difference["before"], difference["after"])
        if isinstance(value, str)
    ]
    assert any("pip install torch" in text for text in texts)
    assert max(map(len, texts)) > 80  # long enough to have been cut before
    lines = narrow.splitlines()
    for text in texts:
        assert any(text in line for line in lines), text


@pytest.mark.parametrize("render", [render_text, render_markdown])
def test_fleet_report_keeps_commands_whole(render: Callable[[FleetReport], str]) -> None:
    """The fleet's text is plain lines whatever the width (a fleet of 8,000 GPUs renders fast):
    nothing is hard-wrapped, so each fix's command sits whole on the finding's own line."""
    report = assemble(h100_fleet(2, 8, change=_slow_rank))
    (finding,) = report.findings
    assert finding.kind == "straggler"
    commands = _QUOTED.findall(finding.fix)
    assert commands  # the straggler's fix names commands
    text = render(report)
    lines = text.splitlines()
    assert not broken_commands(text, finding.fix)
    assert any(finding.fix in line for line in lines)
    assert "…" not in text
    assert len(lines) > 16  # every rank has its row


@pytest.mark.parametrize("width", WIDTHS)
def test_fleet_text_fits_the_terminal_without_splitting_words(width: int) -> None:
    """What every rank shares is said once; a rank table wider than the terminal loses its
    notes column (the notes follow it) or becomes one line per rank; prose wraps at words."""
    report = assemble(h100_fleet(2, 8, change=_slow_rank))
    wide = render_text(report)
    narrow = render_text(report, width)
    assert all(len(line) <= width for line in narrow.splitlines()), width
    assert not split_words(narrow, wide)
    assert not broken_commands(narrow, report.findings[0].fix)
    assert "Every rank: NVIDIA H100 80GB HBM3, driver 580.159.04" in narrow.replace("\n  ", " ")
    assert "rank 11: straggler: matmul 75 % of the median" in narrow.replace("\n    ", " ")


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("machine", ["cpu-only-epyc-vm", "h100-80gb-hbm3"])
def test_check_prose_wraps_at_words_on_a_terminal(width: int, machine: str) -> None:
    """On a terminal, check's prose is wrapped at words to the width (a pipe gets whole
    lines: the other tests); only a line holding a whole command may run longer."""
    import io

    from rich.console import Console

    from dlready.commands.check import build_report
    from dlready.render.check_render import render_build_part, render_table

    snapshot = replay_snapshot(machine)
    report, build = build_report(snapshot, None, None)

    def rendered(columns: int, terminal: bool) -> str:
        buffer = io.StringIO()
        console = Console(file=buffer, force_terminal=terminal, width=columns, color_system=None)
        render_table(report, snapshot, console)
        render_build_part(build, console)
        return buffer.getvalue()

    wide = rendered(UNWRAPPED, False)
    narrow = rendered(width, True)
    assert not split_words(narrow, wide)
    assert not broken_commands(narrow, wide)
    for line in narrow.splitlines():
        assert len(line) <= width or _commands(line), (width, line)


@pytest.mark.parametrize("width", WIDTHS)
def test_install_explanations_wrap_as_comments_on_a_terminal(width: int) -> None:
    """install-cmd's stderr lines are shell comments: wrapped at words on a terminal, every
    piece still starts with #, and a `command` in them stays whole."""
    from dlready.render.text import wrap_comment

    line = (
        "#   no GPU: the CPU index, because plain `pip install torch` on linux-x86_64 downloads "
        "the multi-GB cu130 CUDA build (https://pytorch.org/get-started/previous-versions/)"
    )
    pieces = wrap_comment(line, width)
    assert all(piece.startswith("#   ") for piece in pieces)
    assert all(len(piece) <= width or "`" in piece or "https://" in piece for piece in pieces)
    assert any("`pip install torch`" in piece for piece in pieces)
    assert " ".join(p.lstrip("# ") for p in pieces) == line.lstrip("# ")
    assert wrap_comment(line, None) == [line]  # a pipe gets the whole line


@pytest.mark.parametrize("width", [54, 60, 70])
def test_prose_whose_head_fills_the_first_line_still_wraps(width: int) -> None:
    # `fit llama-2-70b` at 60 columns: the head ("meta-llama/Llama-2-70b-hf (69.0 billion
    # parameters): ", 53 characters) filled the first line, and the whole 100-character line
    # was printed unwrapped.
    import io

    from rich.console import Console

    from dlready.render.text import print_prose

    buffer = io.StringIO()
    console = Console(file=buffer, force_terminal=True, width=width, color_system=None)
    head = "meta-llama/Llama-2-70b-hf (69.0 billion parameters): "
    body = "inference, bf16 weights, batch 1 x 4,096 tokens"
    print_prose(console, head, head, body)
    lines = buffer.getvalue().splitlines()
    assert all(len(line) <= width for line in lines), lines
    assert " ".join(line.strip() for line in lines) == (head + body).strip()
