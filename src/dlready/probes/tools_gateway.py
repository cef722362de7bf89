"""The only module that runs external programs (``nvcc``, ``gcc``, ``cl``, a target Python, pip).

Probes take a :class:`ToolBackend` so tests can replay outputs recorded from real tools.
Every probing run has a short timeout and never raises: a missing program, a hang or a crash
becomes a :class:`ToolRun` with ``error`` set. Programs are looked up with :func:`shutil.which`
first and run only when found, several at once, so a machine without them pays almost nothing.
The one long run is :func:`run_streaming` (``install-cmd --run``), which the user asked for.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from msgspec import Struct

from dlready.background import run_all as run_all_at_once

TOOL_TIMEOUT_S = 5.0
"""``nvcc --version`` answers in ~5 ms warm; a cold network home directory can take a second."""

_MAX_OUTPUT_CHARS = 64 * 1024


class ToolRun(Struct, frozen=True):
    """The outcome of running one program: its exit status and output, or why it did not run."""

    argv: tuple[str, ...]
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    error: str | None = None
    """Set when the program could not be started, timed out or crashed on start."""

    @property
    def ok(self) -> bool:
        """True when the program ran and exited 0."""
        return self.error is None and self.returncode == 0

    @property
    def output(self) -> str:
        """stdout then stderr (``cl.exe`` prints its banner on stderr)."""
        return (self.stdout + "\n" + self.stderr).strip()


class ToolBackend(Protocol):
    """Programs on PATH, their outputs, and the few toolchain files a build needs."""

    def environ(self) -> Mapping[str, str]:
        """The environment (``PATH``, ``CUDA_HOME``, ``MAX_JOBS``...)."""
        ...

    def which(self, name: str) -> str | None:
        """The program's path on ``PATH``, or None."""
        ...

    def run_all(self, commands: Sequence[Sequence[str]]) -> list[ToolRun]:
        """Run the commands (concurrently), each with a short timeout; never raises."""
        ...

    def is_file(self, path: str) -> bool:
        """True when ``path`` is an existing file."""
        ...

    def read_text(self, path: str) -> str | None:
        """A small text file (a header), or None."""
        ...

    def list_dir(self, path: str) -> list[str] | None:
        """Sorted names in a folder, or None."""
        ...

    def realpath(self, path: str) -> str:
        """``path`` with symbolic links resolved."""
        ...

    def python_include_dir(self) -> str | None:
        """Where this interpreter's ``Python.h`` belongs (``sysconfig``)."""
        ...

    def package_version(self, name: str) -> str | None:
        """The installed version of a Python distribution (wheel metadata), or None."""
        ...


def _decode(raw: bytes | None) -> str:
    # Compilers print in the console's code page on Windows (collect_env crashed on this).
    return (raw or b"").decode("utf-8", errors="replace")[:_MAX_OUTPUT_CHARS]


def run_tool(argv: Sequence[str], timeout_s: float = TOOL_TIMEOUT_S) -> ToolRun:
    """Run one program with a timeout; a failure to start or a timeout is a ToolRun error."""
    command = tuple(argv)
    try:
        completed = subprocess.run(
            command,
            capture_output=True,
            stdin=subprocess.DEVNULL,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return ToolRun(command, error=f"no answer within {timeout_s:g} s")
    except (OSError, ValueError, subprocess.SubprocessError) as exc:
        return ToolRun(command, error=f"could not run: {exc}")
    return ToolRun(
        command, completed.returncode, _decode(completed.stdout), _decode(completed.stderr)
    )


def command_line(argv: Sequence[str]) -> str:
    """A command as one line a person can copy, quoted for this platform's shell."""
    if sys.platform == "win32":
        return subprocess.list2cmdline(list(argv))
    import shlex

    return shlex.join(argv)


def run_streaming(argv: Sequence[str]) -> int:
    """Run a program with this terminal's stdin, stdout and stderr (its output streams as it
    comes); return its exit status. No timeout: an install takes as long as the download.

    Ctrl-C (or SIGTERM/SIGHUP, which end a command the same way) kills the program and is
    raised on: the command then reports "interrupted", not a failed install.

    Raises:
        OSError: when the program cannot be started.
        KeyboardInterrupt: when the user stopped it.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    return subprocess.call(list(argv))  # kills the program before raising KeyboardInterrupt


class RealTools:
    """This machine's programs and files."""

    def __init__(self, timeout_s: float = TOOL_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s

    def environ(self) -> Mapping[str, str]:
        """The process environment."""
        return os.environ

    def which(self, name: str) -> str | None:
        """:func:`shutil.which` (PATHEXT on Windows)."""
        return shutil.which(name)

    def run_all(self, commands: Sequence[Sequence[str]]) -> list[ToolRun]:
        """Run every command on its own thread; total time is the slowest one's."""
        return run_all_at_once(
            [functools.partial(run_tool, argv, self._timeout_s) for argv in commands]
        )

    def is_file(self, path: str) -> bool:
        """:func:`os.path.isfile`."""
        return os.path.isfile(path)

    def read_text(self, path: str) -> str | None:
        """The first 64 KiB of a text file, or None."""
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                return handle.read(_MAX_OUTPUT_CHARS)
        except OSError:
            return None

    def list_dir(self, path: str) -> list[str] | None:
        """Sorted names, or None when the folder is missing or unreadable."""
        try:
            return sorted(os.listdir(path))
        except OSError:
            return None

    def realpath(self, path: str) -> str:
        """:func:`os.path.realpath`."""
        return os.path.realpath(path)

    def python_include_dir(self) -> str | None:
        """``sysconfig``'s include folder of this interpreter."""
        return sysconfig.get_paths().get("include")

    def package_version(self, name: str) -> str | None:
        """From the ``NAME-VERSION.dist-info`` folder on ``sys.path`` (the wheel's metadata);
        listing the folders avoids importing ``importlib.metadata`` (~10-90 ms)."""
        return dist_info_version(name, sys.path, self.list_dir)


def dist_info_version(
    name: str, folders: Sequence[str], list_dir: Callable[[str], list[str] | None]
) -> str | None:
    """The version in the first ``<name>-<version>.dist-info`` folder found (names compared as
    wheels write them: lower case, ``-`` and ``.`` as ``_``)."""
    wanted = re.sub(r"[-_.]+", "_", name).lower() + "-"
    for folder in folders:
        for entry in list_dir(folder or ".") or ():
            lowered = entry.lower()
            if lowered.startswith(wanted) and lowered.endswith(".dist-info"):
                return entry[len(wanted) : -len(".dist-info")]
    return None


def _slashed(path: str) -> str:
    return path.replace("\\", "/")


class ReplayTools:
    """Recorded programs and files: ``outputs`` maps an argv tuple to its recorded run."""

    def __init__(
        self,
        *,
        paths: Mapping[str, str] | None = None,
        outputs: Mapping[tuple[str, ...], ToolRun] | None = None,
        files: Mapping[str, str] | None = None,
        environ: Mapping[str, str] | None = None,
        links: Mapping[str, str] | None = None,
        python_include: str | None = None,
        packages: Mapping[str, str] | None = None,
    ) -> None:
        self._paths = dict(paths or {})
        self._outputs = dict(outputs or {})
        self._files = {_slashed(path): text for path, text in (files or {}).items()}
        self._environ = dict(environ or {})
        self._links = dict(links or {})
        self._python_include = python_include
        self._packages = dict(packages or {})
        self.ran: list[tuple[str, ...]] = []

    def environ(self) -> Mapping[str, str]:
        """The recorded environment."""
        return self._environ

    def which(self, name: str) -> str | None:
        """The recorded path of ``name``."""
        return self._paths.get(name)

    def run_all(self, commands: Sequence[Sequence[str]]) -> list[ToolRun]:
        """The recorded runs; an unrecorded command did not start."""
        runs = []
        for argv in commands:
            key = tuple(argv)
            self.ran.append(key)
            runs.append(self._outputs.get(key, ToolRun(key, error="could not run: not recorded")))
        return runs

    def is_file(self, path: str) -> bool:
        """True for a recorded file (Windows paths match with either separator)."""
        return _slashed(path) in self._files

    def read_text(self, path: str) -> str | None:
        """A recorded file's text."""
        return self._files.get(_slashed(path))

    def list_dir(self, path: str) -> list[str] | None:
        """Names directly under ``path`` among the recorded files."""
        prefix = path.rstrip("/\\") + "/"
        names = {p[len(prefix) :].split("/", 1)[0] for p in self._files if p.startswith(prefix)}
        return sorted(names) if names else None

    def realpath(self, path: str) -> str:
        """The recorded link target, else the path itself."""
        return self._links.get(path, path)

    def python_include_dir(self) -> str | None:
        """The recorded include folder."""
        return self._python_include

    def package_version(self, name: str) -> str | None:
        """A recorded distribution's version."""
        return self._packages.get(name)
