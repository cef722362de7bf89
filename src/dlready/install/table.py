"""The PyTorch compatibility table shipped as package data (``dlready/data/pytorch_compat.json``).

Built by ``tools/build_compat_table.py`` from the researched reference data; every fact keeps
its source, and anything the research could not confirm keeps its UNCONFIRMED marking so the
planner can warn when a plan depends on it. Loading is cached: the file is parsed once per
process.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from msgspec import Struct, field
from msgspec.structs import replace

from dlready.install.versions import cuda_of_variant, numeric_key
from dlready.package_data import read_data_text

TABLE_RESOURCE = "pytorch_compat.json"
SUPPORTED_SCHEMA = 1

LINUX_X86 = "linux-x86_64"
LINUX_ARM = "linux-aarch64"
WINDOWS_X86 = "windows-x86_64"
MACOS_ARM = "macos-arm64"
MACOS_X86 = "macos-x86_64"
PLATFORMS = (LINUX_X86, LINUX_ARM, WINDOWS_X86, MACOS_ARM, MACOS_X86)


class CompatTableError(RuntimeError):
    """The packaged table is missing or does not match this version of dlready."""


class ArchList(Struct, frozen=True):
    """A wheel variant's ``TORCH_CUDA_ARCH_LIST`` and how sure the reference is of it."""

    arch_list: str
    confidence: str
    source: str
    unconfirmed: str | None


class PipForm(Struct, frozen=True):
    """How one variant of one release is installed with pip on one platform."""

    variant: str
    platform: str
    kind: str
    cuda: str | None
    flag: str | None
    """``--index-url``, ``--extra-index-url``, ``-f`` or None (plain PyPI)."""
    url: str | None
    local: tuple[str, ...]
    """Packages whose published pin carries ``+<variant>`` (``torch==1.7.1+cu110``)."""
    exact_equality: tuple[str, ...]
    """Packages published with pip's ``===`` operator (the book's Windows command)."""
    origin: str
    experimental: bool
    arch: ArchList | None
    unconfirmed: tuple[str, ...]


class CondaForm(Struct, frozen=True):
    """How one variant of one release is installed with conda on one platform."""

    variant: str
    platform: str
    cuda_package: str | None
    """``pytorch-cuda=12.1``, ``cudatoolkit=10.2``, ``cpuonly`` or None (macOS)."""
    channels: tuple[str, ...]
    origin: str
    unconfirmed: tuple[str, ...]


class PythonRange(Struct, frozen=True):
    """Python versions a release ships wheels for."""

    min: str
    max: str
    experimental: tuple[str, ...]
    text: str
    source: str


class ReleaseNote(Struct, frozen=True):
    """A release note the research marked UNCONFIRMED, with the plans it concerns."""

    scope: str
    """``all``, ``conda``, ``rocm``, ``torchaudio`` or ``python-experimental``."""
    text: str


class Release(Struct, frozen=True):
    """One torch release and everything needed to install it."""

    torch: str
    lts: bool
    release_date: str
    pip_versions: dict[str, str]
    conda_versions: dict[str, str]
    python: PythonRange
    pypi_default_cuda: str | None
    """The CUDA build plain ``pip install torch`` gives on Linux x86_64."""
    pypi_default_cuda_aarch64: str | None
    """The same on Linux aarch64; None means the CPU build."""
    pypi_default_note: str | None
    experimental_variants: tuple[str, ...]
    pip: tuple[PipForm, ...]
    conda_official: bool
    conda_note: str | None
    conda: tuple[CondaForm, ...]
    unconfirmed: tuple[ReleaseNote, ...]
    notes: tuple[str, ...]

    def pip_forms(self, platform: str) -> tuple[PipForm, ...]:
        """Every pip variant of this release on one platform."""
        return tuple(form for form in self.pip if form.platform == platform)

    def pip_form(self, variant: str, platform: str) -> PipForm | None:
        """One variant on one platform, if published."""
        for form in self.pip:
            if form.variant == variant and form.platform == platform:
                return form
        return None

    def conda_form(self, variant: str, platform: str) -> CondaForm | None:
        """One conda variant on one platform, if published."""
        for form in self.conda:
            if form.variant == variant and form.platform == platform:
                return form
        return None

    def versions(self, manager: str) -> dict[str, str]:
        """Package versions for pip/uv or conda (they differ for 2.0.0)."""
        return self.conda_versions if manager == "conda" else self.pip_versions

    @property
    def key(self) -> tuple[int, ...]:
        """Sort key: newer releases sort higher."""
        return numeric_key(self.torch)


class DriverFloor(Struct, frozen=True):
    """Driver needed by one CUDA wheel variant, on Linux and Windows."""

    variant: str
    cuda: str
    min_linux: str | None
    """Hard floor: below it the wheel cannot run (minor-version compatibility minimum)."""
    min_windows: str | None
    full_linux: str | None
    """The toolkit's own driver: at or above it, no minor-version-compatibility limits."""
    full_windows: str | None
    notes_linux: tuple[str, ...]
    notes_windows: tuple[str, ...]
    unconfirmed_linux: tuple[str, ...]
    unconfirmed_windows: tuple[str, ...]
    source: str
    from_major: bool = False
    """True: the variant's own driver minimum is not in the table; the floor is its CUDA
    major's minor-version-compatibility minimum (no build of that major runs below it)."""

    def unconfirmed(self, windows: bool) -> tuple[str, ...]:
        """UNCONFIRMED notes for Windows driver numbers (Windows, WSL2) or Linux ones."""
        return self.unconfirmed_windows if windows else self.unconfirmed_linux


class PublicSource(Struct, frozen=True):
    """A public page users can check a kind of fact against."""

    title: str
    url: str


class CompatTable(Struct, frozen=True):
    """The whole table: releases newest first, driver floors, conda and platform facts."""

    checked_on: str
    sources: dict[str, str]
    origins: dict[str, str]
    index_base_url: str
    arch_rules: tuple[str, ...]
    releases: tuple[Release, ...]
    drivers: dict[str, DriverFloor]
    """Driver floors of the CUDA variants the releases have (their toolkit's own numbers)."""
    last_official_conda: str
    conda_community_command: str
    conda_community_label: str
    macos_x86_last_release: str
    mps_first_release: str
    windows_arm64_note: str
    jetson_note: str
    jetson_compute_capabilities: tuple[str, ...]
    gpu_families: dict[str, str] = field(default_factory=dict)
    cuda_major_drivers: dict[str, DriverFloor] = field(default_factory=dict)
    """CUDA major (``"13"``) -> NVIDIA's minor-version-compatibility minimum for every
    toolkit of that major (``variant`` and ``cuda`` are ``"13.x"``)."""
    public_sources: dict[str, PublicSource] = field(default_factory=dict)
    """``commands``, ``python``, ``drivers``, ``arch_lists``, ``arch_rules``, ``conda``... ->
    the public page behind that kind of fact (shown to users with ``checked_on``)."""

    def release(self, torch: str) -> Release | None:
        """The release with exactly this version, if the table has it."""
        for release in self.releases:
            if release.torch == torch:
                return release
        return None

    @property
    def newest(self) -> Release:
        """The newest release in the table."""
        return self.releases[0]

    def driver_floor(self, variant: str) -> DriverFloor | None:
        """The driver floor of a CUDA variant: its own, else (a variant no release has, such
        as a nightly's newer CUDA) its CUDA major's minimum, never below it; None when
        neither is known, which no caller may take as a pass."""
        own = self.drivers.get(variant)
        if own is not None:
            return own
        cuda = cuda_of_variant(variant)
        major = self.cuda_major_drivers.get(cuda.split(".")[0]) if cuda else None
        if cuda is None or major is None:
            return None
        note = (
            f"CUDA {cuda}'s own driver minimum is not in dlready's data: the CUDA "
            f"{major.cuda} minimum for minor-version compatibility applies"
        )
        return replace(
            major,
            variant=variant,
            cuda=cuda,
            notes_linux=(note, *major.notes_linux),
            notes_windows=(note, *major.notes_windows),
            from_major=True,
        )


def _arch(data: dict[str, Any] | None) -> ArchList | None:
    if data is None:
        return None
    return ArchList(
        arch_list=data["list"],
        confidence=data["confidence"],
        source=data["source"],
        unconfirmed=data["unconfirmed"],
    )


def _release(data: dict[str, Any]) -> Release:
    python = data["python"]
    return Release(
        torch=data["torch"],
        lts=data["lts"],
        release_date=data["release_date"],
        pip_versions=dict(data["versions"]["pip"]),
        conda_versions=dict(data["versions"]["conda"]),
        python=PythonRange(
            min=python["min"],
            max=python["max"],
            experimental=tuple(python["experimental"]),
            text=python["text"],
            source=python["source"],
        ),
        pypi_default_cuda=data["pypi_default_cuda"]["linux-x86_64"],
        pypi_default_cuda_aarch64=data["pypi_default_cuda"]["linux-aarch64"],
        pypi_default_note=data["pypi_default_cuda"]["note"],
        experimental_variants=tuple(data["experimental_variants"]),
        pip=tuple(
            PipForm(
                variant=form["variant"],
                platform=form["platform"],
                kind=form["kind"],
                cuda=form["cuda"],
                flag=form["flag"],
                url=form["url"],
                local=tuple(form["local"]),
                exact_equality=tuple(form["exact_equality"]),
                origin=form["origin"],
                experimental=form["experimental"],
                arch=_arch(form["arch_list"]),
                unconfirmed=tuple(form["unconfirmed"]),
            )
            for form in data["pip"]
        ),
        conda_official=data["conda"]["official"],
        conda_note=data["conda"]["note"],
        conda=tuple(
            CondaForm(
                variant=form["variant"],
                platform=form["platform"],
                cuda_package=form["cuda_package"],
                channels=tuple(form["channels"]),
                origin=form["origin"],
                unconfirmed=tuple(form["unconfirmed"]),
            )
            for form in data["conda"]["entries"]
        ),
        unconfirmed=tuple(ReleaseNote(n["scope"], n["text"]) for n in data["unconfirmed"]),
        notes=tuple(data["notes"]),
    )


def _driver_floor(variant: str, cuda: str, entry: dict[str, Any]) -> DriverFloor:
    full = entry.get("full_driver", {"linux": None, "windows": None})
    return DriverFloor(
        variant=variant,
        cuda=cuda,
        min_linux=entry["min_driver"]["linux"],
        min_windows=entry["min_driver"]["windows"],
        full_linux=full["linux"],
        full_windows=full["windows"],
        notes_linux=tuple(entry["notes"]["linux"]),
        notes_windows=tuple(entry["notes"]["windows"]),
        unconfirmed_linux=tuple(entry["unconfirmed"]["linux"]),
        unconfirmed_windows=tuple(entry["unconfirmed"]["windows"]),
        source=entry["source"],
    )


def table_from_jsonable(data: dict[str, Any]) -> CompatTable:
    """Build the typed table from its JSON document.

    Raises:
        CompatTableError: on an unknown schema version or a malformed document.
    """
    if data.get("schema_version") != SUPPORTED_SCHEMA:
        raise CompatTableError(
            f"compat table schema {data.get('schema_version')!r} is not {SUPPORTED_SCHEMA}"
        )
    try:
        releases = tuple(
            sorted((_release(r) for r in data["releases"]), key=lambda r: r.key, reverse=True)
        )
        drivers = {
            variant: _driver_floor(variant, entry["cuda"], entry)
            for variant, entry in data["cuda_drivers"].items()
        }
        major_drivers = {
            major: _driver_floor(f"{major}.x", f"{major}.x", entry)
            for major, entry in data.get("cuda_major_drivers", {}).items()
        }
        platforms = data["platforms"]
        return CompatTable(
            checked_on=data["checked_on"],
            sources=dict(data["sources"]),
            origins=dict(data["origins"]),
            index_base_url=data["index_base_url"],
            arch_rules=tuple(data["arch_rules"]),
            releases=releases,
            drivers=drivers,
            cuda_major_drivers=major_drivers,
            last_official_conda=data["conda"]["last_official_release"],
            conda_community_command=data["conda"]["community"]["command"],
            conda_community_label=data["conda"]["community"]["label"],
            macos_x86_last_release=platforms["macos_x86_64_last_release"],
            mps_first_release=platforms["mps_first_release"],
            windows_arm64_note=platforms["windows_arm64"],
            jetson_note=platforms["jetson_note"],
            jetson_compute_capabilities=tuple(platforms["jetson_compute_capabilities"]),
            gpu_families=dict(data["gpu_families"]),
            public_sources={
                topic: PublicSource(entry["title"], entry["url"])
                for topic, entry in data.get("public_sources", {}).items()
            },
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise CompatTableError(f"malformed compat table: {exc!r}") from exc


@functools.cache
def load_compat_table() -> CompatTable:
    """The packaged table, parsed once per process.

    Raises:
        CompatTableError: if the package data is missing or malformed.
    """
    try:
        text = read_data_text(TABLE_RESOURCE)
    except (FileNotFoundError, ModuleNotFoundError, OSError) as exc:
        raise CompatTableError(f"cannot read the packaged compat table: {exc}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CompatTableError(f"the packaged compat table is not JSON: {exc}") from exc
    return table_from_jsonable(data)
