"""What to do instead: the nearest valid choice named by an impossible request's error (pure)."""

from __future__ import annotations

from dlready.install.accelerator import nearest_variant
from dlready.install.archs import Coverage
from dlready.install.cuda_fit import (
    Evaluation,
    covering_evaluations,
    evaluate,
    gpu_coverage,
    rank,
    verdict,
)
from dlready.install.errors import CPU_CHOICE, PlanError
from dlready.install.plan import PlanContext
from dlready.install.release_choice import python_fits
from dlready.install.table import LINUX_ARM, Release
from dlready.install.versions import numeric_key, variant_kind


def covering_hint(release: Release, ctx: PlanContext) -> str:
    """A variant of this release that covers every GPU, else an older torch, else the CPU."""
    gpus = ", ".join(ctx.facts.compute_capabilities.value or ())
    covering = covering_evaluations(release, ctx)
    if covering:
        return f"--variant {covering[0].form.variant} (covers compute capability {gpus})"
    older = older_release_fix(release, ctx)
    return "; or ".join([*([older] if older else []), CPU_CHOICE])


def variant_hint(variant: str, available: list[str], release: Release, ctx: PlanContext) -> str:
    """The nearest available variant; for CUDA with known GPUs, only variants covering them."""
    capabilities = ctx.facts.compute_capabilities.value or ()
    if variant_kind(variant) != "cuda" or not capabilities:
        return f"--variant {nearest_variant(variant, available)}"
    evaluations = covering_evaluations(release, ctx)
    # Prefer variants this driver runs; with none, still only variants that cover the GPUs.
    covering = [e.form.variant for e in evaluations if e.usable] or [
        e.form.variant for e in evaluations
    ]
    if covering:
        gpus = ", ".join(capabilities)
        return f"--variant {nearest_variant(variant, covering)} (covers compute capability {gpus})"
    return covering_hint(release, ctx)


def jetson_error(release: Release, capabilities: tuple[str, ...], ctx: PlanContext) -> PlanError:
    """Jetson modules need NVIDIA's JetPack wheels, unless some release's linux-aarch64 arch
    list names their compute capability (then that release)."""
    table = ctx.table
    gpus = ", ".join(capabilities)
    sm = " ".join(f"sm_{cc.replace('.', '')}" for cc in capabilities)
    for other in table.releases:
        if other.lts or python_fits(other, ctx.python) != "stable":
            continue
        for form in other.pip_forms(LINUX_ARM):
            if form.kind != "cuda" or form.arch is None:
                continue
            levels = [
                gpu_coverage(form.arch.arch_list, cc, LINUX_ARM, table) for cc in capabilities
            ]
            if all(level is Coverage.NATIVE for level in levels):
                return PlanError(
                    f"torch {release.torch} has no linux-aarch64 CUDA wheel with {sm} "
                    f"kernels for this Jetson module (compute capability {gpus})",
                    f"--torch {other.torch} --variant {form.variant} (its arch list names {sm})",
                )
    jetson = table.public_sources.get("jetson")
    where = f" ({jetson.url})" if jetson else ""
    return PlanError(
        f"Jetson module (compute capability {gpus}): pytorch.org's linux-aarch64 CUDA wheels "
        f"are built for server ARM (SBSA) without {sm} kernels",
        f"NVIDIA's PyTorch wheels for Jetson, built for your JetPack release{where}, or "
        f"{CPU_CHOICE}",
    )


def no_cuda_fit(release: Release, evaluations: list[Evaluation], ctx: PlanContext) -> PlanError:
    """No CUDA build of the release fits: say why each fails and what would fix it."""
    facts = ctx.facts
    driver = facts.driver_version.value
    problems = "; ".join(f"{e.form.variant}: {verdict(e, driver)}" for e in evaluations)
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
    older = older_release_fix(release, ctx)
    if older:
        fixes.append(older)
    fixes.append(CPU_CHOICE)
    gpus = ", ".join(facts.compute_capabilities.value or ()) or "unknown"
    return PlanError(
        f"no CUDA build of torch {release.torch} for {ctx.platform} fits this machine "
        f"(compute capability {gpus}, driver {driver or 'unknown'}): {problems}",
        "; or ".join(fixes),
    )


def older_release_fix(release: Release, ctx: PlanContext) -> str | None:
    """``--torch X --variant Y``: the newest older release with a CUDA build that fits."""
    for older in ctx.table.releases:
        if older.lts or older.key >= release.key or python_fits(older, ctx.python) != "stable":
            continue
        forms = [f for f in older.pip_forms(ctx.platform) if f.kind == "cuda"]
        if ctx.conda:
            conda_variants = {c.variant for c in older.conda if c.platform == ctx.platform}
            forms = [f for f in forms if f.variant in conda_variants]
        fitting = [e for e in (evaluate(f, ctx) for f in forms) if e.usable]
        if fitting:
            pick = max(fitting, key=lambda e: rank(e, older, ctx.facts.driver_version.known))
            return f"--torch {older.torch} --variant {pick.form.variant}"
    return None
