"""One bounded file reader for every file dlready reads: host pseudo-files, snapshots, specs.

A path given by a user, or found where a system file should be, may be anything: a FIFO
that nobody writes (``open`` would block forever), ``/dev/zero`` (a read that never ends), a
terminal, or a file of many gigabytes. This reader opens without blocking, accepts regular
files only, and refuses a file larger than the caller's bound instead of truncating it (a
truncated ``/proc/cpuinfo`` would give a wrong CPU count). ``/proc`` and ``/sys`` files are
regular files (of size 0 in ``stat``), so they pass.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Any

# Read in page-sized chunks: /proc/sys refuses one large read ("Cannot allocate memory").
_CHUNK_BYTES = 64 * 1024
_NOT_REGULAR = (
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISDIR, "a directory"),
)


class UnreadableFileError(OSError):
    """A file that exists but is not something dlready will read (not regular, too large)."""


def read_regular_file(path: str | os.PathLike[str], max_bytes: int) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``, read without ever blocking on open.

    Raises:
        UnreadableFileError: the path is a FIFO, device, socket or directory, or is larger
            than ``max_bytes``.
        OSError: the file is missing or cannot be opened or read.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    descriptor = os.open(path, flags | getattr(os, "O_CLOEXEC", 0))
    try:
        status = os.fstat(descriptor)
        for is_kind, kind in _NOT_REGULAR:
            if is_kind(status.st_mode):
                raise UnreadableFileError(f"it is {kind}, not a regular file")
        # Refused before reading, not after reading max_bytes of it (/proc files say 0 here).
        if status.st_size > max_bytes:
            raise UnreadableFileError(f"it is larger than {_size_text(max_bytes)}")
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(descriptor, _CHUNK_BYTES)
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise UnreadableFileError(f"it is larger than {_size_text(max_bytes)}")
        return b"".join(chunks)
    finally:
        os.close(descriptor)


def read_regular_text(path: str | os.PathLike[str], max_bytes: int) -> str:
    """:func:`read_regular_file` decoded as UTF-8, a leading byte-order mark removed.

    Raises:
        UnreadableFileError, OSError: as :func:`read_regular_file`.
        UnicodeDecodeError: the file is not UTF-8.
    """
    return read_regular_file(path, max_bytes).decode("utf-8").removeprefix("\ufeff")


def read_json_file(path: str | os.PathLike[str], max_bytes: int, error: type[ValueError]) -> Any:
    """A JSON document from a bounded regular file, every failure one line through ``error``.

    NaN and Infinity are refused (they are not JSON). A document nested deeper than Python can
    parse raises ``RecursionError``, which the caller words for what it expected.
    """

    def refuse_constant(name: str) -> Any:
        raise error(f"{path}: not JSON: {name} is not a JSON number")

    try:
        text = read_regular_text(path, max_bytes)
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not JSON: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return json.loads(text, parse_constant=refuse_constant)
    except error:
        raise
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not JSON: {exc}") from None
    except ValueError:  # Python converts at most 4,300 digits to an int (CVE-2020-10735)
        raise error(
            f"{path}: not JSON: a number in it has more than 4,300 digits, which no real value has"
        ) from None


def _size_text(size_bytes: int) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if size_bytes >= scale:
            return f"{size_bytes / scale:g} {unit}"
    return f"{size_bytes} bytes"
