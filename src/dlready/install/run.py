"""``install-cmd --run``: install the plan into one Python interpreter, not whatever ``pip`` is first
on ``PATH``.

The target is the interpreter that runs dlready, or the one named by ``--python PATH`` (like
uv's ``--python``). Its version and platform are read by running it (through
:mod:`dlready.probes.tools_gateway`), the plan is made for it, and the command runs as
``<python> -m pip install ...``, ``uv pip install --python <python> ...`` or ``conda install
--prefix <the active environment> ...``. A plan for another machine (``--os``, ``--arch`` or
``--python X.Y`` that the target does not match) is refused: installing it here would be wrong.
"""

from __future__ import annotations

import json
import os
import platform
import re
import shlex
import sys
from collections.abc import Callable
from typing import TextIO

from msgspec import Struct
from msgspec.structs import replace

from dlready.exitcodes import ExitCode
from dlready.install.facts import DETECTED, Fact, FactOverrides, MachineFacts
from dlready.install.plan import InstallPlan
from dlready.probes.tools_gateway import RealTools, ToolBackend, command_line, run_streaming
from dlready.result import CommandError, Problem

INTERPRETER_PROBE = (
    "import json, platform, sys; print(json.dumps({'version': '%d.%d.%d' % sys.version_info[:3], "
    "'system': platform.system(), 'machine': platform.machine(), 'prefix': sys.prefix, "
    "'executable': sys.executable}))"
)
"""Run by the target interpreter: its version and platform, as it sees them (an x86_64 Python
under Rosetta on an Apple silicon Mac says x86_64, and needs x86_64 wheels)."""

_VERSION_LIKE = re.compile(r"\d+(\.\d+)*\w*")
_SYSTEMS = {"Linux": "linux", "Windows": "windows", "Darwin": "macos"}
_ARCHS = {
    "amd64": "x86_64",
    "x64": "x86_64",
    "x86_64": "x86_64",
    "aarch64": "aarch64",
    "arm64": "arm64",
}


class RunError(CommandError):
    """``--run`` cannot go ahead: a one-line message, a hint and the exit code.

    A :class:`CommandError`, so the command's emit path reports it as it stands.
    """

    def __init__(self, code: ExitCode, message: str, hint: str | None = None) -> None:
        super().__init__(code, Problem("run_refused", message, hint))

    @property
    def code(self) -> ExitCode:
        """The exit code the refusal ends with."""
        return self.exit_code


class TargetInterpreter(Struct, frozen=True):
    """The Python the install goes into."""

    executable: str
    version: str
    """``3.12.3``."""
    os: str
    """``linux``, ``windows``, ``macos`` or ``other``."""
    arch: str
    prefix: str
    given: bool
    """True for ``--python PATH``; False for the interpreter running dlready."""

    @property
    def python(self) -> str:
        """``3.12``."""
        return ".".join(self.version.split(".")[:2])


def is_interpreter(value: str) -> bool:
    """``--python``: a version (``3.12``) plans for another machine; anything else (a path or an
    executable name such as ``python3.12``) names an interpreter, as uv's ``--python`` does."""
    return _VERSION_LIKE.fullmatch(value.strip()) is None


def _normalise(system: str, machine: str) -> tuple[str, str]:
    return _SYSTEMS.get(system, "other"), _ARCHS.get(machine.lower(), machine.lower())


def this_interpreter() -> TargetInterpreter:
    """The interpreter running dlready."""
    os_name, arch = _normalise(platform.system(), platform.machine())
    return TargetInterpreter(
        executable=sys.executable,
        version=".".join(str(part) for part in sys.version_info[:3]),
        os=os_name,
        arch=arch,
        prefix=sys.prefix,
        given=False,
    )


def read_interpreter(value: str, tools: ToolBackend | None = None) -> TargetInterpreter:
    """Run the named interpreter to read its version and platform.

    Raises:
        RunError: (exit 2) when it cannot be found, run, or does not answer like a Python.
    """
    tools = tools or RealTools()
    expanded = os.path.expanduser(value)
    path = expanded if (os.sep in expanded or "/" in expanded) else tools.which(expanded)
    if not path or not tools.is_file(path):
        raise RunError(
            ExitCode.USAGE,
            f"--python {value!r}: no such interpreter",
            "--python X.Y plans for another machine; --python PATH names an interpreter "
            "(e.g. --python .venv/bin/python)",
        )
    run = tools.run_all([[path, "-c", INTERPRETER_PROBE]])[0]
    try:
        facts = json.loads(run.stdout.strip().splitlines()[-1]) if run.ok else None
    except (ValueError, IndexError):
        facts = None
    if not isinstance(facts, dict) or not all(
        isinstance(facts.get(k), str) for k in ("version", "system", "machine", "prefix")
    ):
        reason = run.error or f"exit {run.returncode}: {(run.stderr or run.stdout).strip()[:200]}"
        raise RunError(
            ExitCode.USAGE,
            f"--python {value!r}: could not read its version and platform ({reason})",
            "name a working Python interpreter",
        )
    os_name, arch = _normalise(facts["system"], facts["machine"])
    return TargetInterpreter(
        # The path as named, not the sys.executable it reports: a venv's python reports the
        # venv path anyway, and a wrapper must receive the install it was named for.
        executable=os.path.abspath(path),
        version=facts["version"],
        os=os_name,
        arch=arch,
        prefix=facts["prefix"],
        given=True,
    )


def _same_arch(a: str, b: str) -> bool:
    arm = {"aarch64", "arm64"}
    return a == b or (a in arm and b in arm)


def check_same_machine(
    target: TargetInterpreter,
    overrides: FactOverrides,
    python_version_given: bool,
    installing: bool = True,
) -> None:
    """Refuse flags that plan for another machine than the target interpreter.

    Raises:
        RunError: (exit 2) naming the flag, the target's value and what to do.
    """
    where = f"the interpreter {target.executable}"
    conflicts = []
    if overrides.os is not None and overrides.os != target.os:
        conflicts.append(f"--os {overrides.os} (it runs on {target.os})")
    if overrides.arch is not None and not _same_arch(overrides.arch, target.arch):
        conflicts.append(f"--arch {overrides.arch} (it is {target.arch})")
    if python_version_given and overrides.python is not None and overrides.python != target.python:
        conflicts.append(f"--python {overrides.python} (it is Python {target.python})")
    if conflicts and not installing:  # --python PATH without --run: plan for that interpreter
        flags = " and ".join(conflict.split(" (")[0] for conflict in conflicts)
        raise RunError(
            ExitCode.USAGE,
            f"{'; '.join(conflicts)} contradicts {where}, which the plan is for",
            f"drop {flags} to plan for that interpreter, or give --python {target.python} "
            "(a version, not an interpreter) to plan for another machine",
        )
    if conflicts:
        raise RunError(
            ExitCode.USAGE,
            f"the plan is for another machine than {where}: {'; '.join(conflicts)}",
            "drop those flags to install here, or drop --run to print the command for the other "
            "machine; --python PATH installs into another interpreter",
        )


def facts_for(facts: MachineFacts, target: TargetInterpreter) -> MachineFacts:
    """The facts with the target interpreter's Python, OS and architecture (read from it)."""
    if not target.given:
        return facts
    # Read by running that interpreter: detected (from it), not typed in as flags.
    detail = f"read from {target.executable}"
    result = replace(facts, python=Fact(target.python, DETECTED, detail))
    if target.os != "other":
        result = replace(result, os=Fact(target.os, DETECTED, detail))
    return replace(result, arch=Fact(target.arch, DETECTED, detail))


def for_interpreter(plan: InstallPlan, target: TargetInterpreter) -> InstallPlan:
    """The plan's command for ``--python PATH`` without ``--run``: the pip of that interpreter
    (``/usr/bin/python3 -m pip install ...``, uv: ``uv pip install --python /usr/bin/python3
    ...``), as ``--run`` runs it, so that ``| sh`` installs into it and not into whatever pip
    is first on PATH. conda installs into the active environment and stays as it is."""
    for program, prefix in (
        ("pip install ", [target.executable, "-m", "pip", "install"]),
        ("uv pip install ", ["uv", "pip", "install", "--python", target.executable]),
    ):
        if plan.command_line.startswith(program):
            rest = plan.command_line.removeprefix(program)
            return replace(
                plan,
                command_line=f"{command_line(prefix)} {rest}",
                reasons=[
                    *plan.reasons,
                    f"for the interpreter {target.executable}: its own pip, so the command "
                    "installs into it wherever it runs",
                ],
            )
    return plan


def run_argv(
    plan: InstallPlan, target: TargetInterpreter, tools: ToolBackend | None = None
) -> list[str]:
    """The plan's command, run for the target interpreter.

    Raises:
        RunError: uv or conda missing (exit 3), or conda's active environment is not the
            target's (exit 2).
    """
    tools = tools or RealTools()
    words = shlex.split(plan.command_line)
    if words[:2] == ["pip", "install"]:
        return [target.executable, "-m", "pip", "install", *words[2:]]
    if words[:3] == ["uv", "pip", "install"]:
        uv = tools.which("uv")
        if uv is None:
            raise RunError(
                ExitCode.COULD_NOT_RUN, "uv is not on PATH", "--manager pip, or install uv"
            )
        return [uv, "pip", "install", "--python", target.executable, *words[3:]]
    if words[:2] == ["conda", "install"]:
        return _conda_argv(words[2:], target, tools)
    raise RunError(ExitCode.COULD_NOT_RUN, f"cannot run {plan.command_line!r}")


def _conda_argv(arguments: list[str], target: TargetInterpreter, tools: ToolBackend) -> list[str]:
    environ = tools.environ()
    active = environ.get("CONDA_PREFIX")
    if not active:
        raise RunError(
            ExitCode.USAGE,
            "conda installs into the active environment, and none is active",
            "`conda activate ENV` first, or --manager pip",
        )
    if tools.realpath(active) != tools.realpath(target.prefix):
        raise RunError(
            ExitCode.USAGE,
            f"the active conda environment ({active}) is not the environment of "
            f"{target.executable} ({target.prefix})",
            "activate that environment, or --python the active environment's python",
        )
    conda = environ.get("CONDA_EXE") or tools.which("conda")
    if not conda:
        raise RunError(ExitCode.COULD_NOT_RUN, "conda is not on PATH", "--manager pip")
    # The user confirmed (or passed --yes) already: conda must not ask a second time.
    return [conda, "install", "--prefix", active, "--yes", *arguments]


def confirm(
    assume_yes: bool,
    stdin: TextIO | None,
    stderr: TextIO | None,
    is_terminal: Callable[[], bool] | None = None,
) -> bool:
    """Ask on a terminal; True with ``--yes``.

    Raises:
        RunError: (exit 2) without ``--yes`` when there is no terminal to ask on.
    """
    if assume_yes:
        return True
    terminal = is_terminal() if is_terminal is not None else bool(stdin and stdin.isatty())
    if not terminal or stdin is None:
        raise RunError(
            ExitCode.USAGE,
            "--run asks before installing, and there is no terminal to ask on",
            "pass --yes to install without asking",
        )
    if stderr is not None:
        stderr.write("Install now? [y/N] ")
        stderr.flush()
    answer = stdin.readline()
    if not answer and stderr is not None:  # end of input (Ctrl-D): end the prompt's line
        stderr.write("\n")
        stderr.flush()
    return answer.strip().lower() in ("y", "yes")


def verify_hint(target: TargetInterpreter) -> str:
    """How to check the install worked."""
    if target.executable == sys.executable:
        return "verify it with: dlready smoke"
    return f"verify it with: {command_line([target.executable, '-m', 'dlready', 'smoke'])} (dlready must be installed there too)"


def execute(argv: list[str], runner: Callable[[list[str]], int] = run_streaming) -> int:
    """Run the install with the terminal's streams; its exit status.

    Raises:
        RunError: (exit 3) when the program cannot be started.
    """
    try:
        return runner(argv)
    except OSError as exc:
        raise RunError(
            ExitCode.COULD_NOT_RUN, f"could not start {argv[0]}: {exc.strerror or exc}"
        ) from None
