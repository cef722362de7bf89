"""Does this torch build carry GPU code for this GPU? (pure; used by the worker and explain).

The CUDA rules live in :mod:`dlready.install.archs` (one implementation for ``install-cmd``
and ``smoke``); this module maps them onto ``get_arch_list()`` labels and smoke's words.
"""

from __future__ import annotations

from dlready.install.archs import Coverage, parse_arch_labels, targets_coverage
from dlready.model import StrEnum


class ArchSupport(StrEnum):
    """How a build serves a GPU architecture."""

    NATIVE = "native"
    """The build carries machine code for it."""
    PTX = "ptx"
    """Only through JIT compilation of PTX: works, slow first start."""
    MISSING = "missing"
    """No code for it: every kernel fails with "no kernel image is available"."""
    UNKNOWN = "unknown"
    """The arch list is empty or unreadable."""


_SUPPORT = {Coverage.NATIVE: "native", Coverage.PTX: "ptx", Coverage.NONE: "missing"}


def cuda_arch_support(major: int, minor: int, arch_list: list[str]) -> ArchSupport:
    """Judge a CUDA GPU of compute capability ``major.minor`` against ``get_arch_list()``."""
    if not arch_list:
        return ArchSupport.UNKNOWN
    level = targets_coverage(parse_arch_labels(arch_list), (major, minor))
    return ArchSupport(_SUPPORT[level])


def rocm_arch_support(gcn_arch_name: str, arch_list: list[str]) -> ArchSupport:
    """Judge an AMD GPU (``gcnArchName`` such as ``gfx942:sramecc+:xnack-``) on a ROCm build."""
    if not arch_list or not gcn_arch_name:
        return ArchSupport.UNKNOWN
    base = gcn_arch_name.split(":", 1)[0].strip()
    bases = {entry.split(":", 1)[0].strip() for entry in arch_list}
    return ArchSupport.NATIVE if base in bases else ArchSupport.MISSING


def sm_name(major: int, minor: int) -> str:
    """``sm_90`` for compute capability 9.0."""
    return f"sm_{major}{minor}"
