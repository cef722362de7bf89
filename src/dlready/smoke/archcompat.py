"""Does this torch build carry GPU code for this GPU? (pure; used by the worker and explain).

Rules (shared/reference/pytorch/ARCH-COMPAT.md, from the CUDA C++ Programming Guide,
"Binary Compatibility"):

1. Machine code for ``sm_AB`` runs on a GPU of the same major version A and minor >= B.
2. Machine code never runs across major versions.
3. PTX (``compute_XY``) is JIT-compiled for any GPU of equal or higher capability: it runs,
   after a slow first start, so it is a soft match.
4. ``sm_XYa`` runs only on exactly X.Y; ``sm_XYf`` (CUDA 12.9+) within its family (same major,
   minor >= Y).
"""

from __future__ import annotations

import re

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


_SASS = re.compile(r"sm_(\d+)([af]?)")
_PTX = re.compile(r"compute_(\d+)([af]?)")


def _split(version: int) -> tuple[int, int]:
    # sm_86 -> (8, 6); sm_100 -> (10, 0); sm_120 -> (12, 0)
    return divmod(version, 10)


def cuda_arch_support(major: int, minor: int, arch_list: list[str]) -> ArchSupport:
    """Judge a CUDA GPU of compute capability ``major.minor`` against ``get_arch_list()``."""
    if not arch_list:
        return ArchSupport.UNKNOWN
    for entry in arch_list:
        match = _SASS.fullmatch(entry.strip())
        if not match:
            continue
        arch_major, arch_minor = _split(int(match.group(1)))
        suffix = match.group(2)
        if suffix == "a":
            if (arch_major, arch_minor) == (major, minor):
                return ArchSupport.NATIVE
        elif arch_major == major and arch_minor <= minor:
            return ArchSupport.NATIVE
    for entry in arch_list:
        match = _PTX.fullmatch(entry.strip())
        if match and not match.group(2) and _split(int(match.group(1))) <= (major, minor):
            return ArchSupport.PTX
    return ArchSupport.MISSING


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
