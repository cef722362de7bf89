#!/usr/bin/env python3
"""Build ``src/dlready/data/pytorch_compat.json`` from the researched PyTorch reference data.

Inputs (the project's shared reference, each fact with its source):

- ``shared/reference/pytorch/matrix.json``: releases, published commands, variants, arch lists.
- ``shared/reference/pytorch/cuda_driver.json``: driver minimums per CUDA version.
- ``shared/reference/pytorch/ARCH-COMPAT.md``: the rules for reading arch lists (cited).
- ``shared/reference/pytorch/SOURCES.md``: the research date (becomes ``checked_on``).
- ``shared/SEED.md``: the book's 2020 Windows command (torch 1.7.1).

Outputs:

- ``src/dlready/data/pytorch_compat.json``: the table the planner reads (package data).
- ``tests/install_golden/published_commands.json``: every published install command, with the
  platform and variant it is meant for, for the golden tests.

How to update (see docs/install-cmd.md): refresh the reference files, run
``python tools/build_compat_table.py``, review the diff of both outputs, run the tests
(``tests/test_install_golden.py`` reports how many published commands are reproduced).
``--check`` exits 1 when the committed outputs differ from what the inputs give.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from install_command_parse import (  # noqa: E402  # the tools folder is on sys.path
    CommandParseError,
    ParsedCommand,
    parse_install_command,
)

from dlready.install.versions import (  # noqa: E402  # the package is imported from the tree
    compare_numeric,
    cuda_of_variant,
    numeric_key,
    variant_kind,
    variant_of_cuda,
)

DEFAULT_REFERENCE = ROOT.parent / "shared" / "reference" / "pytorch"
DEFAULT_SEED = ROOT.parent / "shared" / "SEED.md"
TABLE_PATH = ROOT / "src" / "dlready" / "data" / "pytorch_compat.json"
GOLDEN_PATH = ROOT / "tests" / "install_golden" / "published_commands.json"
SCHEMA_VERSION = 1
INDEX_BASE = "https://download.pytorch.org/whl"
PACKAGES = ("torch", "torchvision", "torchaudio")

# What users are shown: the public page behind each kind of fact (the research files above
# stay the facts' sources in the table; they are not shipped, so they are never cited to users).
PUBLIC_SOURCES = {
    "commands": {
        "title": "PyTorch's published install commands",
        "url": "https://pytorch.org/get-started/previous-versions/",
    },
    "newest": {
        "title": "PyTorch's install selector",
        "url": "https://pytorch.org/get-started/locally/",
    },
    "python": {
        "title": "PyTorch's release compatibility matrix",
        "url": "https://github.com/pytorch/pytorch/blob/main/RELEASE.md",
    },
    "drivers": {
        "title": "NVIDIA's CUDA Toolkit release notes (driver versions)",
        "url": "https://docs.nvidia.com/cuda/cuda-toolkit-release-notes/",
    },
    "arch_lists": {
        "title": "PyTorch's CUDA wheel build script (the GPU architectures of each build)",
        "url": "https://github.com/pytorch/pytorch/blob/main/.ci/manywheel/build_cuda.sh",
    },
    "arch_rules": {
        "title": "NVIDIA's CUDA C++ Programming Guide, binary compatibility",
        "url": "https://docs.nvidia.com/cuda/cuda-c-programming-guide/#binary-compatibility",
    },
    "conda": {
        "title": "the end of PyTorch's conda channel (pytorch/pytorch#138506)",
        "url": "https://github.com/pytorch/pytorch/issues/138506",
    },
    "jetson": {
        "title": "NVIDIA's PyTorch for Jetson",
        "url": "https://docs.nvidia.com/deeplearning/frameworks/install-pytorch-jetson-platform/",
    },
}

LINUX_X86 = "linux-x86_64"
LINUX_ARM = "linux-aarch64"
WINDOWS = "windows-x86_64"
MAC_ARM = "macos-arm64"
MAC_X86 = "macos-x86_64"
MATRIX_PLATFORM = {"linux-x86_64": LINUX_X86, "linux-aarch64": LINUX_ARM, "windows": WINDOWS}

SRC_PAGE = "page"
SRC_START = "start-locally"
SRC_CONVENTION = "convention"
SRC_AARCH64 = "aarch64-notes"
SRC_SEED = "seed"
ORIGINS = {
    SRC_PAGE: "pytorch.org previous-versions page (matrix.json commands_previous_versions_page)",
    SRC_START: "pytorch.org Start-Locally data, published_versions.json "
    "(matrix.json commands_start_locally)",
    SRC_CONVENTION: "derived from the 2.1+ convention `--index-url "
    "https://download.pytorch.org/whl/<variant>` (matrix.json index_url_conventions): no "
    "previous-versions page text for this release",
    SRC_AARCH64: "matrix.json platform_notes.linux_aarch64",
    SRC_SEED: "shared/SEED.md: the book's 2020 Windows command",
}
"""Where a variant's command form comes from; the table stores the key, ``origins`` the text."""


PYTHON_SOURCE_CODES = {
    "REL_MD": "pytorch/pytorch RELEASE.md (release compatibility matrix)",
    "TI": "pytorch/test-infra release build matrix",
    "VISION": "pytorch/vision README (compatibility table)",
    "PREV_KR": "previous-versions page note (PyTorchKR mirror)",
}
"""matrix.json names the sources of Python ranges by these codes; SOURCES.md lists the files."""


def expand_python_source(codes: str) -> str:
    """``"REL_MD+VISION"`` -> ``"Python range: pytorch/pytorch RELEASE.md ...; ..."``."""
    parts = [PYTHON_SOURCE_CODES.get(code, code) for code in codes.split("+")]
    return "Python range: " + "; ".join(parts)


class BuildError(RuntimeError):
    """The reference data does not fit what this generator understands."""


# --- small readers ----------------------------------------------------------------------------


def strip_unconfirmed(text: str) -> tuple[str, str | None]:
    """``"cu130 (UNCONFIRMED)"`` -> ``("cu130", "UNCONFIRMED")``."""
    match = re.match(r"^\s*(\S+)\s*(\((.*)\))?\s*$", text)
    if not match:
        raise BuildError(f"cannot read {text!r}")
    note = match.group(3)
    return match.group(1), (note if note and "UNCONFIRMED" in note else None)


def driver_value(text: str | None) -> tuple[str | None, str | None]:
    """``">=527.41 (uv/ltt use 528.33)"`` -> ``("527.41", "uv/ltt use 528.33")``.

    ``"N/A (uv uses 580)"`` -> ``("580", "NVIDIA gives no value; uv's threshold used")``.
    """
    if text is None:
        return None, None
    raw = text.strip()
    match = re.match(r"^>=\s*([0-9][0-9.]*)\s*(?:\((.*)\))?", raw)
    if match:
        return match.group(1), match.group(2)
    if raw.startswith("N/A"):
        uv = re.search(r"uv uses ([0-9][0-9.]*)", raw)
        if uv:
            return uv.group(1), "UNCONFIRMED: NVIDIA's table gives no value; uv's threshold used"
        driver = re.search(r"driver ([0-9]+\.[0-9]+) is the usual counterpart", raw)
        if driver:
            return driver.group(1), "UNCONFIRMED: " + raw
        return None, raw
    raise BuildError(f"cannot read driver value {text!r}")


def parse_python(entry: dict[str, str], is_lts: bool) -> dict[str, Any]:
    """Supported Python range of one release, from the free text of matrix.json."""
    text = entry["python"]
    low = re.search(r">=\s*(\d+\.\d+)", text)
    if not low:
        raise BuildError(f"no Python minimum in {text!r}")
    build = re.search(
        r"release (?:build )?matrix(?: and getting-started page)?:?\s*([0-9.,t]+)", text
    )
    high_text = None
    if build:
        # "3.10..3.14,3.14t" or "3.9,3.10,3.11,3.12,3.13,3.13t"
        versions = re.findall(r"(\d+\.\d+)(?!t)\b", build.group(1))
        high_text = max(versions, key=numeric_key) if versions else None
    if high_text is None:
        high = re.search(r"<=\s*\(?\s*(\d+\.\d+)", text)
        if not high:
            raise BuildError(f"no Python maximum in {text!r}")
        high_text = high.group(1)
    experimental = sorted(
        {
            v
            for v in re.findall(r"(\d+\.\d+)t?\s*(?:,\s*\d+\.\d+t\s*)?experimental", text)
            if compare_numeric(v, high_text) > 0
        },
        key=numeric_key,
    )
    lts_max = re.search(r"LTS 1\.8\.2: Python <= (\d+\.\d+)", text)
    result: dict[str, Any] = {
        "min": low.group(1),
        "max": lts_max.group(1) if (is_lts and lts_max) else high_text,
        "experimental": experimental,
        "text": text,
        "source": expand_python_source(entry["src"]),
    }
    return result


def label_variant(label: str) -> str | None:
    """``"CUDA 11.8"`` -> ``cu118``; ``"ROCM 6.2.4 (Linux only)"`` -> ``rocm6.2.4``."""
    cuda = re.search(r"CUDA[ -]?(\d+)\.(\d+)", label, re.IGNORECASE)
    if cuda:
        return f"cu{cuda.group(1)}{cuda.group(2)}"
    rocm = re.search(r"ROCM ?(\d+(?:\.\d+)*)", label, re.IGNORECASE)
    if rocm:
        return f"rocm{rocm.group(1)}"
    if re.search(r"\bCPU\b", label, re.IGNORECASE):
        return "cpu"
    return None


def url_variant(url: str | None) -> str | None:
    """Variant named by a download.pytorch.org URL (``.../whl/cu113/torch_stable.html``)."""
    if not url:
        return None
    match = re.search(r"/whl/(?:lts/[0-9.]+/)?(cu\d+|rocm[0-9.]+\d|cpu)(?:/|$)", url)
    return match.group(1) if match else None


def command_variant(parsed: ParsedCommand) -> str | None:
    """Variant from the local version of torch or from the index URL."""
    torch = parsed.requirement("torch")
    if torch and torch.local:
        return torch.local
    for url in (parsed.index_url, *parsed.extra_index_urls, *parsed.find_links):
        variant = url_variant(url)
        if variant:
            return variant
    return None


def conda_variant(parsed: ParsedCommand) -> str:
    """``cudatoolkit=11.3`` -> cu113; ``pytorch-cuda=12.1`` -> cu121; cpuonly -> cpu."""
    for extra in parsed.conda_extras:
        if extra == "cpuonly":
            return "cpu"
        match = re.match(r"^(?:cudatoolkit|pytorch-cuda)=(\d+\.\d+)$", extra)
        if match:
            return variant_of_cuda(match.group(1))
    return "default"


def pip_form(parsed: ParsedCommand, variant: str) -> dict[str, Any]:
    """How a variant's pip command is written: index flag, URL, local versions, ``===``."""
    flag: str | None = None
    url: str | None = None
    if parsed.index_url:
        flag, url = "--index-url", parsed.index_url
    elif parsed.extra_index_urls:
        flag, url = "--extra-index-url", parsed.extra_index_urls[0]
    elif parsed.find_links:
        flag, url = "-f", parsed.find_links[0]
    local = []
    exact = []
    for req in parsed.requirements:
        if req.local:
            if req.local != variant:
                raise BuildError(f"local version {req.local} does not match variant {variant}")
            local.append(req.name)
        if req.operator == "===":
            exact.append(req.name)
    return {"flag": flag, "url": url, "local": local, "exact_equality": exact}


def note_scope(note: str) -> str:
    """Which plans an UNCONFIRMED release note concerns (documented in docs/install-cmd.md)."""
    lowered = note.lower()
    if "conda" in lowered:
        return "conda"
    if "rocm" in lowered:
        return "rocm"
    if "torchaudio" in lowered:
        return "torchaudio"
    if "python 3.15" in lowered:
        return "python-experimental"
    return "all"


# --- the builder ------------------------------------------------------------------------------


class ReleaseBuilder:
    """Collects the pip and conda forms of one release and its published commands."""

    def __init__(self, release: dict[str, Any], matrix: dict[str, Any]) -> None:
        self.r = release
        self.matrix = matrix
        self.torch: str = release["torch"]
        self.is_lts: bool = bool(release["is_lts"])
        self.pip: dict[tuple[str, str], dict[str, Any]] = {}
        self.conda: dict[tuple[str, str], dict[str, Any]] = {}
        self.removed: set[tuple[str, str, str]] = set()
        self.published: list[dict[str, Any]] = []
        self.variant_notes: dict[str, str] = {}
        self.pypi_default, self.pypi_default_note = self._pypi_default()

    # helpers
    def older_than(self, version: str) -> bool:
        return compare_numeric(self.torch, version) < 0

    def _pypi_default(self) -> tuple[str | None, str | None]:
        raw = self.r.get("pypi_default_linux_x86_64_cuda") or ""
        match = re.match(r"^(cu\d+)\s*(\((.*)\))?", raw)
        if not match:
            return None, raw or None
        note = match.group(3)
        return match.group(1), (note if note and "UNCONFIRMED" in note else None)

    def pypi_default_aarch64(self) -> str | None:
        """The CUDA build plain PyPI gives on Linux aarch64 (None: the CPU build)."""
        note = self.matrix["platform_notes"]["linux_aarch64"]
        match = re.search(r"since (\d+\.\d+) the PyPI aarch64 wheel is the CUDA (\d+\.\d+)", note)
        if match is None or self.older_than(match.group(1) + ".0"):
            return None
        return variant_of_cuda(match.group(2))

    def macos_platforms(self) -> list[str]:
        if self.is_lts:
            return []  # "macOS is currently not supported in LTS"
        platforms = [MAC_ARM]
        if not compare_numeric(self.torch, self.last_intel_mac()) > 0:
            platforms.append(MAC_X86)
        return platforms

    def last_intel_mac(self) -> str:
        note = self.matrix["platform_notes"]["macOS_x86_64"]
        match = re.search(r"Last wheels: (\d+\.\d+\.\d+)", note)
        if not match:
            raise BuildError("no last macOS x86_64 release in platform_notes")
        return match.group(1)

    def add_pip(self, variant: str, platform: str, form: dict[str, Any], origin: str) -> None:
        key = (variant, platform)
        if key in self.pip or ("pip", *key) in self.removed:
            return
        self.pip[key] = {"variant": variant, "platform": platform, **form, "origin": origin}

    def add_conda(self, variant: str, platform: str, form: dict[str, Any], origin: str) -> None:
        key = (variant, platform)
        if key in self.conda or ("conda", *key) in self.removed:
            return
        self.conda[key] = {"variant": variant, "platform": platform, **form, "origin": origin}

    def add_published(self, **entry: Any) -> None:
        entry.setdefault("anomaly", None)
        entry.setdefault("superseded", None)
        self.published.append({"release": self.torch, **entry})

    # sources
    def read_previous_versions_page(self) -> None:
        page = self.r.get("commands_previous_versions_page")
        if not page:
            return
        anomalies = self.r.get("published_page_anomalies") or []
        for block in page["blocks"]:
            manager = "pip" if block["package_manager"] == "wheel" else "conda"
            heading = block["platform_heading"]
            for entry in block.get("entries", []):
                command = entry.get("command")
                if not command:
                    continue
                label = entry.get("label") or heading
                self._page_entry(manager, heading, label, command, anomalies)

    def _page_entry(
        self, manager: str, heading: str, label: str, command: str, anomalies: list[str]
    ) -> None:
        anomaly = next((a for a in anomalies if command in a), None)
        try:
            parsed = parse_install_command(command)
        except CommandParseError as exc:
            self.add_published(
                source=SRC_PAGE,
                manager=manager,
                label=label,
                command=command,
                platforms=[],
                variant=None,
                anomaly=f"not a complete install command: {exc}",
            )
            return
        if heading == "OSX":
            variant = "default"
            platforms = self.macos_platforms()
        elif manager == "conda":
            variant = conda_variant(parsed)
            platforms = [LINUX_X86, WINDOWS]
            if "(Linux)" in label:
                platforms = [LINUX_X86]
            elif "(Windows)" in label:
                platforms = [WINDOWS]
        else:
            variant = label_variant(label) or command_variant(parsed) or ""
            found = command_variant(parsed)
            if found and found != variant:
                raise BuildError(f"{self.torch}: label {label!r} vs command variant {found}")
            if not variant:
                raise BuildError(f"{self.torch}: no variant for {command!r}")
            form = pip_form(parsed, variant)
            kind = variant_kind(variant)
            if kind == "rocm":
                platforms = [LINUX_X86]
            elif kind == "cuda" and form["flag"] is None:
                # A CUDA line without an index is the Linux PyPI default; on Windows PyPI gives
                # the CPU build (matrix.json windows_caveats).
                platforms = [LINUX_X86]
            else:
                platforms = [LINUX_X86, WINDOWS]
        anomaly = anomaly or self._pin_anomaly(parsed, manager, anomalies)
        torch_req = parsed.requirement("torch")
        if parsed.find_links and variant.startswith("rocm") and torch_req and not torch_req.version:
            anomaly = anomaly or (
                "published as a three-step recipe (unpinned torch from a find-links page, "
                "then torchvision built from git)"
            )
        self.add_published(
            source=SRC_PAGE,
            manager=manager,
            label=label,
            command=command,
            platforms=platforms,
            variant=variant,
            anomaly=anomaly,
        )
        if anomaly:
            return
        for platform in platforms:
            if manager == "pip":
                self.add_pip(variant, platform, pip_form(parsed, variant), SRC_PAGE)
            else:
                self.add_conda(variant, platform, conda_form(parsed), SRC_PAGE)

    def _pin_anomaly(self, parsed: ParsedCommand, manager: str, anomalies: list[str]) -> str | None:
        """Why a published command's packages differ from the release, or None."""
        expected = self.versions(manager)
        for req in parsed.requirements:
            name = "torch" if req.name == "pytorch" else req.name
            if name not in PACKAGES:
                return f"installs {req.name}, not a PyTorch package (a step of a build recipe)"
            if name not in expected:
                return f"{name} has no release for torch {self.torch}"
            if req.version is not None and req.version != expected[name]:
                section = next((a for a in anomalies if f"mixes {name} versions" in a), None)
                return section or f"pins {name}=={req.version}; the release pairs {expected[name]}"
        return None

    def versions(self, manager: str) -> dict[str, str]:
        result = {"torch": self.torch}
        for package in ("torchvision", "torchaudio"):
            value = self.r[package]
            if isinstance(value, dict):
                value = value[manager]
            if value is not None:
                result[package] = value
        return result

    def read_start_locally(self) -> None:
        data = self.r.get("commands_start_locally")
        if not data:
            return
        for os_name, managers in data["commands"].items():
            for manager, keys in managers.items():
                for key, entry in keys.items():
                    self._start_entry(os_name, manager, key, entry)

    def _start_entry(self, os_name: str, manager: str, key: str, entry: dict[str, Any]) -> None:
        command = entry.get("command")
        note = entry.get("note") or ""
        key_variant = label_variant(key.replace("cuda", "CUDA "))
        if command is None:
            if os_name == "windows" and key_variant and "no longer available" in note:
                # Start-Locally says this build is gone on Windows although the page's
                # "Linux and Windows" block lists it; the narrower statement wins.
                self.removed.add((manager, key_variant, WINDOWS))
                forms = self.pip if manager == "pip" else self.conda
                forms.pop((key_variant, WINDOWS), None)
            return
        segments = [command]
        if "<br />" in command:
            segments = []
            target = None
            for part in command.split("<br />"):
                part = part.strip()
                if part.startswith("For Linux Aarch64"):
                    target = LINUX_ARM
                elif part.startswith("For Linux x86"):
                    target = LINUX_X86
                elif part:
                    segments.append(f"{target}|{part}")
        for segment in segments:
            platform = None
            if "|" in segment:
                platform, segment = segment.split("|", 1)
            self._start_command(os_name, manager, key, segment, platform)

    def _start_command(
        self, os_name: str, manager: str, key: str, command: str, platform: str | None
    ) -> None:
        try:
            parsed = parse_install_command(command)
        except CommandParseError as exc:
            raise BuildError(f"{self.torch}: {exc}") from None
        if os_name == "macos":
            platforms = self.macos_platforms()
        elif os_name == "windows":
            platforms = [WINDOWS]
        else:
            platforms = [platform or LINUX_X86]
        if manager == "conda":
            variant = conda_variant(parsed)
        else:
            variant = command_variant(parsed) or ""
            if not variant:
                if os_name == "macos":
                    variant = "default"
                elif os_name == "windows":
                    variant = "cpu"  # PyPI's Windows wheel is the CPU build
                elif key.startswith("cuda") and self.pypi_default:
                    variant = self.pypi_default
                else:
                    raise BuildError(f"{self.torch}: no variant for {command!r}")
        anomaly = self._pin_anomaly(parsed, manager, [])
        form = pip_form(parsed, variant) if manager == "pip" else conda_form(parsed)
        superseded = None
        for target in platforms:
            existing = (self.pip if manager == "pip" else self.conda).get((variant, target))
            if existing and any(existing[k] != v for k, v in form.items()):
                superseded = (
                    f"differs from the {ORIGINS[existing['origin']]} form for {target}, "
                    "which dlready follows"
                )
        self.add_published(
            source=SRC_START,
            manager=manager,
            label=f"{os_name}/{manager}/{key}",
            command=command,
            platforms=platforms,
            variant=variant,
            anomaly=anomaly,
            superseded=superseded,
        )
        if anomaly:
            return
        for target in platforms:
            if manager == "pip":
                self.add_pip(variant, target, form, SRC_START)
            else:
                self.add_conda(variant, target, form, SRC_START)

    def read_published_elsewhere(self) -> None:
        data = self.r.get("commands_published_elsewhere")
        if not data:
            return
        for key, command in data.items():
            if key == "source":
                continue
            parsed = parse_install_command(command)
            variant = command_variant(parsed) or self.pypi_default or ""
            self.add_published(
                source=data["source"],
                manager="pip",
                label=key,
                command=command,
                platforms=[LINUX_X86],
                variant=variant,
            )

    def read_convention(self) -> None:
        """Releases without a previous-versions page: every listed variant by convention."""
        if self.r.get("commands_previous_versions_page") or self.older_than("2.1.0"):
            return
        for raw in self.r["cuda_variants_pip"]:
            variant, note = strip_unconfirmed(raw)
            if note:
                self.variant_notes[variant] = f"matrix.json lists {variant} as UNCONFIRMED"
            form = {
                "flag": "--index-url",
                "url": f"{INDEX_BASE}/{variant}",
                "local": [],
                "exact_equality": [],
            }
            for platform in (LINUX_X86, WINDOWS):
                self.add_pip(variant, platform, form, SRC_CONVENTION)
        for raw in self.r["rocm_variants_pip_linux_only"]:
            variant, _ = strip_unconfirmed(raw)
            form = {
                "flag": "--index-url",
                "url": f"{INDEX_BASE}/{variant}",
                "local": [],
                "exact_equality": [],
            }
            self.add_pip(variant, LINUX_X86, form, SRC_CONVENTION)
        if self.r.get("cpu_wheel_index"):
            form = {
                "flag": "--index-url",
                "url": f"{INDEX_BASE}/cpu",
                "local": [],
                "exact_equality": [],
            }
            for platform in (LINUX_X86, WINDOWS):
                self.add_pip("cpu", platform, form, SRC_CONVENTION)
        for platform in self.macos_platforms():
            self.add_pip(
                "default",
                platform,
                {"flag": None, "url": None, "local": [], "exact_equality": []},
                SRC_CONVENTION,
            )

    def read_aarch64(self) -> None:
        """Linux aarch64 wheels, from matrix.json platform_notes.linux_aarch64."""
        if self.is_lts:
            return
        note = self.matrix["platform_notes"]["linux_aarch64"]
        source = SRC_AARCH64
        ranges = re.findall(r"(\d+\.\d+)(?:-(\d+\.\d+))? \((cu[0-9/cu ]+?)(?: only)?\)", note)
        if not ranges:
            raise BuildError("cannot read the aarch64 variant ranges")
        minor = ".".join(self.torch.split(".")[:2])
        for first, last, variants in ranges:
            last = last or first
            if compare_numeric(first, minor) <= 0 <= compare_numeric(last, minor):
                for variant in variants.split("/"):
                    form = {
                        "flag": "--index-url",
                        "url": f"{INDEX_BASE}/{variant}",
                        "local": [],
                        "exact_equality": [],
                    }
                    self.add_pip(variant.strip(), LINUX_ARM, form, source)
        pypi_cuda = re.search(
            r"since (\d+\.\d+) the PyPI aarch64 wheel is the CUDA (\d+\.\d+)", note
        )
        if pypi_cuda and not self.older_than(pypi_cuda.group(1) + ".0"):
            form = {
                "flag": "--index-url",
                "url": f"{INDEX_BASE}/cpu",
                "local": [],
                "exact_equality": [],
            }
            self.add_pip("cpu", LINUX_ARM, form, source)
            self.pip[("cpu", LINUX_ARM)]["unconfirmed"] = [
                "aarch64 CPU wheels on the download.pytorch.org cpu index: UNCONFIRMED (the "
                "reference says PyPI's aarch64 wheel is the CUDA build from "
                f"{pypi_cuda.group(1)})"
            ]
        else:
            pypi_form: dict[str, Any] = {
                "flag": None,
                "url": None,
                "local": [],
                "exact_equality": [],
            }
            self.add_pip("cpu", LINUX_ARM, pypi_form, source)
            self.pip[("cpu", LINUX_ARM)]["unconfirmed"] = [
                "aarch64 CPU wheels on PyPI: the reference names no first release "
                "(UNCONFIRMED for this release)"
            ]

    def read_seed(self, seed_text: str) -> None:
        """The book's 2020 Windows command (SEED.md section 3-2)."""
        match = re.search(r"`(pip install torch===(\S+) [^`]*-f [^`]*)`", seed_text)
        if not match or match.group(2) != self.torch:
            return
        command = match.group(1)
        parsed = parse_install_command(command)
        variant = "cu102"
        self.add_published(
            source=ORIGINS[SRC_SEED],
            manager="pip",
            label="book (Windows, 2020)",
            command=command,
            platforms=[WINDOWS],
            variant=variant,
        )
        form = pip_form(parsed, variant)
        form["unconfirmed"] = [
            "the book's Windows command (SEED.md) is taken as the Windows CUDA 10.2 form of "
            f"{self.torch}: Windows cu102 wheels on torch_stable.html without a local version "
            "(UNCONFIRMED which build it installs)"
        ]
        key = (variant, WINDOWS)
        self.pip.pop(key, None)
        self.add_pip(variant, WINDOWS, form, SRC_SEED)

    def attach_arch_lists(self) -> None:
        lists: dict[tuple[str, str], dict[str, Any]] = {}
        for entry in self.r["cuda_arch_lists"]:
            platform = MATRIX_PLATFORM[entry["platform"]]
            for variant in entry["variant"].split("/"):
                lists[(variant.strip(), platform)] = entry
        for (variant, platform), form in self.pip.items():
            if variant_kind(variant) != "cuda":
                continue
            entry = lists.get((variant, platform))
            borrowed = None
            if entry is None and platform == WINDOWS:
                entry = lists.get((variant, LINUX_X86))
                borrowed = "the Linux x86_64 list (no Windows list in the reference): UNCONFIRMED"
            if entry is None:
                form["arch_list"] = None
                continue
            confidence = entry["confidence"]
            doubt = self.confidence_doubt(confidence)
            form["arch_list"] = {
                "list": entry["TORCH_CUDA_ARCH_LIST"],
                "confidence": confidence,
                "source": entry["source"],
                "unconfirmed": borrowed
                or (f"arch list confidence: {confidence}" if doubt else None),
            }

    def confidence_doubt(self, confidence: str) -> bool:
        """Whether an arch list's confidence text marks *this* release UNCONFIRMED.

        ``"high for 2.8-2.14; 2.6-2.7 UNCONFIRMED"`` doubts only 2.6 and 2.7; an UNCONFIRMED
        without a release range right before it doubts every release.
        """
        if "UNCONFIRMED" not in confidence:
            return False
        minor = ".".join(self.torch.split(".")[:2])
        ranged = re.findall(r"(\d+\.\d+)(?:-(\d+\.\d+))? UNCONFIRMED", confidence)
        if not ranged:
            return True
        return any(
            compare_numeric(first, minor) <= 0 <= compare_numeric(last or first, minor)
            for first, last in ranged
        )

    def finish(self) -> dict[str, Any]:
        r = self.r
        python = parse_python(r["python"], self.is_lts)
        notes = list(r.get("notes") or [])
        unconfirmed = [
            {"scope": note_scope(note), "text": note} for note in notes if "UNCONFIRMED" in note
        ]
        compat = r.get("release_compat_matrix") or {}
        experimental = [
            variant_of_cuda(v)
            for v in re.findall(r"CUDA (\d+\.\d+)", compat.get("experimental_cuda") or "")
        ]
        pip_entries = []
        for (variant, platform), form in sorted(
            self.pip.items(), key=lambda kv: (kv[0][1], variant_kind(kv[0][0]), kv[0][0])
        ):
            form = dict(form)
            notes_for_form = list(form.pop("unconfirmed", []))
            if variant in self.variant_notes:
                notes_for_form.append(self.variant_notes[variant])
            if platform in (MAC_ARM,) and self.older_than("1.12.0"):
                notes_for_form.append(
                    "macOS arm64 wheels and MPS before torch 1.12: UNCONFIRMED "
                    "(matrix.json platform_notes.macOS_arm64)"
                )
            form["unconfirmed"] = notes_for_form
            form["kind"] = variant_kind(variant)
            form["cuda"] = cuda_of_variant(variant)
            form["experimental"] = variant in experimental
            form.setdefault("arch_list", None)
            pip_entries.append(form)
        conda_entries = []
        for (_variant, platform), form in sorted(
            self.conda.items(), key=lambda kv: (kv[0][1], kv[0][0])
        ):
            form = dict(form)
            form.setdefault("unconfirmed", [])
            if platform == MAC_ARM:
                form["unconfirmed"] = [
                    *form["unconfirmed"],
                    "osx-arm64 conda packages on the pytorch channel: UNCONFIRMED (1.11.0 "
                    "Start-Locally data says the macOS conda binaries are x86_64 only)",
                ]
            conda_entries.append(form)
        for entry in self.published:
            dropped = [
                p
                for p in entry["platforms"]
                if (entry["manager"], entry["variant"], p) in self.removed
            ]
            if dropped:
                entry["platforms"] = [p for p in entry["platforms"] if p not in dropped]
                entry["dropped_platforms"] = dict.fromkeys(
                    dropped, "Start-Locally data: no longer available for Windows"
                )
        return {
            "torch": self.torch,
            "lts": self.is_lts,
            "release_date": r["release_date"],
            "versions": {"pip": self.versions("pip"), "conda": self.versions("conda")},
            "python": python,
            "pypi_default_cuda": {
                "linux-x86_64": self.pypi_default,
                "linux-aarch64": self.pypi_default_aarch64(),
                "note": self.pypi_default_note,
                "source": r.get("pypi_default_source"),
            },
            "experimental_variants": experimental,
            "pip": pip_entries,
            "conda": {
                "official": bool(r["official_conda"]),
                "note": r.get("conda_note"),
                "entries": conda_entries,
            },
            "unconfirmed": unconfirmed,
            "notes": notes,
        }


def conda_form(parsed: ParsedCommand) -> dict[str, Any]:
    """Conda form: the CUDA package spec and channels (``pytorch::pytorch`` counts as -c)."""
    channels = list(parsed.channels)
    for req in parsed.requirements:
        if req.channel and req.channel not in channels:
            channels.insert(0, req.channel)
    cuda_package = next((extra for extra in parsed.conda_extras), None)
    return {"cuda_package": cuda_package, "channels": channels}


def build_cuda_drivers(drivers: dict[str, Any], variants: set[str]) -> dict[str, Any]:
    """Driver floors per CUDA wheel variant (cuda_driver.json)."""
    per_variant = drivers["pytorch_wheel_variants"]
    toolkits = {entry["cuda"]: entry for entry in drivers["toolkit_driver_minimums"]}
    minor_source = drivers["minor_version_compatibility"]["current_nvidia_table"]["source"]
    result: dict[str, Any] = {}
    for variant in sorted(variants, key=lambda v: numeric_key(cuda_of_variant(v) or "0")):
        cuda = cuda_of_variant(variant)
        if cuda is None:
            continue
        if variant in per_variant:
            entry = per_variant[variant]
            min_linux, min_linux_note = driver_value(entry["minor_version_compat_min_linux"])
            min_win, min_win_note = driver_value(entry["minor_version_compat_min_windows"])
            full_linux, full_linux_note = driver_value(entry["toolkit_driver_GA_linux"])
            full_win, full_win_note = driver_value(entry["toolkit_driver_GA_windows"])
            source = f"cuda_driver.json pytorch_wheel_variants.{variant} (minimums: {minor_source})"
        else:
            toolkit = toolkits.get(cuda)
            if toolkit is None:
                raise BuildError(f"no driver data for {variant}")
            ga = [row for row in toolkit["releases"] if "GA" in row["release"]] or [
                toolkit["releases"][-1]
            ]
            full_linux, full_linux_note = driver_value(ga[0]["linux_x86_64"])
            full_win, full_win_note = driver_value(ga[0]["windows_x86_64"])
            # Before CUDA 11 there is no minor-version compatibility: the toolkit's own
            # driver is the floor (cuda_driver.json precise_values_commonly_cited.10.2).
            min_linux, min_linux_note = full_linux, full_linux_note
            min_win, min_win_note = full_win, full_win_note
            source = f"cuda_driver.json toolkit_driver_minimums {cuda} ({ga[0]['release']}): {toolkit['source']}"
        linux_notes = [n for n in (min_linux_note, full_linux_note) if n]
        windows_notes = [n for n in (min_win_note, full_win_note) if n]
        result[variant] = {
            "cuda": cuda,
            "min_driver": {"linux": min_linux, "windows": min_win},
            "full_driver": {"linux": full_linux, "windows": full_win},
            "notes": {"linux": linux_notes, "windows": windows_notes},
            "unconfirmed": {
                "linux": [n for n in linux_notes if "UNCONFIRMED" in n],
                "windows": [n for n in windows_notes if "UNCONFIRMED" in n],
            },
            "source": source,
        }
    return result


def build_cuda_major_drivers(drivers: dict[str, Any]) -> dict[str, Any]:
    """The driver floor of each CUDA major (NVIDIA's minor-version-compatibility minimum):
    what a build of that major needs at least when its own toolkit's driver is not known."""
    precise = drivers["minor_version_compatibility"]["precise_values_commonly_cited"]
    result: dict[str, Any] = {}
    for series, entry in sorted(precise.items(), key=lambda item: numeric_key(item[0][:-2])):
        if not series.endswith(".x"):
            continue  # before CUDA 11 there is no minor-version compatibility
        min_linux, linux_note = driver_value(entry["linux_x86_64"])
        min_win, win_note = driver_value(entry["windows_x86_64"])
        linux_notes = [linux_note] if linux_note else []
        windows_notes = [win_note] if win_note else []
        result[series[:-2]] = {
            "min_driver": {"linux": min_linux, "windows": min_win},
            "notes": {"linux": linux_notes, "windows": windows_notes},
            "unconfirmed": {
                "linux": [n for n in linux_notes if "UNCONFIRMED" in n],
                "windows": [n for n in windows_notes if "UNCONFIRMED" in n],
            },
            "source": f"cuda_driver.json minor_version_compatibility.precise_values_commonly_cited"
            f".{series}: {entry['source']}",
        }
    return result


def merge_duplicates(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One golden entry per distinct command (Start-Locally repeats macOS lines per button)."""
    merged: dict[tuple[Any, ...], dict[str, Any]] = {}
    for entry in entries:
        key = (
            entry["source"],
            entry["manager"],
            entry["command"],
            tuple(entry["platforms"]),
            entry["variant"],
        )
        if key in merged:
            merged[key]["labels"].append(entry["label"])
            continue
        first = dict(entry)
        first["labels"] = [first.pop("label")]
        merged[key] = first
    return list(merged.values())


def build(reference: Path, seed: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """Build the table and the golden list of published commands."""
    matrix = json.loads((reference / "matrix.json").read_text())
    drivers = json.loads((reference / "cuda_driver.json").read_text())
    sources_md = (reference / "SOURCES.md").read_text()
    arch_md = (reference / "ARCH-COMPAT.md").read_text()
    seed_text = seed.read_text() if seed.exists() else ""
    date = re.search(r"research date (\d{4}-\d{2}-\d{2})", sources_md)
    if not date:
        raise BuildError("SOURCES.md names no research date")
    releases = []
    published: list[dict[str, Any]] = []
    variants: set[str] = set()
    for release in matrix["releases"]:
        builder = ReleaseBuilder(release, matrix)
        builder.read_previous_versions_page()
        # The convention (explicit --index-url for every variant) outranks Start-Locally's
        # plain-PyPI line for the default CUDA build: same wheel, but stated explicitly.
        builder.read_convention()
        builder.read_start_locally()
        builder.read_published_elsewhere()
        builder.read_aarch64()
        builder.read_seed(seed_text)
        builder.attach_arch_lists()
        entry = builder.finish()
        releases.append(entry)
        published.extend(merge_duplicates(builder.published))
        variants.update(form["variant"] for form in entry["pip"])
        variants.update(form["variant"] for form in entry["conda"]["entries"])
    releases.sort(key=lambda rel: numeric_key(rel["torch"]), reverse=True)
    families = drivers["compute_capability"]["sm_to_gpu_family"]
    arch_rules = re.findall(r"^\d\. (.+?)(?=^\d\. |\Z)", arch_md, re.MULTILINE | re.DOTALL)
    table = {
        "schema_version": SCHEMA_VERSION,
        "checked_on": date.group(1),
        "generated_by": "tools/build_compat_table.py",
        "how_to_update": (
            "Refresh shared/reference/pytorch/*, run `python tools/build_compat_table.py`, "
            "review the diff, run the tests (docs/install-cmd.md)."
        ),
        "sources": {
            "matrix": "shared/reference/pytorch/matrix.json: " + matrix["title"],
            "cuda_driver": "shared/reference/pytorch/cuda_driver.json: " + drivers["title"],
            "arch_rules": "shared/reference/pytorch/ARCH-COMPAT.md (CUDA C++ Programming Guide, "
            "Binary Compatibility)",
            "sources": "shared/reference/pytorch/SOURCES.md (research date " + date.group(1) + ")",
            "seed": "shared/SEED.md (the book's 2020 Windows command)",
        },
        "public_sources": PUBLIC_SOURCES,
        "index_base_url": INDEX_BASE,
        "origins": ORIGINS,
        "arch_rules": [" ".join(rule.split()) for rule in arch_rules],
        "conda": {
            "last_official_release": matrix["conda_status"]["last_official_conda_release"].split()[
                0
            ],
            "evidence": matrix["conda_status"]["evidence"],
            "community": {
                "command": "conda install -c conda-forge pytorch torchvision",
                "label": "community conda-forge build, not from pytorch.org; versions and CUDA "
                "build chosen by conda-forge (UNCONFIRMED for any given release)",
                "source": matrix["conda_status"]["conda_generations"]["2.6.0+"],
            },
        },
        "platforms": {
            "macos_x86_64_last_release": ReleaseBuilder(
                matrix["releases"][0], matrix
            ).last_intel_mac(),
            "macos_x86_64_source": "matrix.json platform_notes.macOS_x86_64: "
            + matrix["platform_notes"]["macOS_x86_64"],
            "macos_arm64_source": "matrix.json platform_notes.macOS_arm64: "
            + matrix["platform_notes"]["macOS_arm64"],
            "mps_first_release": "1.12.0",
            "mps_note": "MPS from torch 1.12 (UNCONFIRMED in the reference); Start-Locally notes "
            '"MPS acceleration is available on MacOS 12.3+"',
            "windows_source": "matrix.json platform_notes.windows_x86_64: "
            + matrix["platform_notes"]["windows_x86_64"],
            "windows_arm64": matrix["platform_notes"]["windows_arm64"],
            "linux_aarch64_source": "matrix.json platform_notes.linux_aarch64: "
            + matrix["platform_notes"]["linux_aarch64"],
            "jetson_note": "pytorch.org aarch64 wheels are SBSA (server ARM) builds; Jetson "
            "modules normally use NVIDIA's JetPack wheels (UNCONFIRMED which index) — "
            "matrix.json platform_notes.linux_aarch64",
            # cuda_driver.json sm_to_gpu_family: "Jetson Nano=5.3", "Xavier=7.2", "sm_87":
            # "Ampere Jetson Orin". Thor (sm_110) is left out: the CUDA 13 SBSA wheels carry it.
            "jetson_compute_capabilities": ["5.3", "7.2", "8.7"],
            "jetson_source": "cuda_driver.json compute_capability.sm_to_gpu_family",
        },
        "gpu_families": families,
        "cuda_drivers": build_cuda_drivers(drivers, variants),
        "cuda_major_drivers": build_cuda_major_drivers(drivers),
        "releases": releases,
    }
    golden = {
        "generated_by": "tools/build_compat_table.py",
        "checked_on": date.group(1),
        "note": "Every published install command of the reference data, with the platforms "
        "and variant it is meant for. `anomaly` names why a command cannot be reproduced.",
        "commands": published,
    }
    return table, golden


def dump(document: Any) -> str:
    """The committed text form: sorted keys, two-space indent, trailing newline."""
    return json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reference", type=Path, default=DEFAULT_REFERENCE)
    parser.add_argument("--seed", type=Path, default=DEFAULT_SEED)
    parser.add_argument("--table", type=Path, default=TABLE_PATH)
    parser.add_argument("--golden", type=Path, default=GOLDEN_PATH)
    parser.add_argument("--check", action="store_true", help="exit 1 if the outputs are stale")
    args = parser.parse_args(argv)
    try:
        table, golden = build(args.reference, args.seed)
    except (BuildError, OSError, KeyError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    outputs = ((args.table, dump(table)), (args.golden, dump(golden)))
    if args.check:
        stale = [
            str(path) for path, text in outputs if not path.exists() or path.read_text() != text
        ]
        for path in stale:
            print(f"stale: {path}", file=sys.stderr)
        return 1 if stale else 0
    for path, text in outputs:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {path} ({len(text)} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
