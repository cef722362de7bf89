"""Does one CUDA wheel fit this machine? Its arch list against the GPUs, its driver floor
against the driver (pure; the rules of :mod:`dlready.install.archs` plus the Jetson rule)."""

from __future__ import annotations

from typing import Any

from msgspec import Struct

from dlready.install.archs import Coverage, coverage, parse_arch_list
from dlready.install.facts import MachineFacts
from dlready.install.plan import CoverageState, DriverSupport, PlanContext
from dlready.install.table import LINUX_ARM, WINDOWS_X86, CompatTable, PipForm, Release
from dlready.install.versions import (
    compare_numeric,
    compute_capability_key,
    variant_kind,
    variant_sort_key,
)

_COVERAGE_STATE = {
    Coverage.NATIVE: CoverageState.NATIVE,
    Coverage.PTX: CoverageState.PTX,
    Coverage.NONE: CoverageState.NONE,
}


class Evaluation(Struct, frozen=True):
    """One CUDA wheel judged against the machine's GPUs and driver."""

    form: PipForm
    coverage: Coverage | None
    """None: the arch list is unknown or no compute capability is known."""
    driver: DriverSupport
    required_min: str | None
    required_full: str | None
    uncovered: tuple[str, ...]
    ptx_only: tuple[str, ...]
    jetson: tuple[str, ...] = ()
    """Jetson compute capabilities (on linux-aarch64) this wheel's arch list does not name."""

    @property
    def usable(self) -> bool:
        """The driver runs it and every GPU has some code in it (or coverage is unknown)."""
        return self.driver is not DriverSupport.TOO_OLD and self.coverage is not Coverage.NONE

    @property
    def coverage_state(self) -> CoverageState:
        """The coverage as shown to users and in JSON."""
        if self.coverage is None:
            return CoverageState.UNKNOWN
        return _COVERAGE_STATE[self.coverage]


def windows_numbering(facts: MachineFacts, platform: str) -> bool:
    """Windows drivers have their own numbers; WSL2 reports the Windows driver."""
    return platform == WINDOWS_X86 or facts.is_wsl.value is True


def is_jetson(compute_capability: str, platform: str | None, table: CompatTable) -> bool:
    """A Jetson module: an NVIDIA GPU on linux-aarch64 with a Jetson compute capability."""
    return platform == LINUX_ARM and compute_capability in table.jetson_compute_capabilities


def gpu_coverage(
    arch_list: str, compute_capability: str, platform: str | None, table: CompatTable
) -> Coverage:
    """How a wheel with ``arch_list`` serves one GPU, with the Jetson rule on top of the
    binary-compatibility rules: pytorch.org's linux-aarch64 CUDA wheels are SBSA (server ARM)
    builds without sm_87 kernels, so they serve a Jetson module only if their arch list names
    its compute capability exactly (no credit for sm_80 cubins)."""
    if is_jetson(compute_capability, platform, table):
        wanted = compute_capability_key(compute_capability)
        named = any((t.major, t.minor) == wanted for t in parse_arch_list(arch_list))
        return Coverage.NATIVE if named else Coverage.NONE
    return coverage(arch_list, compute_capability)


def driver_support(
    driver: str | None, required_min: str | None, required_full: str | None
) -> DriverSupport:
    """How a driver runs a wheel whose floors are ``required_min`` and ``required_full``."""
    if not (driver and required_min):
        return DriverSupport.UNKNOWN
    if compare_numeric(driver, required_min) < 0:
        return DriverSupport.TOO_OLD
    if required_full and compare_numeric(driver, required_full) >= 0:
        return DriverSupport.FULL
    return DriverSupport.MINOR_COMPAT


def evaluate(form: PipForm, ctx: PlanContext) -> Evaluation:
    """Judge one CUDA wheel against the machine's GPUs and driver."""
    facts, table, platform = ctx.facts, ctx.table, ctx.platform
    capabilities = facts.compute_capabilities.value or ()
    levels = (
        [(cc, gpu_coverage(form.arch.arch_list, cc, platform, table)) for cc in capabilities]
        if form.arch is not None
        else []
    )
    uncovered = tuple(cc for cc, level in levels if level is Coverage.NONE)
    floor = table.driver_floor(form.variant)
    required_min = required_full = None
    if floor is not None:
        windows = windows_numbering(facts, platform)
        required_min = floor.min_windows if windows else floor.min_linux
        required_full = floor.full_windows if windows else floor.full_linux
    return Evaluation(
        form=form,
        coverage=min(level for _, level in levels) if levels else None,
        driver=driver_support(facts.driver_version.value, required_min, required_full),
        required_min=required_min,
        required_full=required_full,
        uncovered=uncovered,
        ptx_only=tuple(cc for cc, level in levels if level is Coverage.PTX),
        jetson=tuple(cc for cc in uncovered if is_jetson(cc, platform, table)),
    )


def rank(evaluation: Evaluation, release: Release, driver_known: bool) -> tuple[Any, ...]:
    """Sort key, best highest: coverage (native > PTX > unknown), then full driver support
    over minor-version compatibility (with the driver unknown: the release's default CUDA
    build), then stable over experimental, then the newest CUDA."""
    cover_rank = {None: 0, Coverage.PTX: 1, Coverage.NATIVE: 2}.get(evaluation.coverage, -1)
    stable = not evaluation.form.experimental
    newest = variant_sort_key(evaluation.form.variant)
    if not driver_known:
        is_default = evaluation.form.variant == release.pypi_default_cuda
        return (cover_rank, is_default, stable, newest)
    driver_rank = {DriverSupport.FULL: 2, DriverSupport.MINOR_COMPAT: 1}.get(evaluation.driver, 0)
    return (cover_rank, driver_rank, stable, newest)


def _sm_list(capabilities: tuple[str, ...]) -> str:
    return "sm_" + "/sm_".join(cc.replace(".", "") for cc in capabilities)


def _coverage_words(evaluation: Evaluation) -> str:
    if evaluation.uncovered:
        return f"no kernels for {_sm_list(evaluation.uncovered)}"
    if evaluation.ptx_only:
        return f"PTX only for {_sm_list(evaluation.ptx_only)}"
    if evaluation.coverage is Coverage.NATIVE:
        return "native kernels for every GPU"
    if evaluation.form.arch is None:
        return "arch list unknown"
    return "compute capability unknown"


def _driver_words(evaluation: Evaluation, driver: str | None) -> str | None:
    if evaluation.driver is DriverSupport.TOO_OLD:
        return f"needs driver >= {evaluation.required_min} (have {driver})"
    if evaluation.driver is DriverSupport.MINOR_COMPAT:
        return (
            f"driver {driver} runs it through CUDA minor-version compatibility "
            f"(full support from {evaluation.required_full})"
        )
    if evaluation.driver is DriverSupport.FULL:
        return f"driver {driver} >= {evaluation.required_full}"
    if evaluation.required_min:
        return f"needs driver >= {evaluation.required_min}"
    return None


def verdict(evaluation: Evaluation, driver: str | None) -> str:
    """One line on a candidate: ``native kernels for every GPU; driver 580.65.06 >= 580``."""
    parts = [_coverage_words(evaluation), _driver_words(evaluation, driver)]
    if evaluation.form.experimental:
        parts.append("experimental build")
    return "; ".join(part for part in parts if part)


def cuda_forms(release: Release, ctx: PlanContext, available: list[str]) -> list[PipForm]:
    """The release's CUDA variants on the platform (for conda, its conda variants)."""
    forms = []
    for variant in (v for v in available if variant_kind(v) == "cuda"):
        pip = release.pip_form(variant, ctx.platform)
        if pip is None and ctx.conda and release.conda_form(variant, ctx.platform) is not None:
            pip = _conda_only_form(variant, ctx.platform)
        if pip is not None:
            forms.append(pip)
    return forms


def _conda_only_form(variant: str, platform: str) -> PipForm:
    """A conda-only variant (e.g. cudatoolkit=11.3 for 1.9): no arch list in the data."""
    return PipForm(
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


def available_variants(release: Release, platform: str, manager: str) -> list[str]:
    """The variants of a release on a platform, for pip/uv or for conda."""
    if manager == "conda":
        return sorted({form.variant for form in release.conda if form.platform == platform})
    return sorted({form.variant for form in release.pip_forms(platform)})


def covering_evaluations(release: Release, ctx: PlanContext) -> list[Evaluation]:
    """The release's CUDA variants whose arch lists cover every known GPU, best first."""
    available = available_variants(release, ctx.platform, ctx.wishes.manager)
    evaluations = [evaluate(form, ctx) for form in cuda_forms(release, ctx, available)]
    covering = [e for e in evaluations if e.coverage not in (None, Coverage.NONE)]
    driver_known = ctx.facts.driver_version.known
    return sorted(covering, key=lambda e: (e.usable, rank(e, release, driver_known)), reverse=True)
