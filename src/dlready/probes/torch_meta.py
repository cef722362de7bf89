"""The installed PyTorch, read without importing it (``import torch`` takes seconds).

``importlib.util.find_spec`` locates the package without running it; ``torch/version.py``
(generated at build time) holds the version, the CUDA and the HIP version as literals.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

from dlready.bounded_read import read_regular_text
from dlready.install.versions import variant_of_cuda
from dlready.model import Reading, Source, TorchInstall

# torch/version.py is a few hundred bytes; anything larger is not the generated file.
_MAX_VERSION_PY_BYTES = 64 * 1024

_VARIANT_PATTERN = re.compile(r"\+((?:cu|rocm)[\d.]+|cpu|xpu)", re.IGNORECASE)


def build_variant(version: str | None, cuda: str | None, hip: str | None) -> str | None:
    """The torch build (``cu126``, ``rocm6.2``, ``cpu``, ``xpu``): the local version of
    ``2.5.1+cu121`` first, else ``torch.version.cuda`` (PyPI's Linux wheels carry no local
    version but are CUDA builds), else ``torch.version.hip``; None when nothing says (a plain
    wheel without CUDA or HIP: the CPU build, or the default macOS wheel).

    The one derivation, used by the probe and by ``install``'s judge of the installed torch.
    """
    match = _VARIANT_PATTERN.search(version or "")
    if match:
        return match.group(1).lower()
    if cuda:
        try:
            return variant_of_cuda(cuda)
        except ValueError:
            pass
    if hip:
        return "rocm" + ".".join(hip.split(".")[:2])
    return None


def parse_torch_version_py(text: str) -> dict[str, str | None]:
    """Literal assignments of ``torch/version.py``: ``__version__``, ``cuda``, ``hip``."""
    values: dict[str, str | None] = {}
    for key in ("__version__", "cuda", "hip"):
        match = re.search(rf"^{key}\s*(?::[^=]*)?=\s*(.+)$", text, re.MULTILINE)
        if not match:
            continue
        literal = match.group(1).strip()
        quoted = re.fullmatch(r"""['"]([^'"]*)['"]""", literal)
        values[key] = quoted.group(1) if quoted else None
    return values


def torch_install_from_version_py(text: str, location: str | None) -> TorchInstall:
    """Build :class:`TorchInstall` from the text of ``torch/version.py`` (pure)."""
    values = parse_torch_version_py(text)
    full_version = values.get("__version__")
    if not full_version:
        return TorchInstall(
            installed=True,
            version=Reading.failed(Source.PACKAGE_METADATA, "torch/version.py has no __version__"),
        )
    public, _, _local = full_version.partition("+")
    cuda = values.get("cuda")
    hip = values.get("hip")
    variant = build_variant(full_version, cuda, hip) or "cpu"
    return TorchInstall(
        installed=True,
        version=Reading.read(public, Source.PACKAGE_METADATA),
        local_variant=Reading.read(variant, Source.PACKAGE_METADATA),
        cuda_version=Reading.read(cuda, Source.PACKAGE_METADATA),
        hip_version=Reading.read(hip, Source.PACKAGE_METADATA),
        location=Reading.read(location, Source.PACKAGE_METADATA),
    )


def probe_torch() -> TorchInstall:
    """Find torch on ``sys.path`` and read its build facts, without importing it."""
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError) as exc:
        return TorchInstall(
            installed=False, version=Reading.failed(Source.PACKAGE_METADATA, str(exc))
        )
    if spec is None or not spec.submodule_search_locations:
        return TorchInstall(
            installed=False,
            version=Reading.unsupported(Source.PACKAGE_METADATA, "torch is not installed"),
        )
    package_dir = Path(next(iter(spec.submodule_search_locations)))
    try:
        text = read_regular_text(package_dir / "version.py", _MAX_VERSION_PY_BYTES)
    except (OSError, UnicodeDecodeError) as exc:
        return TorchInstall(
            installed=True,
            version=Reading.failed(
                Source.PACKAGE_METADATA, f"torch at {package_dir} has no readable version.py: {exc}"
            ),
        )
    return torch_install_from_version_py(text, str(package_dir))
