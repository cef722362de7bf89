"""Files shipped inside the dlready package: the data tables (``dlready/data/``) and the
built-in spec profiles (``dlready/spec/profiles/``).

The one place that knows where they are. They are read by path: dlready is always installed
unpacked (from a wheel or a checkout), and ``importlib.resources`` would add about 3 ms of
imports (its zip and temporary-file readers) to every ``check`` for a case that cannot occur.
"""

from __future__ import annotations

from pathlib import Path

PACKAGE_DIR = Path(__file__).parent


def package_file(*parts: str) -> Path:
    """The path of a file (or folder) inside the package: ``package_file("data", "x.json")``."""
    return PACKAGE_DIR.joinpath(*parts)


def read_data_text(name: str) -> str:
    """A data table's text: ``read_data_text("models.json")`` reads ``dlready/data/models.json``.

    Raises:
        OSError: when the file is missing or unreadable (a broken install).
    """
    return package_file("data", name).read_text(encoding="utf-8")
