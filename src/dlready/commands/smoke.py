"""Placeholder: replaced by the real command."""

from __future__ import annotations

import typer


def smoke_command() -> None:
    """Not yet implemented."""
    raise typer.Exit(3)
