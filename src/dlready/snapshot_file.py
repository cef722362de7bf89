"""Read a saved ``check --json`` report (or a bare snapshot) back into a :class:`MachineSnapshot`.

The file may come from another machine, be hand-edited, or be something else entirely; every
problem becomes a :class:`SnapshotFileError` with one line that says what the file is and what
was expected. Readings outside what hardware can produce are screened exactly as a live probe's
are (:mod:`dlready.plausibility`), so a hand-edited report is never judged on them.
"""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

from dlready.bounded_read import read_json_file
from dlready.model import MachineSnapshot, SnapshotFormatError, clean_text, snapshot_from_jsonable
from dlready.plausibility import screen_snapshot

MAX_SNAPSHOT_FILE_BYTES = 512 * 1024 * 1024
"""A report takes about 6 KiB per GPU: this reads snapshots of tens of thousands of GPUs and
refuses ``/dev/zero``-like files before they exhaust memory."""

_SNAPSHOT_COMMAND = "check"
_COMMAND_NAME = re.compile(r"[a-z][a-z-]{0,19}")
_EXPECTED = (
    "--snapshot reads the output of `dlready check --json` (or its data, or its data.snapshot)"
)


class SnapshotFileError(ValueError):
    """A snapshot file that cannot be re-judged; the message names the file and the reason."""


def load_snapshot_file(path: Path) -> MachineSnapshot:
    """Read, validate and screen a snapshot file.

    Raises:
        SnapshotFileError: with a one-line reason when the file is unreadable or malformed.
    """
    # A large report is millions of small acyclic objects: the cyclic garbage collector's
    # passes over them find nothing and cost a quarter of the load (5,000 GPUs: 1.4 s vs 1.8 s).
    collecting = gc.isenabled()
    gc.disable()
    try:
        document = _read_json(path)
        snapshot_document = _snapshot_document(path, document)
        try:
            snapshot = snapshot_from_jsonable(snapshot_document)
        except SnapshotFormatError as exc:
            raise SnapshotFileError(f"{path}: not a dlready snapshot: {exc}") from None
        except RecursionError:  # nesting the model never has, inside a field typed Any
            raise SnapshotFileError(f"{path}: not a dlready snapshot: nested too deeply") from None
    finally:
        if collecting:
            gc.enable()
    _refuse_repeated_gpus(path, snapshot)
    return screen_snapshot(snapshot)


def _refuse_repeated_gpus(path: Path, snapshot: MachineSnapshot) -> None:
    """No machine lists one GPU twice: an edited or merged file would be judged as several
    cards (and powered and cooled as them)."""
    seen: set[tuple[str, int]] = set()
    for position, gpu in enumerate(snapshot.gpus):
        key = (str(gpu.vendor), gpu.index)
        if key in seen:
            raise SnapshotFileError(
                f"{path}: not a dlready snapshot: gpus[{position}] repeats {gpu.vendor} GPU "
                f"{gpu.index}; each GPU is listed once"
            )
        seen.add(key)


def _read_json(path: Path) -> Any:
    try:
        return read_json_file(path, MAX_SNAPSHOT_FILE_BYTES, SnapshotFileError)
    except RecursionError:
        raise SnapshotFileError(f"{path}: not a dlready snapshot: nested too deeply") from None


def _snapshot_document(path: Path, document: Any) -> Any:
    """The snapshot inside a report envelope, or the document itself when it is bare."""
    if not isinstance(document, dict):
        raise SnapshotFileError(
            f"{path}: not a dlready report: the file holds {_json_kind(document)}, not an object; "
            f"{_EXPECTED}"
        )
    if "command" not in document:
        if "captured_at" not in document and isinstance(document.get("snapshot"), dict):
            return document["snapshot"]  # the envelope's data saved on its own
        other = _other_report(document)
        if other is not None:
            raise SnapshotFileError(
                f"{path}: this is the data of a `dlready {other} --json` report, not a machine "
                f"snapshot; {_EXPECTED}"
            )
        return document  # a bare snapshot (the envelope's data.snapshot saved on its own)
    command = document["command"]
    if command != _SNAPSHOT_COMMAND:
        what = (
            f"a `dlready {command} --json` report"
            if isinstance(command, str) and _COMMAND_NAME.fullmatch(command)
            else "a JSON document of another program"
        )
        raise SnapshotFileError(f"{path}: this is {what}, not a machine snapshot; {_EXPECTED}")
    from dlready.output import unreadable_schema_version

    unreadable = unreadable_schema_version(document)
    if unreadable is not None:
        raise SnapshotFileError(f"{path}: {unreadable}")
    data = document.get("data")
    if not isinstance(data, dict) or "snapshot" not in data:
        failure = _first_error_message(document)
        if failure is not None:
            raise SnapshotFileError(
                f"{path}: this `check --json` report holds no snapshot: the check it records "
                f"did not run ({_short(failure, 160)}); save a report of a check that ran"
            )
        raise SnapshotFileError(
            f"{path}: not a dlready snapshot: $.data.snapshot: missing (a `check --json` report "
            "keeps the machine's readings there)"
        )
    return data["snapshot"]


# The top-level keys of other commands' ``data`` (saved without their envelope, e.g. with
# ``jq .data``): enough to name the command instead of a missing snapshot field.
_OTHER_REPORT_KEYS = {
    "fleet": frozenset({"launcher", "world_size", "ranks", "nodes"}),
    "fit": frozenset({"model", "request", "machine", "fits"}),
    "diff": frozenset({"before", "after", "differences"}),
}


def _other_report(document: dict[str, Any]) -> str | None:
    """The command whose report ``data`` this is (``fleet``, ``fit``, ``diff``), if any."""
    if "captured_at" in document:
        return None
    keys = set(document)
    return next((name for name, wanted in _OTHER_REPORT_KEYS.items() if wanted <= keys), None)


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "a list"
    if isinstance(value, str):
        return "a string"
    if value is None:
        return "null"
    return "a boolean" if isinstance(value, bool) else "a number"


def _first_error_message(document: dict[str, Any]) -> str | None:
    """The first error of a report envelope (``errors[].message``), if it has one."""
    errors = document.get("errors")
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        message = errors[0].get("message")
        if isinstance(message, str):
            return clean_text(message)
    return None


def _short(value: Any, limit: int = 40) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
