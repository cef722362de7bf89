"""Will a wheel's kernels run on this GPU? The rules of ``ARCH-COMPAT.md``, as code.

1. Machine code (cubin) for ``sm_AB`` runs on any GPU of the same major ``A`` and minor >= ``B``.
2. Machine code never runs across major versions.
3. PTX (``+PTX``) is JIT-compiled for any GPU of equal or higher compute capability: it runs,
   but the first use compiles, so "PTX only" is a soft mismatch (works, warn).
4. Architecture-specific targets (``9.0a``) run only on exactly that architecture; family
   targets (``10.0f``) run within their major version.

Source: CUDA C++ Programming Guide, "Binary Compatibility", as summarised in the project's
``shared/reference/pytorch/ARCH-COMPAT.md``.
"""

from __future__ import annotations

import enum
import functools
import re
from dataclasses import dataclass

from dlready.install.versions import compute_capability_key

_ENTRY = re.compile(r"^(\d+)\.(\d+)([af]?)(\+PTX)?$", re.IGNORECASE)


class Coverage(enum.IntEnum):
    """How a wheel serves one GPU; higher is better."""

    NONE = 0
    PTX = 1
    NATIVE = 2


@dataclass(frozen=True)
class ArchTarget:
    """One entry of a ``TORCH_CUDA_ARCH_LIST``."""

    major: int
    minor: int
    suffix: str
    """``""`` (ordinary cubin), ``"a"`` (architecture-specific) or ``"f"`` (family)."""
    ptx: bool

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
            labels.append(f"compute_{target.major}{target.minor}")
    return labels


@functools.lru_cache(maxsize=1024)  # asked for every GPU of a 10,000-GPU snapshot
def coverage(arch_list: str, compute_capability: str) -> Coverage:
    """How a wheel with ``arch_list`` serves a GPU of ``compute_capability`` (``"8.6"``)."""
    major, minor = compute_capability_key(compute_capability)
    best = Coverage.NONE
    for target in parse_arch_list(arch_list):
        if target.suffix == "a":
            native = (target.major, target.minor) == (major, minor)
        else:
            native = target.major == major and target.minor <= minor
        if native:
            return Coverage.NATIVE
        if target.ptx and (target.major, target.minor) <= (major, minor):
            best = Coverage.PTX
    return best
