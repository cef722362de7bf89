"""From machine facts and the user's wishes to one install plan (pure, table-driven).

The steps, each in its own module (docs/install-cmd.md lists the rules with examples):

1. Release (:mod:`~dlready.install.release_choice`): the pinned ``--torch`` release, else the
   newest non-LTS release whose stable Python range contains this Python and that ships wheels
   for this platform.
2. Accelerator (:mod:`~dlready.install.accelerator`): a given ``--accelerator`` (or one implied
   by ``--variant``) must exist on the platform, else the request is impossible; a detected one
   that the platform cannot use falls back (macOS -> MPS/CPU wheels, ROCm off Linux x86_64 ->
   CPU) with a warning.
3. NVIDIA (:mod:`~dlready.install.cuda_choice`, :mod:`~dlready.install.cuda_fit`): among the
   release's CUDA variants for this platform, drop those whose arch list misses a GPU or whose
   driver floor is above the driver; rank the rest by coverage (native > PTX only > arch list
   unknown), then full driver support over minor-version compatibility, then stable over
   experimental, then the newest CUDA. When the driver is unknown, the release's default CUDA
   build ranks first. No fit: a :class:`PlanError` saying what would fix it
   (:mod:`~dlready.install.hints`).
4. AMD on Linux x86_64: the release's newest ROCm variant. macOS: the default wheels (MPS on
   Apple silicon). No GPU on Linux/Windows: the CPU index, never the multi-GB CUDA default.
5. conda: only releases with official conda packages (up to 2.5.1); after that the request is
   impossible and the error offers the pip command and the community conda-forge package.
6. The command line (:mod:`~dlready.install.command_line`).
"""

from __future__ import annotations

from msgspec.structs import replace

from dlready.install.accelerator import nearest_variant, resolve_accelerator, resolve_variant_name
from dlready.install.caveats import Unconfirmed, caveat_lines
from dlready.install.command_line import packages_for, render_conda, render_pip
from dlready.install.cuda_choice import VariantChoice, choose_cuda, forced_cuda
from dlready.install.cuda_fit import available_variants
from dlready.install.errors import CPU_CHOICE, PlanError
from dlready.install.facts import (
    DETECTED,
    IMPLIED,
    UNSUPPORTED_OS_DETAIL,
    Fact,
    MachineFacts,
    NvidiaFault,
    nearest_choice,
)
from dlready.install.hints import variant_hint
from dlready.install.plan import (
    MANAGERS,
    PACKAGE_ORDER,
    SUPPORTED_PLATFORMS,
    Candidate,
    InstallPlan,
    InstallWishes,
    PinnedPackage,
    PlanContext,
    Rationale,
)
from dlready.install.release_choice import choose_release, newest_with, release_caveats
from dlready.install.table import (
    LINUX_ARM,
    LINUX_X86,
    MACOS_X86,
    WINDOWS_X86,
    CompatTable,
    Release,
    load_compat_table,
)
from dlready.install.versions import compare_numeric, variant_kind, variant_sort_key

__all__ = [
    "MANAGERS",
    "PACKAGE_ORDER",
    "SUPPORTED_PLATFORMS",
    "Candidate",
    "InstallPlan",
    "InstallWishes",
    "PinnedPackage",
    "plan_install",
]

_FLAG_FORMS = {"os": "linux|windows|macos", "arch": "x86_64|aarch64|arm64", "python": "X.Y"}


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
    ctx = PlanContext(facts, wishes, table, platform_of(facts))
    if (
        facts.nvidia_fault is not None
        and facts.accelerator.origin == DETECTED
        and not wishes.variant
    ):
        raise _driver_first(facts.nvidia_fault, ctx)
    why = Rationale()
    if facts.arch.origin == IMPLIED:
        why.reasons.append(f"arch {facts.arch.value}, implied {facts.arch.detail}")
    why.warnings.extend(f"detection: {note}" for note in facts.notes)

    release = choose_release(ctx, why)
    if ctx.conda and not release.conda_official:
        raise _conda_impossible(release, ctx)
    accel_fact = resolve_accelerator(ctx, why)
    if accel_fact.origin == IMPLIED and accel_fact.value != facts.accelerator.value:
        # --variant cu126 on a machine detected as CPU-only: the plan is for CUDA, and the
        # facts it shows say so (not "accelerator cpu (detected)").
        ctx = replace(ctx, facts=replace(facts, accelerator=accel_fact))
    accel = accel_fact.value or "cpu"
    names, package_notes = packages_for(release, ctx)
    why.reasons.extend(package_notes)
    available = available_variants(release, ctx.platform, wishes.manager)
    if ctx.conda and not available:
        raise PlanError(
            f"no official conda packages of torch {release.torch} for {ctx.platform}",
            "--manager pip",
        )
    choice = _choose_variant(release, accel, available, ctx, why)
    _platform_notes(release, accel, choice.variant, ctx, why)
    return _assemble(release, choice, names, available, ctx, why)


def platform_of(facts: MachineFacts) -> str:
    """The target platform (``linux-x86_64``...); an unknown or unsupported one is an error."""
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


def _choose_variant(
    release: Release, accel: str, available: list[str], ctx: PlanContext, why: Rationale
) -> VariantChoice:
    if ctx.wishes.variant:
        return _forced_variant(ctx.wishes.variant, release, available, ctx, why)
    if accel == "cuda":
        return choose_cuda(release, ctx, available, why)
    if accel == "rocm":
        return _choose_rocm(release, available, ctx, why)
    return _choose_cpu(release, available, ctx, why)


def _forced_variant(
    wish: str, release: Release, available: list[str], ctx: PlanContext, why: Rationale
) -> VariantChoice:
    variant = resolve_variant_name(wish, ctx.platform)
    if variant not in available:
        raise PlanError(
            f"torch {release.torch} has no {variant} build for {ctx.platform}"
            + (" with conda" if ctx.conda else "")
            + f" (available: {', '.join(available) or 'none'})",
            variant_hint(variant, available, release, ctx),
        )
    asked = wish.strip().lower()
    why.reasons.append(
        f"{variant}: the variant you asked for with --variant"
        if asked == variant
        else f"{variant}: PyTorch's macOS wheels, which are what --variant {asked} means on "
        "macOS (one build: the CPU, and the Apple GPU through mps)"
    )
    pip = release.pip_form(variant, ctx.platform)
    candidates: tuple[Candidate, ...] = ()
    if variant_kind(variant) == "cuda" and pip is not None:
        candidates = forced_cuda(variant, pip, release, ctx, why)
    return VariantChoice(variant, pip, candidates)


def _choose_rocm(
    release: Release, available: list[str], ctx: PlanContext, why: Rationale
) -> VariantChoice:
    rocm = sorted((v for v in available if v.startswith("rocm")), key=variant_sort_key)
    if not rocm:
        newer = newest_with(
            ctx.table,
            ctx.python,
            lambda r: any(f.variant.startswith("rocm") for f in r.pip_forms(ctx.platform)),
        )
        raise PlanError(
            f"torch {release.torch} has no ROCm build for {ctx.platform}",
            (f"--torch {newer.torch}" if newer else "a newer torch") + f", or {CPU_CHOICE}",
        )
    variant = rocm[-1]
    why.reasons.append(f"{variant}: the ROCm build of torch {release.torch} for an AMD GPU")
    why.warnings.append(
        "ROCm: dlready does not check the GPU's gfx architecture against the ROCm release; "
        "see the ROCm compatibility matrix for your card"
    )
    return VariantChoice(variant, release.pip_form(variant, ctx.platform))


def _choose_cpu(
    release: Release, available: list[str], ctx: PlanContext, why: Rationale
) -> VariantChoice:
    platform = ctx.platform
    variant = "default" if platform.startswith("macos") else "cpu"
    if variant not in available:
        raise PlanError(
            f"torch {release.torch} has no {variant} build for {platform}",
            f"--variant {nearest_variant(variant, available)}" if available else "another torch",
        )
    if variant == "cpu":
        default_cuda = {
            LINUX_X86: release.pypi_default_cuda,
            LINUX_ARM: release.pypi_default_cuda_aarch64,
        }.get(platform)
        if ctx.conda:
            why.reasons.append("no GPU: the CPU-only conda packages (cpuonly)")
        elif default_cuda:
            why.reasons.append(
                f"no GPU: the CPU index, because plain `pip install torch` on {platform} "
                f"downloads the multi-GB {default_cuda} CUDA build"
            )
        else:
            why.reasons.append("no GPU: the CPU build")
    elif platform == MACOS_X86:
        why.reasons.append("macOS x86_64: the default PyPI wheels (CPU)")
    return VariantChoice(variant, release.pip_form(variant, platform))


def _platform_notes(
    release: Release, accel: str, variant: str, ctx: PlanContext, why: Rationale
) -> None:
    cuda = variant_kind(variant) == "cuda"
    if ctx.platform == WINDOWS_X86 and cuda and not ctx.conda:
        why.reasons.append(
            "Windows: PyPI's torch wheel is the CPU build, so CUDA comes from the index URL"
        )
    if ctx.facts.is_wsl.value is True and cuda:
        why.reasons.append(
            "WSL2: the Linux wheels; the driver is the Windows driver, read through NVML "
            "(WSL has no /proc/driver/nvidia), and is compared with Windows driver numbers"
        )
    mps_first = ctx.table.mps_first_release
    if accel == "mps" and compare_numeric(release.torch, mps_first) < 0:
        why.warnings.append(
            f"MPS (Apple GPU) support starts with torch {mps_first}: "
            f"torch {release.torch} runs on the CPU"
        )
        why.unconfirmed.append(
            Unconfirmed(
                f"the first torch release with MPS (Apple GPU) support ({mps_first})",
                "commands",
                f"MPS first release {mps_first} (UNCONFIRMED)",
            )
        )


def _assemble(
    release: Release,
    choice: VariantChoice,
    names: tuple[str, ...],
    available: list[str],
    ctx: PlanContext,
    why: Rationale,
) -> InstallPlan:
    """Render the command for the chosen variant and gather everything into the plan."""
    table, variant, pip = ctx.table, choice.variant, choice.pip
    why.sources.append(release.python.source)
    index_flag = index_url = None
    channels: tuple[str, ...] = ()
    extras: tuple[str, ...] = ()
    packages: tuple[PinnedPackage, ...]
    if ctx.conda:
        conda = release.conda_form(variant, ctx.platform)
        if conda is None:  # guarded by available_variants; kept for type narrowing
            raise PlanError(f"no conda {variant} build", f"--variant {available[0]}")
        command, packages = render_conda(release, conda, names)
        why.unconfirmed.extend(
            Unconfirmed(f"the conda {variant} packages", "commands", f"conda: {text}")
            for text in conda.unconfirmed
        )
        why.sources.append(table.origins.get(conda.origin, conda.origin))
        channels = conda.channels
        extras = (conda.cuda_package,) if conda.cuda_package else ()
        if conda.cuda_package and variant_kind(variant) == "cuda":
            why.reasons.append(
                f"conda: the CUDA runtime comes with {conda.cuda_package} from the "
                f"{', '.join(channels)} channel(s)"
            )
        if pip is not None and pip.arch is not None:
            why.unconfirmed.append(
                Unconfirmed(
                    f"which GPUs the conda {variant} build has kernels for (judged from the pip "
                    "wheel's list)",
                    "arch_lists",
                    f"conda {variant}: arch coverage judged from the pip wheel's list",
                )
            )
    else:
        if pip is None:
            raise PlanError(f"no pip {variant} build", f"--variant {available[0]}")
        command, packages, render_notes = render_pip(release, pip, names, ctx)
        why.reasons.extend(render_notes)
        why.unconfirmed.extend(
            Unconfirmed(
                f"the {variant} wheels for {ctx.platform} ({pip.url or 'PyPI'})",
                "commands",
                f"{variant}: {text}",
            )
            for text in pip.unconfirmed
        )
        why.sources.append(table.origins.get(pip.origin, pip.origin))
        index_flag, index_url = pip.flag, pip.url
    if pip is not None and pip.arch is not None:
        why.sources.append(pip.arch.source)
    floor = table.drivers.get(variant)
    if floor is not None:
        why.sources.append(floor.source)
    why.unconfirmed.extend(release_caveats(release, variant, ctx, names))
    why.warnings.extend(caveat_lines(why.unconfirmed, table))
    return InstallPlan(
        command_line=command,
        manager=ctx.wishes.manager,
        torch=release.torch,
        variant=variant,
        platform=ctx.platform,
        packages=packages,
        index_url=index_url,
        index_flag=index_flag,
        channels=channels,
        conda_extras=extras,
        warnings=_dedupe(why.warnings),
        reasons=_dedupe(why.reasons),
        facts=ctx.facts,
        candidates=choice.candidates,
        sources=_dedupe(why.sources),
        table_checked_on=table.checked_on,
        research_notes=_dedupe([item.note for item in why.unconfirmed]),
    )


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _conda_impossible(release: Release, ctx: PlanContext) -> PlanError:
    table = ctx.table
    try:
        pip_plan = plan_install(
            ctx.facts, InstallWishes(torch=release.torch, manager="pip"), table=table
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


def _driver_first(fault: NvidiaFault, ctx: PlanContext) -> PlanError:
    """An NVIDIA GPU with a broken driver: no CPU build (it would be the wrong install), but
    the fix, and the command that will fit once the driver works when the GPU and driver are
    known without NVML (PCI device id, kernel module version)."""
    hints = [f"NVIDIA GPU evidence: {fault.evidence}"]
    command = _command_once_fixed(fault, ctx)
    if command:
        hints += ["once the driver works, this command fits this machine:", command]
    else:
        hints.append(
            "once the driver works, run dlready install-cmd again (or describe the machine: "
            "--driver VERSION --compute-capability X.Y)"
        )
    hints.append("to install the CPU build anyway: dlready install-cmd --accelerator cpu")
    return PlanError(f"fix the NVIDIA driver first: {fault.problem}", fault.fix, hints=tuple(hints))


def _command_once_fixed(fault: NvidiaFault, ctx: PlanContext) -> str | None:
    if not (fault.kernel_driver_version and fault.compute_capabilities):
        return None
    repaired = replace(
        ctx.facts,
        accelerator=Fact("cuda", DETECTED, "PCI device id"),
        driver_version=Fact(fault.kernel_driver_version, DETECTED, "NVIDIA kernel module"),
        compute_capabilities=Fact(fault.compute_capabilities, DETECTED, "PCI device id"),
        gpu_names=fault.gpu_names,
        notes=(),
        nvidia_fault=None,
    )
    try:
        return plan_install(repaired, ctx.wishes, ctx.table).command_line
    except PlanError:
        return None
