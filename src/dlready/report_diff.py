"""Field-by-field comparison of two saved ``check --json`` or ``fleet --json`` reports (pure).

- A reading (``{"value", "source", "state", "reason"}``) is compared by value when both sides
  were read; when one side could not be read it is "not comparable", never "the same".
- Lists of records are matched by what identifies them (a rank, a GPU's index, a check's name,
  a collective's scope, group and size), so one GPU more or less shows as appeared or
  disappeared instead of shifting every later entry.
- Measured speeds (``_tflops``, ``_gbps``, times, percentages) vary from run to run; they count
  as changed only beyond :data:`MEASURED_TOLERANCE`.
- Values that change on every run (time stamps, durations, process ids, free memory,
  temperatures, power draw), and what is computed from them (a GPU's margin to its slowdown
  temperature), are left out unless ``include_volatile`` is set.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any

from msgspec import Struct

from dlready.bounded_read import read_json_file

COMPARABLE_COMMANDS = ("check", "fleet")
MEASURED_TOLERANCE = 0.10
"""Relative difference under which two measured speeds count as the same (run-to-run noise)."""
VOLATILE_KEYS = frozenset(
    {
        "captured_at",
        "probe_seconds",
        "seconds",
        "pid",
        "memory_free_bytes",
        "available_bytes",
        "power_draw_w",
        "temperature_c",
        "package_temperature_c",
        "fan_speed_percent",
        "clock_event_reasons",
        "matmul_samples",
        "iterations",
    }
)
DERIVED_FROM_VOLATILE = re.compile(r"gpu\d+_slowdown_margin_c|cpu_package_c")
"""``check``'s criteria computed from a volatile reading (spec/verdict.py): a GPU's slowdown
margin is its slowdown threshold minus ``temperature_c``, ``cpu_package_c`` is
``package_temperature_c``. They change with their source and are left out with it."""
_MEASURED_SUFFIXES = ("_tflops", "_gbps", "time_s", "percent", "percent_of_median")
_LIST_KEYS: tuple[tuple[str, ...], ...] = (
    ("rank",),
    ("scope", "group", "size_bytes"),
    ("src_rank", "dst_rank"),
    ("node",),
    ("index",),
    ("op",),
    ("probe",),
    ("bus_id",),
    ("vendor",),
    ("name",),
    ("scope",),
    ("component",),
    ("part",),
    ("message",),
)
_READING_KEYS = frozenset({"value", "source", "state", "reason"})
MAX_REPORT_FILE_BYTES = 512 * 1024 * 1024
"""A fleet report of 8,000 ranks takes about 40 MiB: this reads far larger fleets and refuses
``/dev/zero``-like files before they exhaust memory (as ``--snapshot`` does)."""


class ReportError(ValueError):
    """A file that is not a comparable dlready report."""


class Difference(Struct, frozen=True):
    """One field that differs between the two reports."""

    path: str
    kind: str
    """``changed``, ``appeared``, ``disappeared`` or ``not_comparable``."""
    before: Any = None
    after: Any = None
    reason: str = ""


def load_report(path: Path) -> dict[str, Any]:
    """A ``check --json`` or ``fleet --json`` document.

    Raises:
        ReportError: with a one-line reason.
    """
    try:
        # Never a plain read: a FIFO would block it forever, /dev/zero would never end.
        document = read_json_file(path, MAX_REPORT_FILE_BYTES, ReportError)
    except RecursionError:
        raise ReportError(f"{path}: not JSON: nested too deeply") from None
    from dlready.output import unreadable_schema_version

    if not isinstance(document, dict) or "command" not in document or "data" not in document:
        raise ReportError(f"{path}: not a dlready report (save one with `dlready check --json`)")
    if document.get("command") not in COMPARABLE_COMMANDS:
        raise ReportError(
            f"{path}: a `{document.get('command')}` report; diff compares check and fleet reports"
        )
    unreadable = unreadable_schema_version(document)
    if unreadable is not None:
        raise ReportError(f"{path}: {unreadable}")
    return document


def _is_reading(value: Any) -> bool:
    return isinstance(value, dict) and "state" in value and set(value) <= _READING_KEYS


def _derived_from_volatile(value: Any) -> bool:
    """A criterion (its measure, status and advice) computed from a volatile reading."""
    if not isinstance(value, dict) or "measured" not in value:
        return False
    name = value.get("name")
    return isinstance(name, str) and DERIVED_FROM_VOLATILE.fullmatch(name) is not None


def _measured(key: str) -> bool:
    return key.endswith(_MEASURED_SUFFIXES)


def _close(before: Any, after: Any) -> bool:
    if isinstance(before, bool) or isinstance(after, bool):
        return False
    if not isinstance(before, (int, float)) or not isinstance(after, (int, float)):
        return False
    scale = max(abs(before), abs(after))
    return scale == 0 or (
        math.isfinite(scale) and abs(before - after) <= MEASURED_TOLERANCE * scale
    )


def _list_key(before: list[Any], after: list[Any]) -> tuple[tuple[str, ...], bool] | None:
    """The fields that pair up the items of two lists, and whether they need a count: the
    first of :data:`_LIST_KEYS` that names each item once, else the first that every item
    has, with the items counted within each value (check's several ``gpu`` components: the
    first GPU part before with the first after, and so on), never their positions."""
    items = [*before, *after]
    if not items or not all(isinstance(item, dict) for item in items):
        return None
    shared: tuple[str, ...] | None = None
    for fields in _LIST_KEYS:
        if not all(all(f in item for f in fields) for item in items):
            continue
        values = [tuple(item[f] for f in fields) for item in items]
        if not all(isinstance(v, (str, int, float)) or v is None for t in values for v in t):
            continue
        if len(set(values[: len(before)])) == len(before) and len(
            set(values[len(before) :])
        ) == len(after):
            return fields, False
        shared = shared or fields
    return (shared, True) if shared else None


def _labels(items: list[dict[str, Any]], fields: tuple[str, ...], counted: bool) -> list[str]:
    """``component=gpu`` (or ``component=gpu#2`` for the second such item, when counted)."""
    seen: dict[str, int] = {}
    labels = []
    for item in items:
        label = ",".join(f"{f}={item[f]}" for f in fields)
        seen[label] = seen.get(label, 0) + 1
        labels.append(f"{label}#{seen[label]}" if counted and seen[label] > 1 else label)
    return labels


class _Walker:
    def __init__(self, include_volatile: bool) -> None:
        self.include_volatile = include_volatile
        self.found: list[Difference] = []

    def walk(self, path: str, key: str, before: Any, after: Any) -> None:
        if not self.include_volatile and (
            key in VOLATILE_KEYS or _derived_from_volatile(before) or _derived_from_volatile(after)
        ):
            return
        if before == after and type(before) is type(after):
            return  # equal subtrees compare in C, far faster than walking them
        if _is_reading(before) and _is_reading(after):
            self._reading(path, key, before, after)
        elif isinstance(before, dict) and isinstance(after, dict):
            for name in sorted(before.keys() | after.keys()):
                child = f"{path}.{name}" if path else name
                if name not in after:
                    if self.include_volatile or name not in VOLATILE_KEYS:
                        self.found.append(Difference(child, "disappeared", before=before[name]))
                elif name not in before:
                    if self.include_volatile or name not in VOLATILE_KEYS:
                        self.found.append(Difference(child, "appeared", after=after[name]))
                else:
                    self.walk(child, name, before[name], after[name])
        elif isinstance(before, list) and isinstance(after, list):
            self._list(path, key, before, after)
        elif before != after and not (_measured(key) and _close(before, after)):
            self.found.append(Difference(path, "changed", before=before, after=after))

    def _reading(self, path: str, key: str, before: dict[str, Any], after: dict[str, Any]) -> None:
        read_before = before.get("state") == "read"
        read_after = after.get("state") == "read"
        if read_before and read_after:
            self.walk(path, key, before.get("value"), after.get("value"))
        elif read_before or read_after:
            unread = after if read_before else before
            self.found.append(
                Difference(
                    path,
                    "not_comparable",
                    before=before.get("value"),
                    after=after.get("value"),
                    reason=f"{'after' if read_before else 'before'}: {unread.get('state')}"
                    + (f" ({unread['reason']})" if unread.get("reason") else ""),
                )
            )

    def _list(self, path: str, key: str, before: list[Any], after: list[Any]) -> None:
        keyed = _list_key(before, after)
        if keyed is None:
            if all(not isinstance(v, (dict, list)) for v in [*before, *after]):
                if before != after:
                    self.found.append(Difference(path, "changed", before=before, after=after))
                return
            for index in range(max(len(before), len(after))):
                child = f"{path}[{index}]"
                if index >= len(after):
                    self.found.append(Difference(child, "disappeared", before=before[index]))
                elif index >= len(before):
                    self.found.append(Difference(child, "appeared", after=after[index]))
                else:
                    self.walk(child, key, before[index], after[index])
            return

        fields, counted = keyed
        before_by = dict(zip(_labels(before, fields, counted), before, strict=True))
        after_by = dict(zip(_labels(after, fields, counted), after, strict=True))
        for name, item in before_by.items():
            child = f"{path}[{name}]"
            if name in after_by:
                self.walk(child, key, item, after_by[name])
            else:
                self.found.append(Difference(child, "disappeared", before=item))
        for name, item in after_by.items():
            if name not in before_by:
                self.found.append(Difference(f"{path}[{name}]", "appeared", after=item))


def diff_reports(
    before: dict[str, Any], after: dict[str, Any], *, include_volatile: bool = False
) -> list[Difference]:
    """Every difference between two loaded reports.

    Raises:
        ReportError: when one is a check report and the other a fleet report.
    """
    if before.get("command") != after.get("command"):
        raise ReportError(
            f"cannot compare a `{before.get('command')}` report with a "
            f"`{after.get('command')}` report"
        )
    walker = _Walker(include_volatile)
    if before.get("schema_version") != after.get("schema_version"):
        # Envelopes of two schema versions carry errors and warnings in other shapes; what
        # the command found is still comparable.
        keep = ("command", "dlready_version", "status", "exit_code", "data")
        before = {key: before.get(key) for key in keep}
        after = {key: after.get(key) for key in keep}
    walker.walk("", "", before, after)
    return walker.found


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, default=str)


def short(value: Any, limit: int = 80) -> str:
    """A value as one line of JSON. Text is never cut: it may be advice or a command to copy.

    A list longer than ``limit`` keeps its first whole entries that fit, an object the whole
    fields that fit, and each says how many it left out (``--json`` has them all).
    """
    text = _json(value)
    if len(text) <= limit or not isinstance(value, dict | list) or not value:
        return text
    if isinstance(value, dict):
        parts = [f"{_json(str(key))}: {_json(item)}" for key, item in sorted(value.items())]
        opening, closing, noun = "{", "}", ("field", "fields")
    else:
        parts = [_json(item) for item in value]
        opening, closing, noun = "[", "]", ("entry", "entries")
    kept: list[str] = []
    for part in parts:
        if len(", ".join([*kept, part])) <= limit:
            kept.append(part)
        elif isinstance(value, list):
            break  # a list's entries stay in order: the first that does not fit ends it
    left = len(parts) - len(kept)
    more = f"... {left} {'more ' if kept else ''}{noun[left != 1]}"
    return f"{opening}{', '.join([*kept, more])}{closing}"
