"""One result type and one emit path for every command.

A command builds a :class:`CommandResult` (or raises :class:`CommandError` anywhere below it)
and hands it to :func:`finish`. The rest is the same for every command, present and future:

- ``--json``: the versioned envelope on stdout, whatever happened (usage errors, refusals and
  crashes included), with ``errors`` and ``warnings`` in one shape (:class:`Problem`);
- text and Markdown: the command's renderer writes to stdout;
- every error is also one line on stderr (``error: ...``, an optional ``hint: ...`` and, for
  some, further lines such as a command that would work instead); warnings are shown by the
  text renderer where they belong, and listed in the JSON;
- the process exits with the result's documented exit code.

Renderers are plain callables that receive :class:`Streams`; they live in ``dlready.render``.
This module imports neither rich nor typer at import time: ``--json`` never needs rich.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn

from msgspec import Struct, field

from dlready import output
from dlready.exitcodes import ExitCode
from dlready.stop_signals import OutputUnbroken, StopSignals
from dlready.words import plain_error_text

if TYPE_CHECKING:
    from rich.console import Console


class OutputFormat(str, enum.Enum):
    """How a command's result is written to stdout."""

    TEXT = "text"
    JSON = "json"
    MARKDOWN = "markdown"


def output_format(*, as_json: bool, as_markdown: bool = False) -> OutputFormat:
    """The format from the usual flags; ``--json`` with ``--markdown`` is a usage error."""
    if as_json and as_markdown:
        raise CommandError(
            ExitCode.USAGE, Problem("usage", "--json and --markdown cannot be combined")
        )
    if as_json:
        return OutputFormat.JSON
    return OutputFormat.MARKDOWN if as_markdown else OutputFormat.TEXT


class Problem(Struct, frozen=True):
    """One error or warning, the same shape for every command.

    ``code`` is a stable machine word (``usage``, ``bad_input``, ``probe_failed``, ...);
    ``message`` and ``hint`` are for people; ``detail`` holds command-specific facts (the
    failed probe, the nearest valid choice) and is JSON as it stands.
    """

    code: str
    message: str
    hint: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)
    more: tuple[str, ...] = ()
    """Further lines for people, each printed whole (e.g. a command that works instead)."""

    def to_jsonable(self) -> dict[str, Any]:
        """One ``errors[]`` / ``warnings[]`` entry (docs/json-schema.md)."""
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "detail": dict(self.detail) if self.detail else None,
            "more": list(self.more),
        }


class Streams:
    """What a renderer writes to: stdout as a rich console or raw text, stderr lines."""

    def __init__(self) -> None:
        self._console: Console | None = None

    @property
    def console(self) -> Console:
        """A rich console on stdout (created on first use: rich costs ~15 ms to import)."""
        if self._console is None:
            self._console = output.stdout_console()
        return self._console

    @staticmethod
    def write(text: str) -> None:
        """Raw text on stdout, byte for byte (commands meant for `| sh`, Markdown)."""
        sys.stdout.write(text)

    @staticmethod
    def diagnostic(line: str) -> None:
        """One line on stderr; dropped when stderr is closed or refuses the write."""
        output.stderr_line(line)


Renderer = Callable[[Streams], None]


class CommandResult(Struct, frozen=True):
    """What a command produced, before it is written anywhere."""

    command: str
    exit_code: ExitCode
    data: Any = None
    """The ``data`` of the JSON envelope: plain JSON types (use ``model.to_jsonable``)."""
    status: str | None = None
    """The envelope's ``status``; by default derived from the exit code."""
    errors: tuple[Problem, ...] = ()
    warnings: tuple[Problem, ...] = ()
    text: Renderer | None = None
    """Human output on stdout; None when the command has nothing to show but its errors."""
    markdown: Renderer | None = None


class CommandError(Exception):
    """Ends a command with one problem and a documented exit code, from any depth.

    ``data`` lets a refusal still carry what is known (e.g. the install command smoke
    would suggest) into the JSON envelope.
    """

    def __init__(self, exit_code: ExitCode, problem: Problem, data: Any = None) -> None:
        super().__init__(problem.message)
        self.exit_code = exit_code
        self.problem = problem
        self.data = data


def interrupted_problem(signal_name: str) -> Problem:
    """What every command says when a stop signal (``SIGTERM``, ``SIGINT``) ended it."""
    return Problem(
        "interrupted",
        f"interrupted ({signal_name}) before the result was complete",
        detail={"signal": signal_name},
    )


def usage_error(message: str, hint: str | None = None) -> CommandError:
    """A bad flag or flag combination: exit 2, nothing judged."""
    return CommandError(ExitCode.USAGE, Problem("usage", message, hint))


def envelope_of(result: CommandResult) -> dict[str, Any]:
    """The JSON envelope of a result (docs/json-schema.md)."""
    document = output.envelope(
        result.command,
        result.exit_code,
        result.data,
        status=result.status,
    )
    document["errors"] = [problem.to_jsonable() for problem in result.errors]
    document["warnings"] = [problem.to_jsonable() for problem in result.warnings]
    return document


def emit(result: CommandResult, fmt: OutputFormat) -> ExitCode:
    """Write a result in the asked format; returns the exit code to end with.

    A stdout that cannot be written ends the process with exit 3 (``output.stdout_guard``).
    """
    # A refusal (exit 2 or 3) is told on stderr, first, so that it is not lost when stdout
    # then fails; the failures behind a judged "not ready" (exit 1) are in the rendered
    # report already, each with its fix.
    with OutputUnbroken():  # the result is complete: it is written whole (stop_signals.py)
        if result.exit_code >= ExitCode.USAGE or renderer_missing(result, fmt):
            for problem in result.errors:
                # People read the driver's words, not NVML's exception names (the JSON keeps
                # them, as the snapshot does).
                hint = plain_error_text(problem.hint) if problem.hint else problem.hint
                output.error_line(plain_error_text(problem.message), hint)
                for line in problem.more:
                    if not (problem.hint and line in problem.hint):  # on the hint line already
                        output.stderr_line(line)
        if fmt is OutputFormat.JSON:
            output.print_json(envelope_of(result))
        else:
            renderer = result.markdown if fmt is OutputFormat.MARKDOWN else result.text
            if renderer is not None:
                with output.stdout_guard():
                    renderer(Streams())
                    sys.stdout.flush()
    return result.exit_code


def renderer_missing(result: CommandResult, fmt: OutputFormat) -> bool:
    """Whether the human output has no report to carry the errors (JSON always has them)."""
    if fmt is OutputFormat.JSON:
        return False
    return (result.markdown if fmt is OutputFormat.MARKDOWN else result.text) is None


def finish(result: CommandResult, fmt: OutputFormat) -> NoReturn:
    """Emit a result and end the command with its exit code."""
    raise SystemExit(int(emit(result, fmt)))


def run(
    command: str,
    body: Callable[[], CommandResult],
    *,
    as_json: bool = False,
    as_markdown: bool = False,
) -> NoReturn:
    """Run a command's body and emit whatever it produced, errors and crashes included.

    With ``--json`` the envelope is printed even when the flags themselves are wrong.
    """
    import typer

    chosen = OutputFormat.JSON if as_json else OutputFormat.TEXT
    try:
        chosen = output_format(as_json=as_json, as_markdown=as_markdown)
        with StopSignals():
            result = body()
    except CommandError as error:
        result = CommandResult(command, error.exit_code, data=error.data, errors=(error.problem,))
    except KeyboardInterrupt:
        result = CommandResult(
            command,
            ExitCode.COULD_NOT_RUN,
            status="interrupted",
            errors=(interrupted_problem(StopSignals.received or "SIGINT"),),
        )
    except (SystemExit, typer.Exit):
        raise
    except Exception as exc:  # a bug in dlready is one line, never a traceback
        if os.environ.get("DLREADY_DEBUG"):
            raise
        result = CommandResult(command, ExitCode.COULD_NOT_RUN, errors=(internal_error(exc),))
    finish(result, chosen)


def interrupted_exit(args: list[str]) -> int:
    """Say that a command was stopped before its own handling began (while it was still
    loading, or while the parser ran), the way every command says it; its exit code.

    ``--json`` among the arguments gets the envelope, as from :func:`run`.
    """
    from dlready.cli import asked_command

    command, as_json = asked_command(args)
    interrupted = CommandResult(
        command,
        ExitCode.COULD_NOT_RUN,
        status="interrupted",
        errors=(interrupted_problem(StopSignals.received or "SIGINT"),),
    )
    return int(emit(interrupted, OutputFormat.JSON if as_json else OutputFormat.TEXT))


def internal_error(exc: BaseException) -> Problem:
    """A bug in dlready itself, said in one line with what to do."""
    return Problem(
        "internal_error",
        f"dlready hit an internal error: {type(exc).__name__}: {exc}",
        "please report it; DLREADY_DEBUG=1 shows the traceback",
    )
