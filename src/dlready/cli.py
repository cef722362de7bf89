"""The ``dlready`` command line: one Typer app, one module per command under ``commands/``."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable
from typing import Annotated, Any

import typer

# typer 0.28 vendors click and does not re-export its base exception.
from typer._click.exceptions import ClickException

from dlready import __version__
from dlready.exitcodes import EXIT_CODES_HELP, exit_codes_help


def _help_keeps_words_whole() -> None:
    """click wraps help text at hyphens, inside long words and inside `commands`, which splits
    `install-cmd`, `meta-llama/Llama-2-7b-hf`, paths and copyable commands across lines; a
    help line may run long instead."""
    import textwrap

    from typer._click import _textwrap

    from dlready.render.text import WholeWordsWrapper

    class WholeWords(WholeWordsWrapper, _textwrap.TextWrapper):
        _handle_long_word = textwrap.TextWrapper._handle_long_word

    _textwrap.TextWrapper = WholeWords  # type: ignore[misc]


_help_keeps_words_whole()


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"dlready {__version__}")
        raise typer.Exit()


def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_print_version, is_eager=True, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Root options."""


def _check() -> Callable[..., None]:
    from dlready.commands.check import check_command

    return check_command


def _install_cmd() -> Callable[..., None]:
    from dlready.commands.install_cmd import install_cmd_command

    return install_cmd_command


def _smoke() -> Callable[..., None]:
    from dlready.commands.smoke import smoke_command

    return smoke_command


def _fleet() -> Callable[..., None]:
    from dlready.commands.fleet import fleet_command

    return fleet_command


def _diff() -> Callable[..., None]:
    from dlready.commands.diff import diff_command

    return diff_command


def _fit() -> Callable[..., None]:
    from dlready.commands.fit import fit_command

    return fit_command


# name, the short line for `dlready --help` (click would cut the docstring mid-sentence),
# and where the command lives: imported only when it is needed.
COMMANDS: tuple[tuple[str, str, Callable[[], Callable[..., None]]], ...] = (
    ("check", "Judge CPU, RAM, GPUs, power and cooling against a spec table.", _check),
    (
        "install-cmd",
        "Print (or run) the right PyTorch install command for this machine.",
        _install_cmd,
    ),
    ("smoke", "Prove the installed PyTorch works on the device, and how fast.", _smoke),
    ("fleet", "Check every node and GPU of a cluster at once; name the weak one.", _fleet),
    ("diff", "Compare two saved check or fleet reports, field by field.", _diff),
    ("fit", "Will this model train or run here, and what would make it fit.", _fit),
)


def build_app(only: str | None = None) -> typer.Typer:
    """The Typer app with every command, or with ``only`` that one.

    Running one command builds only it: reading the other commands' signatures and importing
    their modules would cost ~15 ms of `check`'s start-up.
    """
    app = typer.Typer(
        name="dlready",
        help=(
            "Is this machine ready for deep learning? `check` judges the hardware, `install-cmd` "
            "prints the right PyTorch install command, `smoke` proves the installed PyTorch "
            "works, `fit` says whether a model fits, `fleet` checks a cluster and `diff` "
            "compares two reports.\n\n" + EXIT_CODES_HELP
        ),
        no_args_is_help=True,
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.callback()(_root)
    for name, short_help, load in COMMANDS:
        if only is None or name == only:
            function = load()
            app.command(
                name, help=function.__doc__, short_help=short_help, epilog=exit_codes_help(name)
            )(function)
    return app


@functools.cache
def _full_app() -> typer.Typer:
    return build_app()


def __getattr__(name: str) -> Any:
    """``dlready.cli.app``: the app with every command, built on first use (tests, tools)."""
    if name == "app":
        return _full_app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every way out is a documented exit code, never a traceback.

    The parser runs in non-standalone mode so that its own errors (an unknown flag, a bad
    value) come back here: with ``--json`` they are the usual envelope on stdout, otherwise
    the parser's usual ``Usage:``/``Error:`` lines on stderr; both exit 2.
    """
    import errno
    import sys

    from dlready import output
    from dlready.exitcodes import ExitCode

    output.prepare_streams()
    args = list(sys.argv[1:] if argv is None else argv)
    try:
        only = args[0] if args and args[0] in {name for name, _, _ in COMMANDS} else None
        code = typer.main.get_command(build_app(only)).main(
            args=args, prog_name="dlready", standalone_mode=False
        )
    except (typer.Abort, KeyboardInterrupt):  # the parser turns Ctrl-C into Abort
        from dlready.result import interrupted_exit

        code = interrupted_exit(args)
    except ClickException as exc:
        code = _parser_error(exc, args)
    except OSError as exc:  # help or version text that stdout would not take
        output.error_line(f"cannot write to stdout: {exc.strerror or exc}")
        code = ExitCode.COULD_NOT_RUN
    except SystemExit as exc:
        # The parser turns a reader that went away during --help into exit 1 ("not ready").
        context = exc.__context__
        if exc.code == 1 and isinstance(context, OSError) and context.errno == errno.EPIPE:
            output.error_line("the reader of the output went away before it was all written")
            code = ExitCode.COULD_NOT_RUN
        else:
            raise
    if code is None:
        code = ExitCode.OK
    with output.stdout_guard():
        pass  # flush what is buffered now, while a failure can still become exit 3
    raise SystemExit(int(code))


def asked_command(args: list[str]) -> tuple[str, bool]:
    """The command the arguments name (``dlready`` when they name none that exists) and
    whether they ask for ``--json`` (what follows ``--`` is not an option)."""
    options = args[: args.index("--")] if "--" in args else args
    named = next((arg for arg in options if not arg.startswith("-")), None)
    command = named if named in {name for name, _, _ in COMMANDS} and named else "dlready"
    return command, "--json" in options


def _parser_error(exc: ClickException, args: list[str]) -> int:
    """A flag the parser rejected: the JSON envelope with ``--json``, else the usual lines."""
    from dlready.exitcodes import ExitCode
    from dlready.result import CommandResult, OutputFormat, Problem, emit

    command, as_json = asked_command(args)
    if as_json:
        help_command = f"dlready {command} --help" if command != "dlready" else "dlready --help"
        problem = Problem("usage", exc.format_message(), f"see `{help_command}`")
        result = CommandResult(command, ExitCode.USAGE, errors=(problem,))
        return int(emit(result, OutputFormat.JSON))
    with contextlib.suppress(OSError, ValueError):  # stderr refuses: the exit code still tells
        exc.show()
    return exc.exit_code
