"""Text helpers shared by every human renderer (check, smoke, fleet): control characters,
numbers, and wrapping that keeps words and `commands` whole.

Strings in a report come from the machine (GPU names from NVML, /proc/cpuinfo model names),
from saved snapshots of other hosts and from spec files. Printed raw, an ESC sequence or a
carriage return in them could repaint the terminal (a fake "Overall: OK" line), so every
renderer passes such strings through :func:`printable` (and rich's ``escape`` for markup).
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\x1b": "\\x1b"}


def _escaped(char: str) -> str:
    code = ord(char)
    if char in _NAMED:
        return _NAMED[char]
    # C0 controls, DEL, C1 controls, and the Unicode line/paragraph separators and bidi
    # overrides, which also move or reorder what a terminal shows.
    if (
        code < 0x20
        or 0x7F <= code <= 0x9F
        or code in (0x2028, 0x2029)
        or 0x202A <= code <= 0x202E
        or 0x2066 <= code <= 0x2069
    ):
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
    return char


def printable(text: object) -> str:
    """``text`` with every control character shown as an escape (``\\x1b``, ``\\r``, ``\\n``)."""
    return "".join(_escaped(char) for char in str(text))


def format_number(value: float) -> str:
    """One way for every number people read: thousands separated (1,200), else 4 significant
    digits (989.5, 63.02, 4.4)."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4g}"


def format_percent(value: float) -> str:
    """One way for every percentage people read: whole percents, a space before the sign
    (87 %, 103 %), as smoke's expected-speed column writes them."""
    return f"{format_number(round(value))} %"


def counted(count: int, noun: str, plural: str | None = None) -> str:
    """``1 rank``, ``2 ranks``: a count and its noun in the right number."""
    return f"{format_number(count)} {noun if count == 1 else plural or noun + 's'}"


def gpu_range_label(indices: Sequence[int]) -> str:
    """``GPU 0-3`` for a contiguous run, ``GPU 0, 2, 5`` otherwise, ``GPU 1`` for one."""
    ordered = sorted(indices)
    if len(ordered) > 2 and ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"GPU {ordered[0]}-{ordered[-1]}"
    return "GPU " + ", ".join(str(index) for index in ordered)


class WholeWordsWrapper(textwrap.TextWrapper):
    """A wrapper that never splits a word (not at a hyphen, not inside a long path or model
    id) nor a `quoted command` (spaces and all); a line may run long instead.

    ``dlready --help`` (click's wrapper, with this mixed in) and the plain-text renderers use it.
    """

    def __init__(self, *args: object, **kwargs: object) -> None:
        kwargs.update(break_on_hyphens=False, break_long_words=False)
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]

    def _split(self, text: str) -> list[str]:
        merged: list[str] = []
        open_span = False
        for chunk in super()._split(text):
            if open_span:
                merged[-1] += chunk
            elif (
                _UNIT.match(chunk)
                and len(merged) >= 2
                and not merged[-1].strip()
                and _NUMBER.search(merged[-2])
            ):
                merged[-2:] = [merged[-2] + merged[-1] + chunk]  # "0.05 s" stays on one line
            else:
                merged.append(chunk)
            open_span ^= chunk.count("`") % 2 == 1
        return merged


_NUMBER = re.compile(r"(?:^|[(\[~≈])[-+]?\d[\d.,]*$")
"""A chunk that ends in a number: ``0.05``, ``(3.00``, ``1,200``."""
_UNIT = re.compile(
    r"(?:s|ms|µs|min|h|%|°C|W|MHz|GHz|[KMGT]i?B(?:/s)?|[KMGT]?FLOP/s|GT/s|x|×)[);:,.\]]*$"
)
"""A chunk that is a unit after a number (its punctuation included): ``s;``, ``GB/s)``."""


def _wrapped(prefix: str, body: str, width: int) -> list[str]:
    """``body`` wrapped at words after ``prefix`` and its own indent; continuations indented
    two more."""
    indent = prefix + body[: len(body) - len(body.lstrip())]
    wrapper = WholeWordsWrapper(
        width=width, initial_indent=indent, subsequent_indent=indent + "  ", drop_whitespace=True
    )
    return wrapper.wrap(body.strip())


def wrap_line(line: str, width: int | None) -> list[str]:
    """``line`` wrapped to ``width`` columns (None: as it is), each continuation indented two
    more than the line itself, words and `commands` whole."""
    if width is None or len(line) <= width:
        return [line]
    return _wrapped("", line, width) or [line]


def wrap_comment(line: str, width: int | None) -> list[str]:
    """A ``# ...`` explanation line wrapped at words to ``width`` (None: as it is); each
    continuation stays a comment, indented two more: ``#   more words``."""
    if width is None or len(line) <= width or not line.startswith("#"):
        return [line]
    return _wrapped("#", line[1:], width) or [line]


def print_prose(
    console: Console, head_markup: str, head_plain: str, body: str, style: str | None = None
) -> None:
    """``head`` and ``body`` (plain text) as prose: on a terminal wrapped at words to its width,
    continuation lines indented, words and `commands` whole; on a pipe one whole line (for
    grep). ``head_plain`` is ``head_markup`` without its markup; ``style`` styles the body."""
    from rich.markup import escape

    def styled(text: str) -> str:
        return f"[{style}]{escape(text)}[/]" if style else escape(text)

    lines = wrap_line(head_plain + body, console.width if console.is_terminal else None)
    # The first line may end where the head does (its trailing space dropped by the wrap).
    if not lines[0].startswith(head_plain.rstrip()):  # a head too long to wrap after: whole
        lines = [head_plain + body]
    rest = lines[0][len(head_plain) :]
    console.print(head_markup + styled(rest) if rest else head_markup.rstrip(), soft_wrap=True)
    for line in lines[1:]:
        console.print(styled(line), soft_wrap=True)
