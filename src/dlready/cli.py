"""The ``dlready`` command line: one Typer app, one module per command under ``commands/``."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer

# typer 0.28 vendors click and does not re-export its base exception.
from typer._click.exceptions import ClickException

from dlready import __version__
from dlready.commands.check import check_command
from dlready.commands.diff import diff_command
from dlready.commands.fit import fit_command
from dlready.commands.fleet import fleet_command
from dlready.commands.install_cmd import install_cmd_command
from dlready.commands.smoke import smoke_command
from dlready.exitcodes import EXIT_CODES_HELP, exit_codes_help


def _help_keeps_words_whole() -> None:
    """click wraps help text at hyphens, inside long words and inside `commands`, which splits
    `install-cmd`, `meta-llama/Llama-2-7b-hf`, paths and copyable commands across lines; a
    help line may run long instead."""
    import textwrap

    from typer._click import _textwrap

    class WholeWords(_textwrap.TextWrapper):
        _handle_long_word = textwrap.TextWrapper._handle_long_word

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(break_on_hyphens=False, break_long_words=False)
            super().__init__(*args, **kwargs)

        def _split(self, text: str) -> list[str]:
            # A `quoted command` is one chunk, spaces and all.
            merged: list[str] = []
            open_span = False
            for chunk in super()._split(text):
                if open_span:
                    merged[-1] += chunk
                else:
                    merged.append(chunk)
                open_span ^= chunk.count("`") % 2 == 1
            return merged

    _textwrap.TextWrapper = WholeWords  # type: ignore[misc]


_help_keeps_words_whole()

app = typer.Typer(
    name="dlready",
    help=(
        "Is this machine ready for deep learning? `check` judges the hardware, `install-cmd` "
        "prints the right PyTorch install command, `smoke` proves the installed PyTorch works, "
        "`fit` says whether a model fits, `fleet` checks a cluster and `diff` compares two "
        "reports.\n\n" + EXIT_CODES_HELP
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
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


# Short lines for `dlready --help`: click would cut the docstrings mid-sentence ("judge...").
app.command(
    "check",
    help=check_command.__doc__,
    short_help="Judge CPU, RAM, GPUs, power and cooling against a spec table.",
    epilog=exit_codes_help("check"),
)(check_command)
app.command(
    "install-cmd",
    help=install_cmd_command.__doc__,
    short_help="Print (or run) the right PyTorch install command for this machine.",
    epilog=exit_codes_help("install-cmd"),
)(install_cmd_command)
app.command(
    "smoke",
    help=smoke_command.__doc__,
    short_help="Prove the installed PyTorch works on the device, and how fast.",
    epilog=exit_codes_help("smoke"),
)(smoke_command)
app.command(
    "fleet",
    help=fleet_command.__doc__,
    short_help="Check every node and GPU of a cluster at once; name the weak one.",
    epilog=exit_codes_help("fleet"),
)(fleet_command)
app.command(
    "diff",
    help=diff_command.__doc__,
    short_help="Compare two saved check or fleet reports, field by field.",
    epilog=exit_codes_help("diff"),
)(diff_command)
app.command(
    "fit",
    help=fit_command.__doc__,
    short_help="Will this model train or run here, and what would make it fit.",
    epilog=exit_codes_help("fit"),
)(fit_command)


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
        code = typer.main.get_command(app).main(
            args=args, prog_name="dlready", standalone_mode=False
        )
    except typer.Abort:
        output.error_line("interrupted")
        code = ExitCode.COULD_NOT_RUN
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


def _parser_error(exc: ClickException, args: list[str]) -> int:
    """A flag the parser rejected: the JSON envelope with ``--json``, else the usual lines."""
    from dlready.exitcodes import ExitCode
    from dlready.result import CommandResult, OutputFormat, Problem, emit

    options = args[: args.index("--")] if "--" in args else args
    if "--json" in options:
        command = next((arg for arg in options if not arg.startswith("-")), "dlready")
        problem = Problem("usage", exc.format_message(), f"see `dlready {command} --help`")
        result = CommandResult(command, ExitCode.USAGE, errors=(problem,))
        return int(emit(result, OutputFormat.JSON))
    with contextlib.suppress(OSError, ValueError):  # stderr refuses: the exit code still tells
        exc.show()
    return exc.exit_code
