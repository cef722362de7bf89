"""The oldest GPU a CUDA toolkit still compiles for (``data/cuda_toolkit_archs.json``): no
build of that CUDA version can carry kernels for an older GPU (CUDA 13 dropped sm_50..sm_72).
Read by ``install-cmd``'s pre-release channels and by ``check``'s build-tools part."""

from __future__ import annotations

import functools
import json
from typing import Any

from dlready.install.versions import compute_capability_key, numeric_key
from dlready.package_data import read_data_text


@functools.lru_cache(maxsize=1)
def load_toolkit_arch_table() -> tuple[tuple[tuple[int, ...], tuple[int, ...], str], ...]:
    """The packaged table of the oldest compute capability each CUDA toolkit compiles for:
    (from, through, compute capability) rows."""
    text = read_data_text("cuda_toolkit_archs.json")
    rows: list[dict[str, Any]] = json.loads(text)["releases"]
    return tuple(
        (
            numeric_key(row["cuda_from"]),
            numeric_key(row["cuda_through"]),
            row["min_compute_capability"],
        )
        for row in rows
    )


def toolkit_min_capability(cuda_version: str) -> str | None:
    """The oldest compute capability CUDA ``cuda_version``'s nvcc compiles for (13.0 -> 7.5)."""
    try:
        key = numeric_key(cuda_version)[:2]
    except ValueError:
        return None
    for first, last, capability in load_toolkit_arch_table():
        if first <= key <= last:
            return capability
    return None


def too_old_for_toolkit(compute_capability: str, cuda_version: str) -> bool:
    """True when CUDA ``cuda_version`` cannot compile for ``compute_capability`` at all;
    False when it can or the table does not say."""
    oldest = toolkit_min_capability(cuda_version)
    if oldest is None:
        return False
    return compute_capability_key(compute_capability) < compute_capability_key(oldest)
