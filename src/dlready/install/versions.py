"""Version strings used by the install planner: torch releases, Python X.Y, drivers, CUDA tags.

All functions are pure and raise :class:`ValueError` with a readable message on bad input.
"""

from __future__ import annotations

import re

_NUMERIC = re.compile(r"^\d+(\.\d+)*$")
_PYTHON = re.compile(r"^(\d+)\.(\d+)(?:\.\d+)?(?:(?:a|b|rc)\d+)?\+?$")
"""``3.12``, ``3.12.3``, and what ``platform.python_version()`` gives on pre-releases and
unreleased builds: ``3.15.0a1``, ``3.14.0rc2``, ``3.13.0+``."""
_CUDA_TAG = re.compile(r"^cu(\d+)$")
_ROCM_TAG = re.compile(r"^rocm(\d+(?:\.\d+)*)$")


def numeric_key(version: str) -> tuple[int, ...]:
    """Sort key of a dotted numeric version (``"580.159.04"`` -> ``(580, 159, 4)``).

    Raises:
        ValueError: if the text is not dot-separated integers.
    """
    text = version.strip()
    if not _NUMERIC.match(text):
        raise ValueError(f"not a dotted numeric version: {version!r}")
    return tuple(int(part) for part in text.split("."))


def compare_numeric(left: str, right: str) -> int:
    """-1, 0 or 1 comparing two dotted versions; missing trailing parts count as 0 (PEP 440).

    Raises:
        ValueError: if either is not dot-separated integers.
    """
    # Imported here: `check` imports this module for compute_capability_key and need not pay
    # for packaging's import (~8 ms) unless it plans an install.
    from packaging.version import Version

    a, b = (
        Version(".".join(map(str, numeric_key(left)))),
        Version(".".join(map(str, numeric_key(right)))),
    )
    return (a > b) - (a < b)


def is_numeric_version(text: str) -> bool:
    """True for ``"2.14.1"``, ``"580.65.06"``; False for ``"2.14.1+cu130"`` or ``"abc"``."""
    return bool(_NUMERIC.match(text.strip()))


def python_minor(text: str) -> str:
    """``"3.12.3"``, ``"3.12"`` or ``"3.15.0a1"`` -> ``"3.12"`` / ``"3.15"``.

    Raises:
        ValueError: if the text is not a Python version.
    """
    match = _PYTHON.match(text.strip())
    if not match:
        raise ValueError(f"not a Python version (expected X.Y): {text!r}")
    return f"{int(match.group(1))}.{int(match.group(2))}"


def python_key(text: str) -> tuple[int, int]:
    """Sort key of a Python ``X.Y`` version."""
    major, minor = python_minor(text).split(".")
    return int(major), int(minor)


def cuda_of_variant(variant: str) -> str | None:
    """CUDA version of a wheel variant tag: ``cu126`` -> ``12.6``, ``cu92`` -> ``9.2``.

    The last digit is the minor version (PyTorch never shipped a two-digit CUDA minor).
    """
    match = _CUDA_TAG.match(variant)
    if not match:
        return None
    digits = match.group(1)
    return f"{int(digits[:-1])}.{digits[-1]}"


def variant_of_cuda(cuda: str) -> str:
    """``"12.6"`` -> ``"cu126"``; ``"13.0.2"`` -> ``"cu130"``."""
    parts = cuda.strip().split(".")
    if len(parts) < 2 or not all(p.isdigit() for p in parts[:2]):
        raise ValueError(f"not a CUDA version: {cuda!r}")
    return f"cu{int(parts[0])}{int(parts[1])}"


def rocm_of_variant(variant: str) -> str | None:
    """ROCm version of a wheel variant tag: ``rocm6.2.4`` -> ``6.2.4``."""
    match = _ROCM_TAG.match(variant)
    return match.group(1) if match else None


def variant_kind(variant: str) -> str:
    """``cuda``, ``rocm``, ``cpu`` or ``default`` (the plain PyPI/macOS wheel)."""
    if cuda_of_variant(variant):
        return "cuda"
    if rocm_of_variant(variant):
        return "rocm"
    if variant == "cpu":
        return "cpu"
    return "default"


def variant_sort_key(variant: str) -> tuple[int, ...]:
    """Newer toolkits sort higher within one kind (``cu132`` > ``cu130`` > ``cu92``)."""
    cuda = cuda_of_variant(variant)
    if cuda:
        return numeric_key(cuda)
    rocm = rocm_of_variant(variant)
    if rocm:
        return numeric_key(rocm)
    return (0,)


def compute_capability_key(text: str) -> tuple[int, int]:
    """``"8.6"`` -> ``(8, 6)``; accepts ``"sm_86"`` and ``"86"`` too.

    Raises:
        ValueError: if the text is not a compute capability.
    """
    raw = text.strip().lower().removeprefix("sm_").removeprefix("sm")
    if re.fullmatch(r"\d+\.\d+", raw):
        major, minor = raw.split(".")
        return int(major), int(minor)
    if re.fullmatch(r"\d{2,3}", raw):
        return int(raw[:-1]), int(raw[-1])
    raise ValueError(f"not a compute capability (expected X.Y such as 8.6): {text!r}")


def normalize_compute_capability(text: str) -> str:
    """Canonical ``"X.Y"`` text of a compute capability."""
    major, minor = compute_capability_key(text)
    return f"{major}.{minor}"
