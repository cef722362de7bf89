"""The ``dlready`` command line: one Typer app, one module per command under ``commands/``."""

from __future__ import annotations

from typing import Annotated

import typer

from dlready import __version__
from dlready.commands.check import check_command
from dlready.commands.diff import diff_command
from dlready.commands.fleet import fleet_command
from dlready.commands.install_cmd import install_cmd_command
from dlready.commands.smoke import smoke_command
from dlready.exitcodes import EXIT_CODES_HELP

app = typer.Typer(
    name="dlready",
    help=(
        "Is this machine ready for deep learning? `check` judges the hardware, `install-cmd` "
        "prints the right PyTorch install command, `smoke` proves the installed PyTorch works.\n\n"
        + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dlready {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Root options."""


app.command("check", help=check_command.__doc__, epilog=EXIT_CODES_HELP)(check_command)
app.command("install-cmd", help=install_cmd_command.__doc__, epilog=EXIT_CODES_HELP)(
    install_cmd_command
)
app.command("smoke", help=smoke_command.__doc__, epilog=EXIT_CODES_HELP)(smoke_command)
app.command("fleet", help=fleet_command.__doc__, epilog=EXIT_CODES_HELP)(fleet_command)
app.command("diff", help=diff_command.__doc__, epilog=EXIT_CODES_HELP)(diff_command)


def main() -> None:
    """Console-script entry point."""
    app()
