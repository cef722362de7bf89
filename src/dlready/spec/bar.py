"""The bar below which ``check`` exits 1 (kept tiny: the CLI imports it at start-up)."""

from __future__ import annotations

from dlready.model import StrEnum


class FailOn(StrEnum):
    """The bar below which ``check`` exits 1."""

    MINIMUM = "minimum"
    RECOMMENDED = "recommended"
    BUILD = "build"
    """The minimum bar, with the build tools part counted (``[build] required`` in a profile)."""
