"""The one error the install planner raises for invalid or impossible requests."""

from __future__ import annotations

import re
from typing import NamedTuple

_FLAG_CHOICE = re.compile(
    r"(?P<flags>--[a-z][a-z-]*(?: [A-Za-z0-9._,+=/:-]+)?(?: --[a-z][a-z-]*(?: [A-Za-z0-9._,+=/:-]+)?)*)"
    r"(?: without (?P<drop>--[a-z][a-z-]*(?: --[a-z][a-z-]*)*))?"
    r"(?: \((?P<remark>[^()]*)\))?"
)


CPU_CHOICE = "--accelerator cpu without --driver --compute-capability --variant"
"""The CPU build as a hint: without the flags that describe an NVIDIA GPU or another build."""


class FlagChoice(NamedTuple):
    """``install-cmd`` flags that make a request possible, and why (``the default macOS wheels``)."""

    flags: str
    remark: str | None = None
    drop: tuple[str, ...] = ()
    """Flags to leave out of the command (``--accelerator cpu without --driver``): they
    would contradict the choice."""

    def command(self, command_line: str) -> str:
        """``command_line`` with the remark as a shell comment after it."""
        return f"{command_line}  # {self.remark}" if self.remark else command_line


class PlanError(ValueError):
    """An invalid or impossible request, with the nearest valid choice.

    ``install-cmd`` prints ``message`` as one error line and ``nearest_valid`` as the hint,
    then exits with code 2 and nothing on stdout.
    """

    def __init__(
        self, message: str, nearest_valid: str | None = None, hints: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message)
        self.message = message
        self.nearest_valid = nearest_valid
        self.hints = hints
        """Further hint lines, e.g. the pip command when conda has no package."""

    def choices(self) -> tuple[list[str], list[FlagChoice]]:
        """The hint's alternatives, split: words (``update the NVIDIA driver ...``) and sets
        of ``install-cmd`` flags (``--torch 2.7.1 --variant cu118``), which every caller
        prints as whole commands of their own. A choice is a flag set only when it is nothing
        but flags and plain values (then ``without --flag ...``, flags to leave out, and a
        trailing ``(remark)``); ``--channel stable | test`` stays words."""
        words: list[str] = []
        flag_choices: list[FlagChoice] = []
        for choice in re.split(r";\s*or\s+|,\s*or\s+|\s+or\s+(?=--)", self.nearest_valid or ""):
            choice = choice.strip()
            found = _FLAG_CHOICE.fullmatch(choice)
            if found:
                drop = tuple((found["drop"] or "").split())
                flag_choices.append(FlagChoice(found["flags"], found["remark"], drop))
            elif choice:
                words.append(choice)
        return words, flag_choices

    def to_jsonable(self) -> dict[str, object]:
        """The error as JSON (``errors[]`` of the ``--json`` envelope)."""
        return {
            "code": "impossible_request",
            "message": self.message,
            "nearest_valid": self.nearest_valid,
            "hints": list(self.hints),
        }
