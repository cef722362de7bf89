"""Which CUDA build for NVIDIA GPUs: the best-ranked usable variant of the release, or the
forced ``--variant`` checked against the GPUs; with the reason and warnings for the user."""

from __future__ import annotations

from dataclasses import dataclass

from dlready.install.archs import Coverage, arch_labels
from dlready.install.cuda_fit import Evaluation, cuda_forms, evaluate, rank, verdict
from dlready.install.errors import PlanError
from dlready.install.hints import covering_hint, jetson_error, no_cuda_fit
from dlready.install.plan import Candidate, DriverSupport, PlanContext, Rationale
from dlready.install.table import LINUX_ARM, PipForm, Release
from dlready.install.versions import variant_sort_key


@dataclass(frozen=True)
class VariantChoice:
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
            "--accelerator cpu"
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
    why.reasons.append(cuda_reason(best, ctx, release))
    why.warnings.extend(cuda_warnings(best, ctx))
    return VariantChoice(best.form.variant, best.form, candidates)


def forced_cuda(
    variant: str, form: PipForm, release: Release, ctx: PlanContext, why: Rationale
) -> tuple[Candidate, ...]:
    """A ``--variant`` CUDA build: refused where it certainly misses a GPU, else warned about."""
    evaluation = evaluate(form, ctx)
    check_forced_coverage(evaluation, release, ctx)
    why.warnings.extend(cuda_warnings(evaluation, ctx))
    return (_candidate(evaluation, True, ctx.facts.driver_version.value),)


def cuda_reason(best: Evaluation, ctx: PlanContext, release: Release) -> str:
    """Why this CUDA variant: its GPU coverage and the driver's part in the choice."""
    facts = ctx.facts
    ccs = facts.compute_capabilities.value or ()
    variant = best.form.variant
    if best.coverage is Coverage.NATIVE:
        gpu = f"its arch list covers compute capability {', '.join(ccs)}"
    elif best.coverage is Coverage.PTX:
        gpu = f"it serves compute capability {', '.join(ccs)} through PTX"
    else:
        gpu = "GPU coverage could not be checked"
    if not facts.driver_version.known:
        driver = (
            "the release's default CUDA build (driver unknown)"
            if variant == release.pypi_default_cuda
            else "driver unknown"
        )
    elif best.driver is DriverSupport.FULL:
        driver = f"the newest CUDA that driver {facts.driver_version.value} fully supports"
    else:
        driver = (
            f"the newest CUDA that driver {facts.driver_version.value} runs "
            "(minor-version compatibility)"
        )
    experimental = " (experimental build)" if best.form.experimental else ""
    return f"{variant}{experimental}: {gpu}; {driver}"


def cuda_warnings(evaluation: Evaluation, ctx: PlanContext) -> list[str]:
    """What may still go wrong with this CUDA build on this machine."""
    return [
        *_coverage_warnings(evaluation, ctx),
        *_driver_warnings(evaluation, ctx),
        *_unchecked_warnings(evaluation, ctx),
    ]


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
    if not capabilities:
        warnings.append(
            f"GPU compute capability unknown: {form.variant} has kernels for {_labels(form)} "
            "(pass --compute-capability to check)"
        )
    elif form.arch is None:
        warnings.append(
            f"{form.variant}: the reference has no arch list for this build; coverage of "
            f"compute capability {', '.join(capabilities)} is unchecked"
        )
    elif form.arch.unconfirmed:
        warnings.append(f"{form.variant}: {form.arch.unconfirmed}")
    floor = table.drivers.get(form.variant)
    if floor is not None:
        windows = facts.os.value == "windows" or facts.is_wsl.value is True
        warnings += [f"{form.variant} driver floor: {note}" for note in floor.unconfirmed(windows)]
    if facts.arch.value in ("aarch64", "arm64") and any(
        cc in table.jetson_compute_capabilities for cc in capabilities
    ):
        warnings.append(table.jetson_note)
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
