"""Placeholder: replaced by the real command."""

from __future__ import annotations

import typer


def install_cmd_command() -> None:
    """Not yet implemented."""
    raise typer.Exit(3)
