"""Which CUDA build for NVIDIA GPUs: the best-ranked usable variant of the release, or the
forced ``--variant`` checked against the GPUs; with the reason and warnings for the user."""

from __future__ import annotations

from msgspec import Struct

from dlready.install.archs import Coverage, arch_labels
from dlready.install.caveats import arch_list_caveat, driver_floor_caveats
from dlready.install.cuda_fit import Evaluation, cuda_forms, evaluate, rank, verdict
from dlready.install.errors import CPU_CHOICE, PlanError
from dlready.install.hints import covering_hint, jetson_error, no_cuda_fit
from dlready.install.plan import Candidate, DriverSupport, PlanContext, Rationale
from dlready.install.table import LINUX_ARM, PipForm, Release
from dlready.install.versions import variant_sort_key

JETSON_WORDS = (
    "pytorch.org's linux-aarch64 CUDA wheels are built for server ARM (SBSA); Jetson modules "
    "normally use the wheels NVIDIA publishes for each JetPack release"
)


class VariantChoice(Struct, frozen=True):
    """The chosen variant, its pip form (for the arch list and index) and the candidates."""

    variant: str
    pip: PipForm | None
    candidates: tuple[Candidate, ...] = ()


def _candidate(evaluation: Evaluation, chosen: bool, driver: str | None) -> Candidate:
    return Candidate(
        evaluation.form.variant,
        evaluation.usable,
        chosen,
        evaluation.coverage_state,
        evaluation.driver,
        verdict(evaluation, driver),
    )


def choose_cuda(
    release: Release, ctx: PlanContext, available: list[str], why: Rationale
) -> VariantChoice:
    """The best usable CUDA variant of the release; none fits: a :class:`PlanError` with fixes."""
    forms = cuda_forms(release, ctx, available)
    if not forms:
        raise PlanError(
            f"torch {release.torch} has no CUDA build for {ctx.platform}"
            + (" with conda" if ctx.conda else ""),
            CPU_CHOICE
            + (
                ""
                if ctx.platform != LINUX_ARM
                else ", or a newer torch (aarch64 CUDA wheels start at 2.7)"
            ),
        )
    evaluations = [evaluate(form, ctx) for form in forms]
    driver_known = ctx.facts.driver_version.known
    usable = [e for e in evaluations if e.usable]
    best = max(usable, key=lambda e: rank(e, release, driver_known)) if usable else None
    newest_first = sorted(evaluations, key=lambda e: variant_sort_key(e.form.variant), reverse=True)
    driver = ctx.facts.driver_version.value
    candidates = tuple(_candidate(e, e is best, driver) for e in newest_first)
    if best is None:
        jetson = tuple(sorted({cc for e in evaluations for cc in e.jetson}))
        if jetson:
            raise jetson_error(release, jetson, ctx)
        raise no_cuda_fit(release, evaluations, ctx)
    why.reasons.append(cuda_reason(best, evaluations, ctx, release))
    cuda_warnings(best, ctx, why)
    return VariantChoice(best.form.variant, best.form, candidates)


def forced_cuda(
    variant: str, form: PipForm, release: Release, ctx: PlanContext, why: Rationale
) -> tuple[Candidate, ...]:
    """A ``--variant`` CUDA build: refused where it certainly misses a GPU, else warned about."""
    evaluation = evaluate(form, ctx)
    check_forced_coverage(evaluation, release, ctx)
    cuda_warnings(evaluation, ctx, why)
    return (_candidate(evaluation, True, ctx.facts.driver_version.value),)


def cuda_reason(
    best: Evaluation, evaluations: list[Evaluation], ctx: PlanContext, release: Release
) -> str:
    """Why this CUDA variant, naming the constraint that decided: the GPU's architecture (newer
    builds have no kernels for it), the driver (newer builds need a newer one, or run only
    through minor-version compatibility), or simply the newest build."""
    facts = ctx.facts
    ccs = ", ".join(facts.compute_capabilities.value or ())
    variant = best.form.variant
    experimental = " (experimental build)" if best.form.experimental else ""
    newer = [
        e
        for e in evaluations
        if variant_sort_key(e.form.variant) > variant_sort_key(variant) and e is not best
    ]
    lost_on_kernels = [e.form.variant for e in newer if e.coverage is Coverage.NONE]
    if newer and len(lost_on_kernels) == len(newer):
        return (
            f"{variant}{experimental}: the newest build of torch {release.torch} with kernels "
            f"for compute capability {ccs} ({', '.join(lost_on_kernels)} have none); "
            + _driver_words(best, ctx, release, newer)
        )
    if best.coverage is Coverage.NATIVE:
        gpu = f"its arch list covers compute capability {ccs}"
    elif best.coverage is Coverage.PTX:
        gpu = f"it serves compute capability {ccs} through PTX"
    else:
        gpu = "GPU coverage could not be checked"
    return f"{variant}{experimental}: {gpu}; {_driver_words(best, ctx, release, newer)}"


_COVER_RANK = {None: 0, Coverage.PTX: 1, Coverage.NATIVE: 2}


def _names(evaluations: list[Evaluation], one: str, many: str) -> str:
    """``cu118 is an experimental build`` / ``cu118, cu121 are experimental builds``."""
    return (
        f"{', '.join(e.form.variant for e in evaluations)} {one if len(evaluations) == 1 else many}"
    )


def _driver_words(
    best: Evaluation, ctx: PlanContext, release: Release, newer: list[Evaluation] | None = None
) -> str:
    """The driver's part of the reason, and why each newer build with kernels for the GPUs
    lost, by the first rule of :func:`dlready.install.cuda_fit.rank` it lost on: "the newest"
    is said only of what is true (the newest stable build, when a newer one is experimental)."""
    driver = ctx.facts.driver_version
    variant = best.form.variant
    if not driver.known:
        if variant == release.pypi_default_cuda:
            return "the release's default CUDA build (driver unknown)"
        return "driver unknown"
    runnable = [e for e in newer or [] if e.coverage is not Coverage.NONE]
    worse_cover = [
        e for e in runnable if _COVER_RANK.get(e.coverage, -1) < _COVER_RANK.get(best.coverage, -1)
    ]
    rest = [e for e in runnable if e not in worse_cover]
    too_old = [e for e in rest if e.driver is DriverSupport.TOO_OLD]
    minor = [
        e
        for e in rest
        if e.driver is DriverSupport.MINOR_COMPAT and best.driver is DriverSupport.FULL
    ]
    experimental = [
        e
        for e in rest
        if e not in too_old
        and e not in minor
        and e.form.experimental
        and not best.form.experimental
    ]
    minor_words = "would run only through minor-version compatibility"
    lost = [
        (worse_cover, "has less code for the GPU", "have less code for the GPU"),
        (minor, minor_words, minor_words),
        (too_old, "needs a newer driver", "need a newer driver"),
        (experimental, "is an experimental build", "are experimental builds"),
    ]
    why_not = [_names(group, one, many) for group, one, many in lost if group]
    stable = "stable " if experimental else ""
    if best.driver is DriverSupport.FULL:
        if runnable and not worse_cover:
            words = f"the newest {stable}CUDA that driver {driver.value} fully supports"
        else:  # no newer build, or none of them has as much code for the GPU
            words = f"driver {driver.value} fully supports it"
            if not newer:
                words = f"the newest CUDA that driver {driver.value} fully supports"
        return f"{words} ({'; '.join(why_not)})" if why_not else words
    if best.driver is DriverSupport.MINOR_COMPAT:
        if (too_old or experimental) and not worse_cover:
            return (
                f"the newest {stable}CUDA that driver {driver.value} runs (minor-version "
                f"compatibility; {'; '.join(why_not)})"
            )
        words = f"driver {driver.value} runs it through CUDA minor-version compatibility"
        return f"{words} ({'; '.join(why_not)})" if why_not else words
    return f"driver {driver.value}"


def cuda_warnings(evaluation: Evaluation, ctx: PlanContext, why: Rationale) -> None:
    """What may still go wrong with this CUDA build on this machine, and what the table could
    not confirm about it."""
    why.warnings.extend(_coverage_warnings(evaluation, ctx))
    why.warnings.extend(_driver_warnings(evaluation, ctx))
    why.warnings.extend(_unchecked_warnings(evaluation, ctx))
    windows = ctx.facts.os.value == "windows" or ctx.facts.is_wsl.value is True
    why.unconfirmed.extend(arch_list_caveat(evaluation.form))
    why.unconfirmed.extend(driver_floor_caveats(evaluation.form.variant, ctx.table, windows))


def _labels(form: PipForm) -> str:
    return " ".join(arch_labels(form.arch.arch_list)) if form.arch else "unknown"


def _coverage_warnings(evaluation: Evaluation, ctx: PlanContext) -> list[str]:
    form = evaluation.form
    warnings = []
    if evaluation.uncovered:
        # Only reached where the miss is not certain (see check_forced_coverage).
        warnings.append(
            f"{form.variant} probably has no kernels for compute capability "
            f"{', '.join(evaluation.uncovered)} (its arch list, not confirmed for this build: "
            f'{_labels(form)}): if so, torch.cuda fails on that GPU ("no kernel image is '
            'available")'
        )
    if evaluation.ptx_only:
        warnings.append(
            f"{form.variant} serves compute capability {', '.join(evaluation.ptx_only)} only "
            "through PTX: it works, but the first CUDA call JIT-compiles kernels (slow start)"
        )
    return warnings


def _driver_warnings(evaluation: Evaluation, ctx: PlanContext) -> list[str]:
    form = evaluation.form
    driver = ctx.facts.driver_version.value
    if evaluation.driver is DriverSupport.TOO_OLD:
        return [
            f"{form.variant} needs NVIDIA driver >= {evaluation.required_min}; this driver is "
            f"{driver}: torch.cuda.is_available() will be False"
        ]
    if evaluation.driver is DriverSupport.MINOR_COMPAT:
        return [
            f"driver {driver} runs {form.variant} through CUDA minor-version compatibility "
            f"(no PTX JIT of newer PTX); driver >= {evaluation.required_full} gives full support"
        ]
    if evaluation.driver is DriverSupport.UNKNOWN and evaluation.required_min:
        return [
            f"NVIDIA driver unknown: {form.variant} needs >= {evaluation.required_min} "
            "(pass --driver to check)"
        ]
    return []


def _unchecked_warnings(evaluation: Evaluation, ctx: PlanContext) -> list[str]:
    facts, table, form = ctx.facts, ctx.table, evaluation.form
    capabilities = facts.compute_capabilities.value or ()
    warnings = []
    if not capabilities and form.arch is None:
        warnings.append(
            f"GPU compute capability unknown, and dlready's table does not list the GPU "
            f"architectures of the {form.variant} build: which GPUs it runs on is unchecked "
            "(pass --compute-capability, and run `dlready smoke` after installing)"
        )
    elif not capabilities:
        warnings.append(
            f"GPU compute capability unknown: {form.variant} has kernels for {_labels(form)} "
            "(pass --compute-capability to check)"
        )
    elif form.arch is None:
        warnings.append(
            f"{form.variant}: dlready's table does not list the GPU architectures of this "
            f"build, so whether it runs on compute capability {', '.join(capabilities)} is "
            "unchecked (run `dlready smoke` after installing)"
        )
    if facts.arch.value in ("aarch64", "arm64") and any(
        cc in table.jetson_compute_capabilities for cc in capabilities
    ):
        warnings.append(JETSON_WORDS)
    return warnings


def check_forced_coverage(evaluation: Evaluation, release: Release, ctx: PlanContext) -> None:
    """A forced ``--variant`` whose arch list misses a known GPU is an impossible request.

    Only where the miss is certain: with the arch list unknown, not confirmed, or read from
    the pip wheel for a conda build, it stays a warning (:func:`cuda_warnings`).
    """
    form = evaluation.form
    if evaluation.jetson:
        raise jetson_error(release, evaluation.jetson, ctx)
    if form.arch is None or form.arch.unconfirmed or ctx.conda or not evaluation.uncovered:
        return
    labels = " ".join(arch_labels(form.arch.arch_list))
    raise PlanError(
        f"--variant {form.variant}: the {form.variant} build of torch {release.torch} has no "
        f"kernels for compute capability {', '.join(evaluation.uncovered)} (its arch list: "
        f"{labels}); torch.cuda would fail on that GPU",
        covering_hint(release, ctx),
    )
