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
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console

from dlready import __version__
from dlready.exitcodes import ExitCode

SCHEMA_VERSION = 1
"""Version of every ``--json`` document; bumped on any incompatible change (docs/json-schema.md)."""


def _no_color() -> bool:
    # https://no-color.org: set and not empty. rich alone would still emit bold and dim.
    return bool(os.environ.get("NO_COLOR"))


def stdout_console() -> Console:
    """Console for results."""
    from rich.console import Console  # rich costs ~15 ms to import; --json never needs it

    if _no_color():
        return Console(highlight=False, color_system=None)
    return Console(highlight=False)


def stderr_console() -> Console:
    """Console for diagnostics (never hard-wrapped: one message, one line)."""
    from rich.console import Console

    if _no_color():
        return Console(stderr=True, highlight=False, soft_wrap=True, color_system=None)
    return Console(stderr=True, highlight=False, soft_wrap=True)


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
        _finite(document), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False
    )


def print_json(document: Any) -> None:
    """Write a JSON document to stdout (a closed or full stdout exits 3, see stdout_guard)."""
    text = dump_json(document) + "\n"
    with stdout_guard():
        sys.stdout.write(text)


def error_line(message: str, hint: str | None = None) -> None:
    """One clear error line on stderr (and an optional hint line)."""
    from rich.markup import escape

    if sys.stderr is None:  # started with stderr closed: nowhere to explain
        return
    console = stderr_console()
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    if hint:
        console.print(f"[yellow]hint:[/] {escape(hint)}", markup=True, highlight=False)


@contextlib.contextmanager
def stdout_guard() -> Iterator[None]:
    """Turn a closed, full or vanished stdout into exit code 3 instead of a traceback."""
    if sys.stdout is None:
        error_line("stdout is closed: there is nowhere to write the result")
        raise SystemExit(int(ExitCode.COULD_NOT_RUN))
    try:
        yield
        sys.stdout.flush()
    except OSError as exc:
        # A reader that went away (`| head`) ends quietly, as Unix tools do.
        if not isinstance(exc, BrokenPipeError):
            error_line(f"cannot write the result to stdout: {exc.strerror or exc}")
        # Keep Python from failing again while it flushes stdout at exit.
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(int(ExitCode.COULD_NOT_RUN)) from None
