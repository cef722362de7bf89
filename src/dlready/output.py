"""Consoles, the versioned JSON envelope, and one-line errors.

Results go to stdout and diagnostics to stderr. rich decides on colour: only on a terminal,
never with ``NO_COLOR`` set.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, NoReturn

if TYPE_CHECKING:
    from rich.console import Console

from dlready import __version__
from dlready.exitcodes import ExitCode

SCHEMA_VERSION = 2
"""Version of every ``--json`` document; bumped on any incompatible change (docs/json-schema.md).

2: ``errors`` and ``warnings`` have one shape for every command (``dlready.result.Problem``).
"""

READABLE_SCHEMA_VERSIONS = frozenset({1, 2})
"""Envelope versions whose ``data.snapshot`` a ``--snapshot`` reader accepts (unchanged in 2)."""


def unreadable_schema_version(document: dict[str, Any]) -> str | None:
    """Why a saved report's ``schema_version`` cannot be read back, or None when it can.

    The one rule for every reader of saved reports (``check --snapshot``, ``diff``): an
    integer among :data:`READABLE_SCHEMA_VERSIONS` (``true`` is not ``1``).
    """
    version = document.get("schema_version")
    is_integer = isinstance(version, int) and not isinstance(version, bool)
    if is_integer and version in READABLE_SCHEMA_VERSIONS:
        return None
    shown = repr(version)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    readable = ", ".join(str(v) for v in sorted(READABLE_SCHEMA_VERSIONS))
    return f"schema_version {shown} is not supported (this dlready reads {readable})"


def _no_color() -> bool:
    # https://no-color.org: set and not empty. rich alone would still emit bold and dim.
    return bool(os.environ.get("NO_COLOR"))


_MIN_COLUMNS = 20
"""Below this a table cannot show a word per cell; such a COLUMNS is treated as unset."""
_DEFAULT_COLUMNS = 80
"""The width when none can be known (rich's own default)."""


def _columns_override() -> int | None:
    """A usable width when ``COLUMNS`` is nonsense (``0``, negative, text), else None.

    rich takes ``COLUMNS=0`` literally and prints nothing; a report must never vanish.
    """
    raw = os.environ.get("COLUMNS")
    if raw is None:
        return None
    try:
        columns = int(raw)
    except ValueError:
        return _DEFAULT_COLUMNS
    return None if columns >= _MIN_COLUMNS else _DEFAULT_COLUMNS


def stderr_terminal_columns() -> int | None:
    """The width of the terminal stderr writes to (``COLUMNS`` when it is sensible), or None
    when stderr is not a terminal (a pipe or a file gets whole lines)."""
    stream = sys.stderr
    try:
        if stream is None or not stream.isatty():
            return None
        raw = os.environ.get("COLUMNS", "")
        if raw.isdigit() and int(raw) >= _MIN_COLUMNS:
            return int(raw)
        columns = os.get_terminal_size(stream.fileno()).columns
        # A terminal that reports 0 columns (no size set, as under `script` without a parent
        # terminal) has an unknown width, as rich reads it too.
        return max(columns, _MIN_COLUMNS) if columns else _DEFAULT_COLUMNS
    except (OSError, ValueError):
        return None


def stdout_console() -> Console:
    """Console for results. A reader that goes away ends the process with exit 3."""
    from rich.console import Console  # rich costs ~15 ms to import; --json never needs it

    class _StdoutConsole(Console):
        def on_broken_pipe(self) -> None:
            # rich's own handler exits 1, which reads as "not ready".
            self.quiet = True
            _stdout_lost("the reader of the output went away before it was all written")

    width = _columns_override()
    if _no_color():
        return _StdoutConsole(highlight=False, color_system=None, width=width)
    return _StdoutConsole(highlight=False, width=width)


def stderr_console() -> Console:
    """Console for diagnostics (never hard-wrapped: one message, one line).

    A stderr whose reader went away raises ``BrokenPipeError`` to the caller (which drops the
    line) instead of rich's own handler, which would end the process with exit 1.
    """
    from rich.console import Console

    class _StderrConsole(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            raise BrokenPipeError

    width = _columns_override()
    if _no_color():
        return _StderrConsole(
            stderr=True, highlight=False, soft_wrap=True, color_system=None, width=width
        )
    return _StderrConsole(stderr=True, highlight=False, soft_wrap=True, width=width)


def prepare_streams() -> None:
    """Make stdout and stderr unable to fail on a character they cannot encode.

    Under ``PYTHONIOENCODING=ascii`` or ``LC_ALL=C`` a "°C" or a name from another host
    would end the command with a traceback; such characters are written as escapes instead.
    """
    for stream in (sys.stdout, sys.stderr):
        reconfigure = getattr(stream, "reconfigure", None)  # absent on replaced streams
        if reconfigure is not None:
            with contextlib.suppress(OSError, ValueError):
                reconfigure(errors="backslashreplace")


def _stdout_is_utf8() -> bool:
    encoding = getattr(sys.stdout, "encoding", None) or ""
    return encoding.lower().replace("-", "").replace("_", "") == "utf8"


def envelope(
    command: str,
    exit_code: ExitCode,
    data: Any,
    errors: list[dict[str, str]] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """Wrap a command's result in the documented JSON envelope."""
    return {
        "schema_version": SCHEMA_VERSION,
        "dlready_version": __version__,
        "command": command,
        "status": status or ("ok" if exit_code is ExitCode.OK else exit_code.name.lower()),
        "exit_code": int(exit_code),
        "data": data,
        "errors": errors or [],
        "warnings": [],
    }


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON; a reading that produced one is reported as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value


def dump_json(document: Any) -> str:
    """Stable, strictly valid JSON text: sorted keys, two-space indent, no NaN."""
    return json.dumps(
        _finite(document),
        indent=2,
        sort_keys=True,
        # Escapes keep the JSON valid on a stdout that cannot encode every character.
        ensure_ascii=not _stdout_is_utf8(),
        allow_nan=False,
    )


def print_json(document: Any) -> None:
    """Write a JSON document to stdout (a closed or full stdout exits 3, see stdout_guard)."""
    text = dump_json(document) + "\n"
    with stdout_guard():
        sys.stdout.write(text)


def stderr_line(line: str) -> None:
    """One plain diagnostic line; dropped when stderr is closed or refuses the write.

    An unwritable stderr must not change the exit code the caller is about to return.
    """
    stream = sys.stderr
    if stream is None:
        return
    try:
        stream.write(line + "\n")
        stream.flush()
    except (OSError, ValueError, UnicodeError):
        pass


def error_line(message: str, hint: str | None = None) -> None:
    """One clear error line on stderr (and an optional hint line); never raises."""
    if sys.stderr is None:  # started with stderr closed: nowhere to explain
        return
    try:
        from rich.markup import escape

        console = stderr_console()
        console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
        if hint:
            console.print(f"[yellow]hint:[/] {escape(hint)}", markup=True, highlight=False)
    except (OSError, ValueError, UnicodeError):
        pass  # stderr refuses the write: the exit code still tells


def _stdout_lost(reason: str) -> NoReturn:
    error_line(f"{reason}; the result is incomplete")
    # Keep Python from failing again while it flushes stdout at exit.
    with contextlib.suppress(OSError, ValueError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(int(ExitCode.COULD_NOT_RUN))


@contextlib.contextmanager
def stdout_guard() -> Iterator[None]:
    """Turn a closed, full or vanished stdout into exit code 3 and one line, not a traceback."""
    if sys.stdout is None:
        error_line("stdout is closed: there is nowhere to write the result")
        raise SystemExit(int(ExitCode.COULD_NOT_RUN))
    try:
        yield
        sys.stdout.flush()
    except BrokenPipeError:
        _stdout_lost("the reader of the output went away before it was all written")
    except OSError as exc:
        _stdout_lost(f"cannot write the result to stdout: {exc.strerror or exc}")
