"""Will a build's kernels run on this GPU? NVIDIA's binary-compatibility rules, written once
(``install-cmd`` reads ``TORCH_CUDA_ARCH_LIST`` entries, ``smoke`` reads
``torch.cuda.get_arch_list()`` labels; both are judged here).

1. Machine code (cubin) for ``sm_AB`` runs on any GPU of the same major ``A`` and minor >= ``B``.
2. Machine code never runs across major versions.
3. PTX (``+PTX``, ``compute_AB``) is JIT-compiled for any GPU of equal or higher compute
   capability: it runs, but the first use compiles, so "PTX only" is a soft mismatch.
4. Architecture-specific targets (``9.0a``: ``sm_90a``, ``compute_90a``) run only on exactly
   that compute capability, as machine code and as PTX; family-specific targets (``10.0f``)
   run within their major version on minor >= theirs, as machine code and as PTX.

Source: CUDA C++ Programming Guide, "Binary Compatibility" and "Feature Set Compiler Targets"
(https://docs.nvidia.com/cuda/cuda-c-programming-guide/#binary-compatibility).
"""

from __future__ import annotations

import enum
import functools
import re

from msgspec import Struct

from dlready.install.versions import compute_capability_key

ARCH_RULES = (
    "Machine code for sm_AB runs on a GPU of the same major version A and minor >= B "
    "(sm_80 code runs on an RTX 3090, 8.6; sm_86 code does not run on an A100, 8.0).",
    "Machine code never runs across major versions (sm_75 code does not run on 8.x or 6.x).",
    "PTX (compute_AB) is compiled by the driver for any GPU of equal or higher compute "
    "capability: it runs, but the first use is slow.",
    "Architecture-specific code (sm_90a, compute_90a) runs only on exactly that compute "
    "capability; family code (sm_100f) runs within its major version.",
    "The driver must also be new enough for the build's CUDA version: the arch list decides "
    "which GPUs run it, the CUDA version which drivers do.",
)
"""The rules above, as ``install-cmd --explain`` prints them."""

_ENTRY = re.compile(r"^(\d+)\.(\d+)([af]?)(\+PTX)?$", re.IGNORECASE)


class Coverage(enum.IntEnum):
    """How a wheel serves one GPU; higher is better."""

    NONE = 0
    PTX = 1
    NATIVE = 2


class ArchTarget(Struct, frozen=True):
    """One entry of a ``TORCH_CUDA_ARCH_LIST``."""

    major: int
    minor: int
    suffix: str
    """``""`` (ordinary cubin), ``"a"`` (architecture-specific) or ``"f"`` (family)."""
    ptx: bool
    cubin: bool = True
    """False for a PTX-only entry (``compute_90`` in ``get_arch_list()`` without ``sm_90``)."""

    def runs_on(self, major: int, minor: int) -> bool:
        """Whether code for this target (cubin or PTX alike) may run on compute capability
        ``major.minor`` at all: ``a`` exactly, ``f`` within the major version."""
        if self.suffix == "a":
            return (self.major, self.minor) == (major, minor)
        if self.suffix == "f":
            return self.major == major and self.minor <= minor
        return True

    def coverage_of(self, major: int, minor: int) -> Coverage:
        """How this one target serves a GPU of compute capability ``major.minor``."""
        if not self.runs_on(major, minor):
            return Coverage.NONE
        if self.cubin and self.major == major and self.minor <= minor:
            return Coverage.NATIVE
        if self.ptx and (self.major, self.minor) <= (major, minor):
            return Coverage.PTX
        return Coverage.NONE

    @property
    def label(self) -> str:
        """``sm_90``, ``sm_90a``; ``compute_120`` is added separately for PTX."""
        return f"sm_{self.major}{self.minor}{self.suffix}"


@functools.lru_cache(maxsize=256)  # a few distinct lists (one per wheel), asked per GPU
def parse_arch_list(text: str) -> tuple[ArchTarget, ...]:
    """``"7.5;8.0;12.0+PTX"`` -> targets; spaces and commas are accepted as separators.

    Raises:
        ValueError: on an entry that is not ``X.Y[a|f][+PTX]``.
    """
    targets = []
    for raw in re.split(r"[;,\s]+", text.strip()):
        if not raw:
            continue
        match = _ENTRY.match(raw)
        if not match:
            raise ValueError(f"not an arch list entry: {raw!r}")
        targets.append(
            ArchTarget(
                major=int(match.group(1)),
                minor=int(match.group(2)),
                suffix=match.group(3).lower(),
                ptx=bool(match.group(4)),
            )
        )
    return tuple(targets)


def arch_labels(text: str) -> list[str]:
    """What ``torch.cuda.get_arch_list()`` would print: ``sm_75 … sm_120 compute_120``."""
    labels = []
    for target in parse_arch_list(text):
        labels.append(target.label)
        if target.ptx:
            labels.append(f"compute_{target.major}{target.minor}{target.suffix}")
    return labels


_LABEL = re.compile(r"^(sm|compute)_(\d+)([af]?)$", re.IGNORECASE)


def parse_arch_labels(labels: list[str] | tuple[str, ...]) -> tuple[ArchTarget, ...]:
    """``torch.cuda.get_arch_list()`` labels -> targets: ``sm_86`` machine code, ``compute_90``
    PTX; the last digit is the minor version (``sm_120`` is 12.0). Other labels are skipped."""
    targets = []
    for label in labels:
        match = _LABEL.match(label.strip())
        if not match:
            continue
        major, minor = divmod(int(match.group(2)), 10)
        ptx = match.group(1).lower() == "compute"
        targets.append(ArchTarget(major, minor, match.group(3).lower(), ptx=ptx, cubin=not ptx))
    return tuple(targets)


def targets_coverage(
    targets: tuple[ArchTarget, ...], compute_capability: tuple[int, int]
) -> Coverage:
    """The best any of ``targets`` does for one GPU (NONE for no targets)."""
    major, minor = compute_capability
    return max((t.coverage_of(major, minor) for t in targets), default=Coverage.NONE)


@functools.lru_cache(maxsize=1024)  # asked for every GPU of a 10,000-GPU snapshot
def coverage(arch_list: str, compute_capability: str) -> Coverage:
    """How a wheel with ``arch_list`` serves a GPU of ``compute_capability`` (``"8.6"``)."""
    return targets_coverage(parse_arch_list(arch_list), compute_capability_key(compute_capability))
