"""The only module that reads ``/proc``, ``/sys`` and ``/etc`` files.

Probes take a :class:`HostFiles` so tests can replay the files recorded on real machines
(``procfiles.txt`` in the fixtures, one ``== /path`` header per file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Protocol

from dlready.bounded_read import read_regular_file

# /proc and /sys files are small, but /proc/cpuinfo grows with the CPU count (about 1.5 KiB
# per logical CPU: 12 MiB on an 8,192-CPU machine). A larger file is unreadable, not cut short.
_MAX_READ_BYTES = 32 * 1024 * 1024


class HostFiles(Protocol):
    """Read-only access to the host's pseudo-files."""

    def read_text(self, path: str) -> str | None:
        """The file's text, or None when it is missing or unreadable."""
        ...

    def list_dir(self, path: str) -> list[str] | None:
        """Sorted entry names of a directory, or None when it is missing or unreadable."""
        ...

    def read_bytes(self, path: str) -> bytes | None:
        """The file's raw bytes (binary tables such as DMI), or None."""
        ...


class RealHostFiles:
    """The files of this machine (optionally under another root, e.g. a mounted image)."""

    def __init__(self, root: str = "/") -> None:
        self._root = root

    def _resolve(self, path: str) -> str:
        return os.path.join(self._root, path.lstrip("/"))

    def read_text(self, path: str) -> str | None:
        """The file's text, or None when it is missing or unreadable."""
        raw = self.read_bytes(path)
        return None if raw is None else raw.decode("utf-8", errors="replace")

    def read_bytes(self, path: str) -> bytes | None:
        """The file's raw bytes, or None when it is missing, unreadable, not a regular file
        (a FIFO put in its place would block forever) or larger than the bound."""
        try:
            return read_regular_file(self._resolve(path), _MAX_READ_BYTES)
        except OSError:
            return None

    def list_dir(self, path: str) -> list[str] | None:
        """Sorted entry names of a directory, or None when it is missing or unreadable."""
        try:
            return sorted(os.listdir(self._resolve(path)))
        except OSError:
            return None


class ReplayHostFiles:
    """Recorded files, keyed by absolute path. Directories are implied by the paths."""

    def __init__(self, files: Mapping[str, str | bytes]) -> None:
        self._files = dict(files)

    @classmethod
    def from_procfiles(cls, text: str, extra: Mapping[str, str] | None = None) -> ReplayHostFiles:
        """Parse the fixtures' ``procfiles.txt`` format: ``== /path`` then the file's lines."""
        files: dict[str, str | bytes] = {}
        current: str | None = None
        lines: list[str] = []
        for line in text.splitlines(keepends=True):
            if line.startswith("== /"):
                if current is not None:
                    files[current] = "".join(lines)
                current = line[3:].strip()
                lines = []
            elif current is not None:
                lines.append(line)
        if current is not None:
            files[current] = "".join(lines)
        files.update(extra or {})
        return cls(files)

    def with_files(self, extra: Mapping[str, str | bytes | None]) -> ReplayHostFiles:
        """A copy with files added, replaced, or (value None) removed."""
        files: dict[str, str | bytes] = dict(self._files)
        for path, content in extra.items():
            if content is None:
                files.pop(path, None)
            else:
                files[path] = content
        return ReplayHostFiles(files)

    def read_text(self, path: str) -> str | None:
        """The recorded text, or None when the file was not recorded."""
        content = self._files.get(path)
        if isinstance(content, bytes):
            return content.decode("utf-8", errors="replace")
        return content

    def read_bytes(self, path: str) -> bytes | None:
        """The recorded bytes, or None when the file was not recorded."""
        content = self._files.get(path)
        return content.encode() if isinstance(content, str) else content

    def list_dir(self, path: str) -> list[str] | None:
        """Names directly under ``path`` among the recorded files."""
        prefix = path.rstrip("/") + "/"
        names = {p[len(prefix) :].split("/", 1)[0] for p in self._files if p.startswith(prefix)}
        return sorted(names) if names else None
