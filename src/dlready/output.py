"""Consoles, the versioned JSON envelope, and one-line errors.

Results go to stdout and diagnostics to stderr. rich decides on colour: only on a terminal,
never with ``NO_COLOR`` set.
"""

from __future__ import annotations

import json
import os
import sys
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


def dump_json(document: Any) -> str:
    """Stable JSON text: sorted keys, two-space indent."""
    return json.dumps(document, indent=2, sort_keys=True, ensure_ascii=False)


def print_json(document: Any) -> None:
    """Write a JSON document to stdout."""
    sys.stdout.write(dump_json(document) + "\n")
    sys.stdout.flush()


def error_line(message: str, hint: str | None = None) -> None:
    """One clear error line on stderr (and an optional hint line)."""
    from rich.markup import escape

    console = stderr_console()
    console.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    if hint:
        console.print(f"[yellow]hint:[/] {escape(hint)}", markup=True, highlight=False)
