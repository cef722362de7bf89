"""The one bounded reader: regular files only, never blocking, never unbounded."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from dlready.bounded_read import UnreadableFileError, read_regular_file, read_regular_text


def test_a_regular_file_is_read_whole(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"x" * 200_000)  # several chunks
    assert read_regular_file(path, 200_000) == b"x" * 200_000


def test_a_file_over_the_bound_is_refused_not_truncated(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"x" * 1025)
    with pytest.raises(UnreadableFileError, match="larger than 1 KiB"):
        read_regular_file(path, 1024)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs exist on POSIX only")
def test_a_fifo_nobody_writes_is_refused_at_once(tmp_path: Path) -> None:
    path = tmp_path / "pipe"
    os.mkfifo(path)
    started = time.monotonic()
    with pytest.raises(UnreadableFileError, match="FIFO"):
        read_regular_file(path, 1024)
    assert time.monotonic() - started < 5


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="no /dev/zero here")
def test_a_device_is_refused() -> None:
    with pytest.raises(UnreadableFileError, match="character device"):
        read_regular_file("/dev/zero", 1024)


def test_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="directory"):
        read_regular_file(tmp_path, 1024)


def test_a_missing_file_raises_the_usual_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        read_regular_file(tmp_path / "missing", 1024)


def test_text_drops_a_byte_order_mark_and_insists_on_utf8(tmp_path: Path) -> None:
    path = tmp_path / "file"
    path.write_bytes(b"\xef\xbb\xbfhello")
    assert read_regular_text(path, 1024) == "hello"
    path.write_bytes(b"\xff\xfeh\x00")
    with pytest.raises(UnicodeDecodeError):
        read_regular_text(path, 1024)


@pytest.mark.skipif(not Path("/proc/meminfo").exists(), reason="Linux only")
def test_proc_files_are_regular_files_of_size_zero_and_still_read() -> None:
    assert os.stat("/proc/meminfo").st_size == 0
    assert b"MemTotal" in read_regular_file("/proc/meminfo", 1024 * 1024)
