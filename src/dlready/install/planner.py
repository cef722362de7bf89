"""From machine facts and the user's wishes to one install plan (pure, table-driven).

Rules, in order (docs/install-cmd.md lists them with examples):

1. Release: the pinned ``--torch`` release, else the newest non-LTS release whose stable
   Python range contains this Python and that ships wheels for this platform.
2. Accelerator: a given ``--accelerator`` (or one implied by ``--variant``) must exist on the
   platform, else the request is impossible; a detected one that the platform cannot use
   falls back (macOS -> MPS/CPU wheels, ROCm off Linux x86_64 -> CPU) with a warning.
3. NVIDIA: among the release's CUDA variants for this platform, drop those whose arch list
   misses a GPU (compute capability first) or whose driver floor is above the driver; rank the
   rest by coverage (native > PTX only > arch list unknown), then full driver support over
   minor-version compatibility, then stable over experimental, then the newest CUDA. When the
   driver is unknown, the release's default CUDA build ranks first. No fit: a
   :class:`PlanError` saying what would fix it (a newer driver, an older torch, the CPU build).
4. AMD on Linux x86_64: the release's newest ROCm variant. macOS: the default wheels (MPS on
   Apple silicon). No GPU on Linux/Windows: the CPU index, never the multi-GB CUDA default.
5. conda: only releases with official conda packages (up to 2.5.1); after that the request is
   impossible and the error offers the pip command and the community conda-forge package.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from dlready.install.archs import Coverage, arch_labels, coverage, parse_arch_list
from dlready.install.errors import PlanError
from dlready.install.facts import (
    GIVEN,
    IMPLIED,
    UNSUPPORTED_OS_DETAIL,
    MachineFacts,
    nearest_choice,
)
from dlready.install.table import (
    LINUX_ARM,
    LINUX_X86,
    MACOS_ARM,
    MACOS_X86,
    WINDOWS_X86,
    CompatTable,
    CondaForm,
    PipForm,
    Release,
    load_compat_table,
)
from dlready.install.versions import (
    compare_numeric,
    compute_capability_key,
    is_numeric_version,
    numeric_key,
    python_key,
    variant_kind,
    variant_sort_key,
)

MANAGERS = ("pip", "uv", "conda")
PACKAGE_ORDER = ("torch", "torchvision", "torchaudio")
SUPPORTED_PLATFORMS = (LINUX_X86, LINUX_ARM, WINDOWS_X86, MACOS_ARM, MACOS_X86)
UV_SAME_PINS_REASON = (
    "uv: the pins and index of the published pip command (+variant local versions only where "
    "it pins them)"
)


@dataclass(frozen=True)
class InstallWishes:
    """What the user asked for; None means "choose for me"."""

    torch: str | None = None
    variant: str | None = None
    manager: str = "pip"
    packages: tuple[str, ...] | None = None
    pin_local_versions: bool = False
    """Pin ``+variant`` local versions where the index has them, so an installed build of the
    same version (``2.11.0+cpu``) does not satisfy the request (used for fix commands)."""


@dataclass(frozen=True)
class PinnedPackage:
    """One package on the command line."""

    name: str
    """The package name as installed by the manager (conda: ``pytorch``)."""
    version: str
    local: str | None
    operator: str

    @property
    def spec(self) -> str:
        """``torch==2.5.1+cu121``."""
        local = f"+{self.local}" if self.local else ""
        return f"{self.name}{self.operator}{self.version}{local}"

    def to_jsonable(self) -> dict[str, Any]:
        """``{"name", "version", "local", "operator", "spec"}``."""
        return {
            "name": self.name,
            "version": self.version,
            "local": self.local,
            "operator": self.operator,
            "spec": self.spec,
        }


@dataclass(frozen=True)
class Candidate:
    """One variant the planner considered, and its verdict."""

    variant: str
    usable: bool
    chosen: bool
    coverage: str
    """``native``, ``ptx``, ``unknown`` or ``none`` (worst over all GPUs)."""
    driver: str
    """``full``, ``minor-compat``, ``too-old``, ``unknown`` or ``n/a``."""
    verdict: str

    def to_jsonable(self) -> dict[str, Any]:
        """All fields as JSON."""
        return {
            "variant": self.variant,
            "usable": self.usable,
            "chosen": self.chosen,
            "coverage": self.coverage,
            "driver": self.driver,
            "verdict": self.verdict,
        }


@dataclass(frozen=True)
class InstallPlan:
    """The one install command for a machine, and why."""

    command_line: str
    manager: str
    torch: str
    variant: str
    platform: str
    packages: tuple[PinnedPackage, ...]
    index_url: str | None
    index_flag: str | None
    channels: tuple[str, ...]
    conda_extras: tuple[str, ...]
    warnings: list[str]
    reasons: list[str]
    facts: MachineFacts
    candidates: tuple[Candidate, ...] = ()
    sources: list[str] = field(default_factory=list)
    table_checked_on: str = ""

    def to_jsonable(self) -> dict[str, Any]:
        """The plan as the ``data`` of the ``--json`` envelope (docs/install-cmd.md)."""
        return {
            "command_line": self.command_line,
            "manager": self.manager,
            "torch": self.torch,
            "variant": self.variant,
            "platform": self.platform,
            "packages": [package.to_jsonable() for package in self.packages],
            "index_url": self.index_url,
            "index_flag": self.index_flag,
            "channels": list(self.channels),
            "conda_extras": list(self.conda_extras),
            "warnings": list(self.warnings),
            "reasons": list(self.reasons),
            "facts": self.facts.to_jsonable(),
            "candidates": [candidate.to_jsonable() for candidate in self.candidates],
            "sources": list(self.sources),
            "table_checked_on": self.table_checked_on,
        }


# --- driver and arch evaluation -------------------------------------------------------------


@dataclass(frozen=True)
class _Evaluation:
    form: PipForm
    coverage: Coverage | None
    """None: the arch list is unknown or no compute capability is known."""
    driver: str
    required_min: str | None
    required_full: str | None
    uncovered: tuple[str, ...]
    ptx_only: tuple[str, ...]
    jetson: tuple[str, ...] = ()
    """Jetson compute capabilities (on linux-aarch64) this wheel's arch list does not name."""

    @property
    def usable(self) -> bool:
        return self.driver != "too-old" and self.coverage is not Coverage.NONE

    def coverage_label(self) -> str:
        if self.coverage is None:
            return "unknown"
        return {Coverage.NATIVE: "native", Coverage.PTX: "ptx", Coverage.NONE: "none"}[
            self.coverage
        ]


def _windows_numbering(facts: MachineFacts, platform: str) -> bool:
    """Windows drivers have their own numbers; WSL2 reports the Windows driver."""
    return platform == WINDOWS_X86 or facts.is_wsl.value is True


def is_jetson(compute_capability: str, platform: str | None, table: CompatTable) -> bool:
    """A Jetson module: an NVIDIA GPU on linux-aarch64 with a Jetson compute capability."""
    return platform == LINUX_ARM and compute_capability in table.jetson_compute_capabilities


def gpu_coverage(
    arch_list: str, compute_capability: str, platform: str | None, table: CompatTable
) -> Coverage:
    """How a wheel with ``arch_list`` serves one GPU, with the Jetson rule on top of the
    ``ARCH-COMPAT.md`` rules: pytorch.org's linux-aarch64 CUDA wheels are SBSA (server ARM)
    builds, and the reference says they contain no sm_87 (matrix.json platform_notes
    .linux_aarch64), so they serve a Jetson module only if their arch list names its compute
    capability exactly (no credit for sm_80 cubins)."""
    if is_jetson(compute_capability, platform, table):
        wanted = compute_capability_key(compute_capability)
        named = any((t.major, t.minor) == wanted for t in parse_arch_list(arch_list))
        return Coverage.NATIVE if named else Coverage.NONE
    return coverage(arch_list, compute_capability)


def _evaluate(form: PipForm, facts: MachineFacts, table: CompatTable, platform: str) -> _Evaluation:
    capabilities = facts.compute_capabilities.value or ()
    cover: Coverage | None = None
    uncovered: list[str] = []
    ptx_only: list[str] = []
    if form.arch is not None and capabilities:
        levels = []
        for cc in capabilities:
            level = gpu_coverage(form.arch.arch_list, cc, platform, table)
            levels.append(level)
            if level is Coverage.NONE:
                uncovered.append(cc)
            elif level is Coverage.PTX:
                ptx_only.append(cc)
        cover = min(levels)
    floor = table.drivers.get(form.variant)
    driver = facts.driver_version.value
    windows = _windows_numbering(facts, platform)
    required_min = required_full = None
    status = "unknown"
    if floor is not None:
        required_min = floor.min_windows if windows else floor.min_linux
        required_full = floor.full_windows if windows else floor.full_linux
    if driver and required_min:
        if compare_numeric(driver, required_min) < 0:
            status = "too-old"
        elif required_full and compare_numeric(driver, required_full) >= 0:
            status = "full"
        else:
            status = "minor-compat"
    elif driver and floor is None:
        status = "unknown"
    return _Evaluation(
        form=form,
        coverage=cover,
        driver=status,
        required_min=required_min,
        required_full=required_full,
        uncovered=tuple(uncovered),
        ptx_only=tuple(ptx_only),
        jetson=tuple(cc for cc in uncovered if is_jetson(cc, platform, table)),
    )


def _rank(evaluation: _Evaluation, release: Release, driver_known: bool) -> tuple[Any, ...]:
    cover_rank = {None: 0, Coverage.PTX: 1, Coverage.NATIVE: 2}.get(evaluation.coverage, -1)
    stable = not evaluation.form.experimental
    newest = variant_sort_key(evaluation.form.variant)
    if not driver_known:
        is_default = evaluation.form.variant == release.pypi_default_cuda
        return (cover_rank, is_default, stable, newest)
    driver_rank = {"full": 2, "minor-compat": 1}.get(evaluation.driver, 0)
    return (cover_rank, driver_rank, stable, newest)


def _verdict(evaluation: _Evaluation, driver: str | None) -> str:
    parts = []
    form = evaluation.form
    if evaluation.uncovered:
        parts.append(
            f"no kernels for sm_{'/sm_'.join(cc.replace('.', '') for cc in evaluation.uncovered)}"
        )
    elif evaluation.ptx_only:
        parts.append(
            f"PTX only for sm_{'/sm_'.join(cc.replace('.', '') for cc in evaluation.ptx_only)}"
        )
    elif evaluation.coverage is Coverage.NATIVE:
        parts.append("native kernels for every GPU")
    elif form.arch is None:
        parts.append("arch list unknown")
    else:
        parts.append("compute capability unknown")
    if evaluation.driver == "too-old":
        parts.append(f"needs driver >= {evaluation.required_min} (have {driver})")
    elif evaluation.driver == "minor-compat":
        parts.append(
            f"driver {driver} runs it through CUDA minor-version compatibility "
            f"(full support from {evaluation.required_full})"
        )
    elif evaluation.driver == "full":
        parts.append(f"driver {driver} >= {evaluation.required_full}")
    elif evaluation.required_min:
        parts.append(f"needs driver >= {evaluation.required_min}")
    if form.experimental:
        parts.append("experimental build")
    return "; ".join(parts)


# --- release selection ----------------------------------------------------------------------


def python_fits(release: Release, python: str) -> str | None:
    """Whether ``release`` has wheels for Python ``X.Y``: ``"stable"``, ``"experimental"``
    (allowed with a warning) or None."""
    key = python_key(python)
    if python_key(release.python.min) <= key <= python_key(release.python.max):
        return "stable"
    if python in release.python.experimental:
        return "experimental"
    return None


def _has_platform(release: Release, platform: str, manager: str) -> bool:
    if manager == "conda":
        return any(form.platform == platform for form in release.conda) or bool(
            release.pip_forms(platform)
        )
    return bool(release.pip_forms(platform))


def _python_range(release: Release) -> str:
    extra = (
        f" ({', '.join(release.python.experimental)} experimental)"
        if release.python.experimental
        else ""
    )
    return f"{release.python.min}–{release.python.max}{extra}"


def _padded(key: tuple[int, ...], width: int = 3) -> tuple[int, ...]:
    """``(2,)`` -> ``(2, 0, 0)``: missing trailing parts count as 0, as in PEP 440."""
    return key + (0,) * (width - len(key))


def _resolve_torch(
    wish: str, table: CompatTable, python: str, platform: str, manager: str
) -> tuple[Release, str | None]:
    """A release from ``--torch``: ``2.5.1``; ``2.5`` or ``2`` for the newest 2.5.x or 2.x
    release with stable wheels for this Python and platform (else the newest of the series, so
    the error names the Python range); the LTS release only by its full version; ``2.5.1.0``
    is ``2.5.1`` (PEP 440)."""
    text = wish.strip().removeprefix("v")
    exact = table.release(text)
    if exact is not None:
        return exact, None
    if not is_numeric_version(text.split("+")[0]):
        raise PlanError(
            f"--torch {wish!r} is not a version", f"--torch {table.newest.torch} (the newest)"
        )
    if "+" in text:
        base, local = text.split("+", 1)
        raise PlanError(
            f"--torch takes a release, not a build: {wish!r}",
            f"--torch {base} --variant {local}",
        )
    key = numeric_key(text)
    if len(key) <= 2:
        series = [r for r in table.releases if r.key[: len(key)] == key and not r.lts]
        fitting = [
            r
            for r in series
            if python_fits(r, python) == "stable" and _has_platform(r, platform, manager)
        ]
        if fitting:
            return fitting[0], (
                f"--torch {wish} means the newest {text}.x release for Python {python} on "
                f"{platform}: {fitting[0].torch}"
            )
        if series:
            return series[0], f"--torch {wish} means the newest {text}.x release: {series[0].torch}"
    elif len(key) > 3 and not any(key[3:]):
        trimmed = table.release(".".join(str(part) for part in key[:3]))
        if trimmed is not None:
            return trimmed, f"--torch {wish} is release {trimmed.torch} (trailing zeros)"
    raise PlanError(
        f"torch {wish} is not in the compatibility table (checked {table.checked_on})",
        _nearest_release_hint(key, table),
    )


def _nearest_release_hint(key: tuple[int, ...], table: CompatTable) -> str:
    """The release just below the wish, labelled truthfully (releases are newest first)."""
    wanted = _padded(key, max(len(key), 3))
    older = [r for r in table.releases if _padded(r.key, len(wanted)) <= wanted]
    if not older:
        return f"--torch {table.releases[-1].torch} (the oldest in the table)"
    nearest = older[0]
    if nearest is table.newest:
        return f"--torch {nearest.torch} (newest known)"
    if len(key) <= 2:
        # A series the table lacks (``1.15``): name the newest release before it.
        series = ".".join(str(part) for part in key)
        return f"--torch {nearest.torch} (the newest release before {series}.x)"
    return f"--torch {nearest.torch} (the nearest older release)"


def _choose_release(
    facts: MachineFacts, wishes: InstallWishes, table: CompatTable, platform: str
) -> tuple[Release, list[str], list[str]]:
    python = facts.python.value or ""
    reasons: list[str] = []
    warnings: list[str] = []
    if wishes.torch:
        release, note = _resolve_torch(wishes.torch, table, python, platform, wishes.manager)
        if note:
            reasons.append(note)
        fit = python_fits(release, python)
        if fit is None:
            newest = _newest_for_python(table, python, platform, wishes.manager)
            alternative = (
                f", or --torch {newest.torch} (newest for Python {python})" if newest else ""
            )
            raise PlanError(
                f"torch {release.torch} supports Python {_python_range(release)}, not {python}",
                f"Python {_closest_python(release, python)}{alternative}",
            )
        if fit == "experimental":
            warnings.append(
                f"Python {python} is experimental for torch {release.torch} "
                f"({release.python.source})"
            )
        if not _has_platform(release, platform, wishes.manager):
            raise PlanError(
                f"torch {release.torch} has no wheels for {platform}",
                _nearest_platform_release(table, platform, python, wishes.manager),
            )
        reasons.append(f"torch {release.torch}: the release you pinned with --torch")
        return release, reasons, warnings
    candidates = [
        r
        for r in table.releases
        if not r.lts and python_fits(r, python) == "stable" and r.pip_forms(platform)
    ]
    if not candidates:
        raise PlanError(*_no_release_for_python(table, python, platform))
    release = candidates[0]
    if release is not table.newest:
        why = "the newest release with wheels for " + platform
        if platform == MACOS_X86:
            warnings.append(
                f"Intel Macs: torch {table.macos_x86_last_release} was the last release with "
                "macOS x86_64 wheels (pytorch/pytorch#114602); newer releases need Apple silicon"
            )
        elif python_fits(table.newest, python) is None:
            why = f"the newest release for Python {python}"
        reasons.append(f"torch {release.torch}: {why}")
    else:
        reasons.append(
            f"torch {release.torch}: the newest release (supports Python {_python_range(release)})"
        )
    return release, reasons, warnings


def _newest_for_python(
    table: CompatTable, python: str, platform: str, manager: str
) -> Release | None:
    for release in table.releases:
        if (
            not release.lts
            and python_fits(release, python) == "stable"
            and _has_platform(release, platform, manager)
        ):
            return release
    return None


def _closest_python(release: Release, python: str) -> str:
    if python_key(python) < python_key(release.python.min):
        return release.python.min
    return release.python.max


def _nearest_platform_release(table: CompatTable, platform: str, python: str, manager: str) -> str:
    release = _newest_for_python(table, python, platform, manager)
    if release is None:
        return f"a platform with wheels ({', '.join(SUPPORTED_PLATFORMS)})"
    return f"--torch {release.torch} (the newest with {platform} wheels for Python {python})"


def _no_release_for_python(table: CompatTable, python: str, platform: str) -> tuple[str, str]:
    on_platform = [r for r in table.releases if not r.lts and r.pip_forms(platform)]
    if not on_platform:
        return (f"no release has wheels for {platform}", "another platform")
    key = python_key(python)
    newest_max = max(on_platform, key=lambda r: python_key(r.python.max))
    oldest_min = min(on_platform, key=lambda r: python_key(r.python.min))
    if key > python_key(newest_max.python.max):
        experimental = [r for r in on_platform if python in r.python.experimental]
        extra = ""
        if experimental:
            extra = (
                f", or --torch {experimental[0].torch} to try its experimental Python {python} "
                "wheels"
            )
        return (
            f"PyTorch publishes no stable wheels for Python {python} on {platform} "
            f"(newest supported: Python {newest_max.python.max} with torch {newest_max.torch})",
            f"Python {newest_max.python.max}{extra}",
        )
    if key < python_key(oldest_min.python.min):
        return (
            f"Python {python} is older than every release in the table supports",
            f"Python {oldest_min.python.min} (torch {oldest_min.torch})",
        )
    return (f"no release supports Python {python} on {platform}", "another Python version")


# --- accelerator and variant ----------------------------------------------------------------


def _resolve_accelerator(
    facts: MachineFacts, wishes: InstallWishes, platform: str
) -> tuple[str, list[str], list[str]]:
    reasons: list[str] = []
    warnings: list[str] = []
    fact = facts.accelerator
    accel = fact.value or "cpu"
    given = fact.origin == GIVEN
    if not fact.known:
        warnings.append(f"accelerator unknown ({fact.detail}): planning a CPU build")
    if wishes.variant:
        kind = variant_kind(_resolve_variant_name(wishes.variant, platform))
        implied = {"cuda": "cuda", "rocm": "rocm", "cpu": "cpu"}.get(kind)
        if kind == "default":
            implied = accel if accel in ("mps", "cpu") else "cpu"
        if implied and implied != accel:
            if given:
                raise PlanError(
                    f"--variant {wishes.variant} is a {implied} build but --accelerator {accel} "
                    "was given",
                    f"--accelerator {implied}, or drop one of the two flags",
                )
            nvidia_flags = [
                flag
                for flag, fact in (
                    ("--driver", facts.driver_version),
                    ("--compute-capability", facts.compute_capabilities),
                )
                if fact.origin == GIVEN
            ]
            if implied != "cuda" and nvidia_flags:
                verb = "describe" if len(nvidia_flags) > 1 else "describes"
                raise PlanError(
                    f"{' and '.join(nvidia_flags)} {verb} an NVIDIA GPU, but --variant "
                    f"{wishes.variant} is a {implied} build",
                    f"a CUDA --variant, or drop {' and '.join(nvidia_flags)}",
                )
            accel = implied
            given = True
    macos = platform.startswith("macos")
    if macos and accel in ("cuda", "rocm"):
        fallback = "mps" if platform == MACOS_ARM else "cpu"
        if given:
            raise PlanError(
                f"{accel.upper()} wheels do not exist for macOS",
                f"--accelerator {fallback} (the default macOS wheels)",
            )
        warnings.append(
            f"{accel} ({fact.origin}) does not apply to {platform}: planning the default macOS "
            "wheels"
        )
        accel = fallback
    if not macos and accel == "mps":
        if given:
            raise PlanError("MPS is macOS only", "--accelerator cpu or --accelerator cuda")
        accel = "cpu"
    if accel == "rocm" and platform != LINUX_X86:
        if given:
            raise PlanError(
                f"ROCm wheels exist for Linux x86_64 only, not {platform}",
                "--os linux --arch x86_64, or --accelerator cpu",
            )
        warnings.append(
            f"AMD GPU found, but ROCm wheels exist for Linux x86_64 only: planning the CPU "
            f"build for {platform}"
        )
        accel = "cpu"
    if platform == MACOS_ARM and accel == "mps":
        reasons.append("macOS arm64: the default PyPI wheels include the MPS (Metal) backend")
    return accel, reasons, warnings


def _resolve_variant_name(wish: str, platform: str) -> str:
    variant = wish.strip().lower()
    if platform.startswith("macos") and variant in ("cpu", "mps", "default"):
        return "default"
    return variant


def _available_variants(release: Release, platform: str, manager: str) -> list[str]:
    if manager == "conda":
        return sorted({form.variant for form in release.conda if form.platform == platform})
    return sorted({form.variant for form in release.pip_forms(platform)})


def _nearest_variant(wish: str, available: list[str]) -> str:
    kind = variant_kind(wish)
    same_kind = [v for v in available if variant_kind(v) == kind]
    if same_kind and kind in ("cuda", "rocm"):
        try:
            target = variant_sort_key(wish)
            return min(
                same_kind,
                key=lambda v: (
                    abs(variant_sort_key(v)[0] - target[0]),
                    -variant_sort_key(v)[0],
                    abs(sum(variant_sort_key(v)[1:2]) - sum(target[1:2])),
                ),
            )
        except ValueError:
            pass
    return nearest_choice(wish, available) if available else wish


# --- rendering ------------------------------------------------------------------------------


def _packages_for(
    release: Release, wishes: InstallWishes, table: CompatTable
) -> tuple[tuple[str, ...], list[str]]:
    versions = release.versions("conda" if wishes.manager == "conda" else "pip")
    notes: list[str] = []
    if wishes.packages is None:
        names = tuple(name for name in PACKAGE_ORDER if name in versions)
        if "torchaudio" not in versions:
            notes.append(
                f"torchaudio left out: it has no release for torch {release.torch} "
                "(torchaudio 2.11.0 was the last)"
            )
        return names, notes
    wanted = []
    for raw in wishes.packages:
        name = raw.strip().lower()
        if not name:
            continue
        if name == "pytorch":
            name = "torch"
        if name not in PACKAGE_ORDER:
            raise PlanError(
                f"--packages: unknown package {raw!r}",
                f"--packages with any of {','.join(PACKAGE_ORDER)} "
                f"(did you mean {nearest_choice(name, PACKAGE_ORDER)}?)",
            )
        if name not in versions:
            last = next(
                (
                    r
                    for r in table.releases
                    if "torchaudio" in r.pip_versions and name == "torchaudio"
                ),
                None,
            )
            nearest = f"--torch {last.torch} (the last with {name})" if last else "drop it"
            raise PlanError(
                f"{name} has no release for torch {release.torch}",
                f"drop {name} from --packages, or {nearest}",
            )
        wanted.append(name)
    if not wanted:
        raise PlanError("--packages is empty", f"--packages {','.join(PACKAGE_ORDER)}")
    return tuple(name for name in PACKAGE_ORDER if name in wanted), notes


def _index_carries_local_versions(form: PipForm, platform: str) -> bool:
    """Indexes whose wheels of every package carry ``+variant`` local versions (the
    ``--index-url``/``--extra-index-url`` indexes for Linux x86_64 and Windows). Not
    ``torch_stable.html``: there some packages had none (torchaudio 0.7.2, Windows cu102)."""
    return (
        form.flag in ("--index-url", "--extra-index-url")
        and form.kind in ("cuda", "rocm", "cpu")
        and platform in (LINUX_X86, WINDOWS_X86)
    )


def _render_pip(
    release: Release,
    form: PipForm,
    names: tuple[str, ...],
    wishes: InstallWishes,
    platform: str,
) -> tuple[str, tuple[PinnedPackage, ...], list[str]]:
    """pip or uv: the published pins (``form.local``: the packages whose published pin carries
    ``+variant``), the same for uv; a replacement (``pin_local_versions``) adds local pins only
    on indexes where every wheel carries one, else ``--force-reinstall``."""
    notes: list[str] = []
    versions = release.pip_versions
    uv = wishes.manager == "uv"
    local_names = set(form.local)
    if wishes.pin_local_versions and _index_carries_local_versions(form, platform):
        local_names = set(names)
    if uv:
        notes.append(UV_SAME_PINS_REASON)
    packages = []
    for name in names:
        local = form.variant if name in local_names else None
        operator = "===" if (name in form.exact_equality and not uv) else "=="
        packages.append(PinnedPackage(name, versions[name], local, operator))
    program = "uv pip install" if uv else "pip install"
    parts = [program, *(p.spec for p in packages)]
    if form.flag:
        parts += [form.flag, form.url or ""]
    if wishes.pin_local_versions and "torch" not in local_names:
        # No local version to pin: without this, an installed `2.0.1+cpu` would satisfy
        # `torch==2.0.1` and the replacement would do nothing.
        parts.append("--force-reinstall")
        notes.append("--force-reinstall: replaces the installed build of the same version")
    return " ".join(parts), tuple(packages), notes


def _render_conda(
    release: Release, form: CondaForm, names: tuple[str, ...]
) -> tuple[str, tuple[PinnedPackage, ...]]:
    versions = release.conda_versions
    packages = tuple(
        PinnedPackage("pytorch" if name == "torch" else name, versions[name], None, "==")
        for name in names
    )
    parts = ["conda install", *(p.spec for p in packages)]
    if form.cuda_package:
        parts.append(form.cuda_package)
    for channel in form.channels:
        parts += ["-c", channel]
    return " ".join(parts), packages


# --- the planner ----------------------------------------------------------------------------


_FLAG_FORMS = {"os": "linux|windows|macos", "arch": "x86_64|aarch64|arm64", "python": "X.Y"}


def _platform_of(facts: MachineFacts) -> str:
    if not facts.os.known and facts.os.detail == UNSUPPORTED_OS_DETAIL:
        raise PlanError(
            "PyTorch publishes no wheels for this operating system (not Linux, Windows or macOS)",
            "plan for a supported machine with --os linux|windows|macos",
        )
    for name, fact in (("os", facts.os), ("arch", facts.arch), ("python", facts.python)):
        if not fact.known:
            raise PlanError(f"{name} unknown ({fact.detail})", f"--{name} {_FLAG_FORMS[name]}")
    platform = facts.platform or ""
    if platform == "windows-arm64":
        raise PlanError(
            "Windows on ARM64 has no stable PyTorch wheels (nightly torch only)",
            "--arch x86_64 (x64 emulation)",
        )
    if platform not in SUPPORTED_PLATFORMS:
        raise PlanError(
            f"PyTorch publishes no wheels for {platform}",
            f"supported platforms: {', '.join(SUPPORTED_PLATFORMS)} (plan for one with --os and "
            "--arch)",
        )
    return platform


def _release_warnings(
    release: Release, variant: str, manager: str, names: tuple[str, ...], python: str
) -> list[str]:
    warnings = []
    for note in release.unconfirmed:
        applies = (
            note.scope == "all"
            or (note.scope == "rocm" and variant.startswith("rocm"))
            or (note.scope == "conda" and manager == "conda")
            or (note.scope == "torchaudio" and "torchaudio" in names)
            or (note.scope == "python-experimental" and python in release.python.experimental)
        )
        if applies:
            warnings.append(f"torch {release.torch}: {note.text}")
    return warnings


def _conda_impossible(release: Release, table: CompatTable, facts: MachineFacts) -> PlanError:
    try:
        pip_plan = plan_install(
            facts, InstallWishes(torch=release.torch, manager="pip"), table=table
        )
        pip_hint = f"official pip command: {pip_plan.command_line}"
    except PlanError:
        pip_hint = "official pip command: run dlready install-cmd --manager pip"
    return PlanError(
        f"no official conda packages for torch {release.torch}: the pytorch conda channel "
        f"ends at {table.last_official_conda} (pytorch/pytorch#138506)",
        f"--manager pip, or --torch {table.last_official_conda} --manager conda",
        hints=(pip_hint, f"{table.conda_community_label}: {table.conda_community_command}"),
    )


def plan_install(
    facts: MachineFacts, wishes: InstallWishes, table: CompatTable | None = None
) -> InstallPlan:
    """The install plan for a machine: pure, decided from the packaged compat table.

    Args:
        facts: the target machine (detected and/or given by flags).
        wishes: the user's choices (release, variant, manager, packages).
        table: the compatibility table; the packaged one by default.

    Returns:
        The plan with its single command line, warnings and reasons.

    Raises:
        PlanError: for an invalid or impossible request, naming the nearest valid choice.
    """
    table = table or load_compat_table()
    if wishes.manager not in MANAGERS:
        raise PlanError(
            f"unknown --manager {wishes.manager!r}",
            f"--manager {nearest_choice(wishes.manager, MANAGERS)} (one of {', '.join(MANAGERS)})",
        )
    platform = _platform_of(facts)
    python = facts.python.value or ""
    reasons: list[str] = []
    if facts.arch.origin == IMPLIED:
        reasons.append(f"arch {facts.arch.value}, implied {facts.arch.detail}")
    warnings: list[str] = [f"detection: {note}" for note in facts.notes]

    release, release_reasons, release_warnings = _choose_release(facts, wishes, table, platform)
    reasons += release_reasons
    warnings += release_warnings

    if wishes.manager == "conda" and not release.conda_official:
        raise _conda_impossible(release, table, facts)

    accel, accel_reasons, accel_warnings = _resolve_accelerator(facts, wishes, platform)
    reasons += accel_reasons
    warnings += accel_warnings

    names, package_notes = _packages_for(release, wishes, table)
    reasons += package_notes

    available = _available_variants(release, platform, wishes.manager)
    if wishes.manager == "conda" and not available:
        raise PlanError(
            f"no official conda packages of torch {release.torch} for {platform}", "--manager pip"
        )
    candidates: tuple[Candidate, ...] = ()
    chosen_pip: PipForm | None
    if wishes.variant:
        variant = _resolve_variant_name(wishes.variant, platform)
        if variant not in available:
            raise PlanError(
                f"torch {release.torch} has no {variant} build for {platform}"
                + (" with conda" if wishes.manager == "conda" else "")
                + f" (available: {', '.join(available) or 'none'})",
                _variant_hint(variant, available, release, facts, wishes, table, platform, python),
            )
        reasons.append(f"{variant}: the variant you asked for with --variant")
        chosen_pip = release.pip_form(variant, platform)
        if variant_kind(variant) == "cuda" and chosen_pip is not None:
            evaluation = _evaluate(chosen_pip, facts, table, platform)
            _check_forced_coverage(evaluation, release, facts, wishes, table, platform, python)
            candidates = (
                Candidate(
                    variant,
                    evaluation.usable,
                    True,
                    evaluation.coverage_label(),
                    evaluation.driver,
                    _verdict(evaluation, facts.driver_version.value),
                ),
            )
            warnings += _cuda_warnings(evaluation, facts, table)
    elif accel == "cuda":
        variant, chosen_pip, candidates, cuda_reasons, cuda_warnings = _choose_cuda(
            release, facts, wishes, table, platform, available, python
        )
        reasons += cuda_reasons
        warnings += cuda_warnings
    elif accel == "rocm":
        rocm = sorted((v for v in available if v.startswith("rocm")), key=variant_sort_key)
        if not rocm:
            newer = _newest_with(
                table,
                python,
                lambda r: any(f.variant.startswith("rocm") for f in r.pip_forms(platform)),
            )
            raise PlanError(
                f"torch {release.torch} has no ROCm build for {platform}",
                (f"--torch {newer.torch}" if newer else "a newer torch") + ", or --accelerator cpu",
            )
        variant = rocm[-1]
        chosen_pip = release.pip_form(variant, platform)
        reasons.append(f"{variant}: the ROCm build of torch {release.torch} for an AMD GPU")
        warnings.append(
            "ROCm: dlready does not check the GPU's gfx architecture against the ROCm release; "
            "see the ROCm compatibility matrix for your card"
        )
    else:
        variant = "default" if platform.startswith("macos") else "cpu"
        if variant not in available:
            raise PlanError(
                f"torch {release.torch} has no {variant} build for {platform}",
                f"--variant {_nearest_variant(variant, available)}"
                if available
                else "another torch",
            )
        chosen_pip = release.pip_form(variant, platform)
        if variant == "cpu":
            default_cuda = {
                LINUX_X86: release.pypi_default_cuda,
                LINUX_ARM: release.pypi_default_cuda_aarch64,
            }.get(platform)
            if default_cuda:
                reasons.append(
                    f"no GPU: the CPU index, because plain `pip install torch` on {platform} "
                    f"downloads the multi-GB {default_cuda} CUDA build"
                )
            else:
                reasons.append("no GPU: the CPU build")
        elif platform == MACOS_X86:
            reasons.append("macOS x86_64: the default PyPI wheels (CPU)")

    if platform == WINDOWS_X86 and variant_kind(variant) == "cuda":
        reasons.append(
            "Windows: PyPI's torch wheel is the CPU build, so CUDA comes from the index URL"
        )
    if facts.is_wsl.value is True and variant_kind(variant) == "cuda":
        reasons.append(
            "WSL2: the Linux wheels; the driver is the Windows driver, read through NVML "
            "(WSL has no /proc/driver/nvidia), and is compared with Windows driver numbers"
        )
    if accel == "mps" and compare_numeric(release.torch, table.mps_first_release) < 0:
        warnings.append(
            f"MPS (Apple GPU) support starts with torch {table.mps_first_release} (UNCONFIRMED): "
            f"torch {release.torch} runs on the CPU"
        )

    sources = [release.python.source]
    if wishes.manager == "conda":
        conda = release.conda_form(variant, platform)
        if conda is None:  # guarded by _available_variants; kept for type narrowing
            raise PlanError(f"no conda {variant} build", f"--variant {available[0]}")
        command, packages = _render_conda(release, conda, names)
        warnings += [f"conda: {text}" for text in conda.unconfirmed]
        sources.append(table.origins.get(conda.origin, conda.origin))
        plan_flag, plan_url = None, None
        channels, extras = conda.channels, ((conda.cuda_package,) if conda.cuda_package else ())
        if chosen_pip is not None and chosen_pip.arch is not None:
            warnings.append(
                f"conda {variant}: arch coverage judged from the pip wheel's list (UNCONFIRMED "
                "for the conda build)"
            )
    else:
        if chosen_pip is None:
            raise PlanError(f"no pip {variant} build", f"--variant {available[0]}")
        command, packages, render_notes = _render_pip(release, chosen_pip, names, wishes, platform)
        reasons += render_notes
        warnings += [f"{variant}: {text}" for text in chosen_pip.unconfirmed]
        sources.append(table.origins.get(chosen_pip.origin, chosen_pip.origin))
        plan_flag, plan_url = chosen_pip.flag, chosen_pip.url
        channels, extras = (), ()
    if chosen_pip is not None and chosen_pip.arch is not None:
        sources.append(chosen_pip.arch.source)
    floor = table.drivers.get(variant)
    if floor is not None:
        sources.append(floor.source)
    warnings += _release_warnings(release, variant, wishes.manager, names, python)
    return InstallPlan(
        command_line=command,
        manager=wishes.manager,
        torch=release.torch,
        variant=variant,
        platform=platform,
        packages=packages,
        index_url=plan_url,
        index_flag=plan_flag,
        channels=tuple(channels),
        conda_extras=tuple(extras),
        warnings=_dedupe(warnings),
        reasons=_dedupe(reasons),
        facts=facts,
        candidates=candidates,
        sources=_dedupe(sources),
        table_checked_on=table.checked_on,
    )


def _dedupe(items: list[str]) -> list[str]:
    seen: set[str] = set()
    result = []
    for item in items:
        if item not in seen:
            seen.add(item)
            result.append(item)
    return result


def _newest_with(
    table: CompatTable, python: str, predicate: Callable[[Release], bool]
) -> Release | None:
    for release in table.releases:
        if not release.lts and python_fits(release, python) == "stable" and predicate(release):
            return release
    return None


def _cuda_warnings(evaluation: _Evaluation, facts: MachineFacts, table: CompatTable) -> list[str]:
    form = evaluation.form
    warnings = []
    driver = facts.driver_version.value
    labels = " ".join(arch_labels(form.arch.arch_list)) if form.arch else "unknown"
    if evaluation.uncovered:
        # Only reached where the miss is not certain (see _check_forced_coverage).
        warnings.append(
            f"{form.variant} probably has no kernels for compute capability "
            f"{', '.join(evaluation.uncovered)} (its arch list, not confirmed for this build: "
            f'{labels}): if so, torch.cuda fails on that GPU ("no kernel image is available")'
        )
    if evaluation.ptx_only:
        warnings.append(
            f"{form.variant} serves compute capability {', '.join(evaluation.ptx_only)} only "
            "through PTX: it works, but the first CUDA call JIT-compiles kernels (slow start)"
        )
    if evaluation.driver == "too-old":
        warnings.append(
            f"{form.variant} needs NVIDIA driver >= {evaluation.required_min}; this driver is "
            f"{driver}: torch.cuda.is_available() will be False"
        )
    elif evaluation.driver == "minor-compat":
        warnings.append(
            f"driver {driver} runs {form.variant} through CUDA minor-version compatibility "
            f"(no PTX JIT of newer PTX); driver >= {evaluation.required_full} gives full support"
        )
    elif evaluation.driver == "unknown" and evaluation.required_min:
        warnings.append(
            f"NVIDIA driver unknown: {form.variant} needs >= {evaluation.required_min} "
            "(pass --driver to check)"
        )
    if not (facts.compute_capabilities.value or ()):
        warnings.append(
            f"GPU compute capability unknown: {form.variant} has kernels for {labels} "
            "(pass --compute-capability to check)"
        )
    elif form.arch is None:
        warnings.append(
            f"{form.variant}: the reference has no arch list for this build; coverage of "
            f"compute capability {', '.join(facts.compute_capabilities.value or ())} is unchecked"
        )
    elif form.arch.unconfirmed:
        warnings.append(f"{form.variant}: {form.arch.unconfirmed}")
    floor = table.drivers.get(form.variant)
    if floor is not None:
        windows = facts.os.value == "windows" or facts.is_wsl.value is True
        warnings += [f"{form.variant} driver floor: {note}" for note in floor.unconfirmed(windows)]
    if facts.arch.value in ("aarch64", "arm64") and any(
        cc in table.jetson_compute_capabilities for cc in (facts.compute_capabilities.value or ())
    ):
        warnings.append(table.jetson_note)
    return warnings


def _cuda_forms(
    release: Release, wishes: InstallWishes, platform: str, available: list[str]
) -> list[PipForm]:
    """The release's CUDA variants on the platform (for conda, its conda variants)."""
    forms = []
    for variant in (v for v in available if variant_kind(v) == "cuda"):
        pip = release.pip_form(variant, platform)
        if pip is None and wishes.manager == "conda":
            conda = release.conda_form(variant, platform)
            if conda is None:
                continue
            # Conda-only variant (e.g. cudatoolkit=11.3 for 1.9): no arch list in the data.
            pip = PipForm(
                variant=variant,
                platform=platform,
                kind="cuda",
                cuda=None,
                flag=None,
                url=None,
                local=(),
                exact_equality=(),
                origin="conda-only",
                experimental=False,
                arch=None,
                unconfirmed=(),
            )
        if pip is not None:
            forms.append(pip)
    return forms


def _check_forced_coverage(
    evaluation: _Evaluation,
    release: Release,
    facts: MachineFacts,
    wishes: InstallWishes,
    table: CompatTable,
    platform: str,
    python: str,
) -> None:
    """A forced ``--variant`` whose arch list misses a known GPU is an impossible request.

    Only where the miss is certain: with the arch list unknown, marked UNCONFIRMED, or read
    from the pip wheel for a conda build, it stays a warning (``_cuda_warnings``).
    """
    form = evaluation.form
    if evaluation.jetson:
        raise _jetson_error(release, evaluation.jetson, table, python)
    certain = form.arch is not None and not form.arch.unconfirmed and wishes.manager != "conda"
    if not (evaluation.uncovered and certain and form.arch is not None):
        return
    labels = " ".join(arch_labels(form.arch.arch_list))
    raise PlanError(
        f"--variant {form.variant}: the {form.variant} build of torch {release.torch} has no "
        f"kernels for compute capability {', '.join(evaluation.uncovered)} (its arch list: "
        f"{labels}); torch.cuda would fail on that GPU",
        _covering_hint(release, facts, wishes, table, platform, python),
    )


def _covering_evaluations(
    release: Release,
    facts: MachineFacts,
    wishes: InstallWishes,
    table: CompatTable,
    platform: str,
) -> list[_Evaluation]:
    """The release's CUDA variants whose arch lists cover every known GPU, best first."""
    available = _available_variants(release, platform, wishes.manager)
    evaluations = [
        _evaluate(form, facts, table, platform)
        for form in _cuda_forms(release, wishes, platform, available)
    ]
    covering = [e for e in evaluations if e.coverage not in (None, Coverage.NONE)]
    driver_known = facts.driver_version.known
    return sorted(
        covering,
        key=lambda e: (e.usable, _rank(e, release, driver_known)),
        reverse=True,
    )


def _covering_hint(
    release: Release,
    facts: MachineFacts,
    wishes: InstallWishes,
    table: CompatTable,
    platform: str,
    python: str,
) -> str:
    """A variant of this release that covers every GPU, else an older torch, else the CPU."""
    gpus = ", ".join(facts.compute_capabilities.value or ())
    covering = _covering_evaluations(release, facts, wishes, table, platform)
    if covering:
        return f"--variant {covering[0].form.variant} (covers compute capability {gpus})"
    older = _older_release_fix(release, facts, table, platform, python, wishes)
    return "; or ".join([*([older] if older else []), "--accelerator cpu"])


def _variant_hint(
    variant: str,
    available: list[str],
    release: Release,
    facts: MachineFacts,
    wishes: InstallWishes,
    table: CompatTable,
    platform: str,
    python: str,
) -> str:
    """The nearest available variant; for CUDA with known GPUs, only variants covering them."""
    capabilities = facts.compute_capabilities.value or ()
    if variant_kind(variant) != "cuda" or not capabilities:
        return f"--variant {_nearest_variant(variant, available)}"
    evaluations = _covering_evaluations(release, facts, wishes, table, platform)
    # Prefer variants this driver runs; with none, still only variants that cover the GPUs.
    covering = [e.form.variant for e in evaluations if e.usable] or [
        e.form.variant for e in evaluations
    ]
    if covering:
        gpus = ", ".join(capabilities)
        return f"--variant {_nearest_variant(variant, covering)} (covers compute capability {gpus})"
    return _covering_hint(release, facts, wishes, table, platform, python)


def _jetson_error(
    release: Release, capabilities: tuple[str, ...], table: CompatTable, python: str
) -> PlanError:
    """Jetson modules need NVIDIA's JetPack wheels, unless some release's linux-aarch64 arch
    list names their compute capability (then that release)."""
    gpus = ", ".join(capabilities)
    sm = " ".join(f"sm_{cc.replace('.', '')}" for cc in capabilities)
    for other in table.releases:
        if other.lts or python_fits(other, python) != "stable":
            continue
        for form in other.pip_forms(LINUX_ARM):
            if form.kind == "cuda" and form.arch is not None:
                levels = [
                    gpu_coverage(form.arch.arch_list, cc, LINUX_ARM, table) for cc in capabilities
                ]
                if all(level is Coverage.NATIVE for level in levels):
                    return PlanError(
                        f"torch {release.torch} has no linux-aarch64 CUDA wheel with {sm} "
                        f"kernels for this Jetson module (compute capability {gpus})",
                        f"--torch {other.torch} --variant {form.variant} (its arch list names "
                        f"{sm})",
                    )
    return PlanError(
        f"Jetson module (compute capability {gpus}): pytorch.org's linux-aarch64 CUDA wheels "
        f"are SBSA (server ARM) builds without {sm} kernels (matrix.json platform_notes"
        ".linux_aarch64)",
        "NVIDIA's PyTorch wheels for Jetson, built for your JetPack release (which index: "
        "UNCONFIRMED in dlready's reference), or --accelerator cpu",
    )


def _choose_cuda(
    release: Release,
    facts: MachineFacts,
    wishes: InstallWishes,
    table: CompatTable,
    platform: str,
    available: list[str],
    python: str,
) -> tuple[str, PipForm | None, tuple[Candidate, ...], list[str], list[str]]:
    forms = _cuda_forms(release, wishes, platform, available)
    if not forms:
        raise PlanError(
            f"torch {release.torch} has no CUDA build for {platform}"
            + (" with conda" if wishes.manager == "conda" else ""),
            "--accelerator cpu"
            + (
                ""
                if platform != LINUX_ARM
                else ", or a newer torch (aarch64 CUDA wheels start at 2.7)"
            ),
        )
    evaluations = [_evaluate(form, facts, table, platform) for form in forms]
    driver_known = facts.driver_version.known
    usable = [e for e in evaluations if e.usable]
    best = max(usable, key=lambda e: _rank(e, release, driver_known)) if usable else None
    candidates = tuple(
        Candidate(
            e.form.variant,
            e.usable,
            e is best,
            e.coverage_label(),
            e.driver,
            _verdict(e, facts.driver_version.value),
        )
        for e in sorted(evaluations, key=lambda e: variant_sort_key(e.form.variant), reverse=True)
    )
    if best is None:
        jetson = tuple(sorted({cc for e in evaluations for cc in e.jetson}))
        if jetson:
            raise _jetson_error(release, jetson, table, python)
        raise _no_cuda_fit(release, evaluations, facts, table, platform, python, wishes)
    reasons = [_cuda_reason(best, facts, driver_known, release)]
    warnings = _cuda_warnings(best, facts, table)
    return best.form.variant, best.form, candidates, reasons, warnings


def _cuda_reason(
    best: _Evaluation, facts: MachineFacts, driver_known: bool, release: Release
) -> str:
    ccs = facts.compute_capabilities.value or ()
    variant = best.form.variant
    if best.coverage is Coverage.NATIVE:
        gpu = f"its arch list covers compute capability {', '.join(ccs)}"
    elif best.coverage is Coverage.PTX:
        gpu = f"it serves compute capability {', '.join(ccs)} through PTX"
    else:
        gpu = "GPU coverage could not be checked"
    if not driver_known:
        driver = (
            "the release's default CUDA build (driver unknown)"
            if variant == release.pypi_default_cuda
            else "driver unknown"
        )
    elif best.driver == "full":
        driver = f"the newest CUDA that driver {facts.driver_version.value} fully supports"
    else:
        driver = (
            f"the newest CUDA that driver {facts.driver_version.value} runs "
            "(minor-version compatibility)"
        )
    experimental = " (experimental build)" if best.form.experimental else ""
    return f"{variant}{experimental}: {gpu}; {driver}"


def _no_cuda_fit(
    release: Release,
    evaluations: list[_Evaluation],
    facts: MachineFacts,
    table: CompatTable,
    platform: str,
    python: str,
    wishes: InstallWishes,
) -> PlanError:
    driver = facts.driver_version.value
    problems = "; ".join(f"{e.form.variant}: {_verdict(e, driver)}" for e in evaluations)
    fixes = []
    covering = [e for e in evaluations if e.coverage is not Coverage.NONE]
    if covering and driver:
        lowest = min(
            covering, key=lambda e: numeric_key(e.required_min) if e.required_min else (0,)
        )
        if lowest.required_min:
            fixes.append(
                f"update the NVIDIA driver to >= {lowest.required_min} (for {lowest.form.variant})"
            )
    older = _older_release_fix(release, facts, table, platform, python, wishes)
    if older:
        fixes.append(older)
    fixes.append("--accelerator cpu")
    gpus = ", ".join(facts.compute_capabilities.value or ()) or "unknown"
    return PlanError(
        f"no CUDA build of torch {release.torch} for {platform} fits this machine "
        f"(compute capability {gpus}, driver {driver or 'unknown'}): {problems}",
        "; or ".join(fixes),
    )


def _older_release_fix(
    release: Release,
    facts: MachineFacts,
    table: CompatTable,
    platform: str,
    python: str,
    wishes: InstallWishes,
) -> str | None:
    """``--torch X --variant Y``: the newest older release with a CUDA build that fits."""
    for older in table.releases:
        if older.lts or older.key >= release.key or python_fits(older, python) != "stable":
            continue
        forms = [f for f in older.pip_forms(platform) if f.kind == "cuda"]
        if wishes.manager == "conda":
            conda_variants = {c.variant for c in older.conda if c.platform == platform}
            forms = [f for f in forms if f.variant in conda_variants]
        fitting = [e for e in (_evaluate(f, facts, table, platform) for f in forms) if e.usable]
        if fitting:
            pick = max(fitting, key=lambda e: _rank(e, older, facts.driver_version.known))
            return f"--torch {older.torch} --variant {pick.form.variant}"
    return None
