"""Which accelerator to plan for: a given ``--accelerator``, one implied by ``--variant``, or
the detected one, checked against what the platform's wheels support (pure)."""

from __future__ import annotations

from dlready.install.errors import CPU_CHOICE, PlanError
from dlready.install.facts import GIVEN, IMPLIED, Fact, MachineFacts, nearest_choice
from dlready.install.plan import PlanContext, Rationale
from dlready.install.table import LINUX_X86, MACOS_ARM
from dlready.install.versions import variant_kind, variant_sort_key


def resolve_variant_name(wish: str, platform: str) -> str:
    """``--variant`` as the table names it (``cpu``/``mps`` on macOS: the default wheels)."""
    variant = wish.strip().lower()
    if platform.startswith("macos") and variant in ("cpu", "mps", "default"):
        return "default"
    return variant


def nearest_variant(wish: str, available: list[str]) -> str:
    """The available variant nearest to ``wish``: the closest CUDA/ROCm version, else the
    closest spelling."""
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


def resolve_accelerator(ctx: PlanContext, why: Rationale) -> Fact[str]:
    """The accelerator the plan is for, with its origin (``implied`` by ``--variant``)."""
    fact = ctx.facts.accelerator
    if not fact.known:
        why.warnings.append(f"accelerator unknown ({fact.detail}): planning a CPU build")
        fact = Fact("cpu", fact.origin, fact.detail)
    chosen = fact.origin == GIVEN
    if ctx.wishes.variant:
        implied = _implied_by_variant(ctx.wishes.variant, fact, ctx)
        chosen = chosen or implied is not fact
        fact = implied
    return _fit_to_platform(fact, chosen, ctx, why)


def _implied_by_variant(wish: str, fact: Fact[str], ctx: PlanContext) -> Fact[str]:
    """``--variant cu126`` implies CUDA; a given ``--accelerator`` must agree."""
    accel = fact.value or "cpu"
    kind = variant_kind(resolve_variant_name(wish, ctx.platform))
    implied = {"cuda": "cuda", "rocm": "rocm", "cpu": "cpu"}.get(kind)
    if kind == "default":
        implied = accel if accel in ("mps", "cpu") else "cpu"
    if not implied or implied == accel:
        return fact
    if fact.origin == GIVEN:
        raise PlanError(
            f"--variant {wish} is a {implied} build but --accelerator {accel} was given",
            _agreeing_flags(implied, accel, ctx.platform),
        )
    _refuse_nvidia_flags(ctx.facts, wish, implied)
    return Fact(implied, IMPLIED, f"by --variant {wish}")


def _fits_platform(accel: str, platform: str) -> bool:
    """Whether PyTorch has wheels for ``accel`` on ``platform`` at all."""
    macos = platform.startswith("macos")
    if accel in ("cuda", "rocm") and macos:
        return False
    if accel == "mps":
        return platform == MACOS_ARM
    return accel != "rocm" or platform == LINUX_X86


def _agreeing_flags(implied: str, accel: str, platform: str) -> str:
    """The hint when ``--variant`` and ``--accelerator`` disagree: the accelerator the variant
    implies (where the platform has it), or a variant of the given accelerator (where one is
    named without a version: the CPU or the default macOS wheels)."""
    choices = []
    if _fits_platform(implied, platform):
        choices.append(f"--accelerator {implied}")
    if accel in ("cpu", "mps") and _fits_platform(accel, platform):
        default = "default" if platform.startswith("macos") else "cpu"
        choices.append(f"--variant {default} (the {_WHEELS[default]})")
    elif accel in ("cuda", "rocm") and _fits_platform(accel, platform):
        choices.append(f"--accelerator {accel} without --variant")
    return ", or ".join(choices) or "drop --variant"


_WHEELS = {"default": "default macOS wheels", "cpu": "CPU build"}


def _nvidia_flags(facts: MachineFacts) -> list[str]:
    """The flags given that describe an NVIDIA GPU (and so imply CUDA)."""
    return [
        flag
        for flag, given in (
            ("--driver", facts.driver_version),
            ("--compute-capability", facts.compute_capabilities),
        )
        if given.origin == GIVEN
    ]


def _refuse_nvidia_flags(facts: MachineFacts, wish: str, implied: str) -> None:
    """``--driver``/``--compute-capability`` describe an NVIDIA GPU: not with a non-CUDA build."""
    nvidia_flags = _nvidia_flags(facts)
    if implied != "cuda" and nvidia_flags:
        verb = "describe" if len(nvidia_flags) > 1 else "describes"
        raise PlanError(
            f"{' and '.join(nvidia_flags)} {verb} an NVIDIA GPU, but --variant "
            f"{wish} is a {implied} build",
            f"a CUDA --variant, or drop {' and '.join(nvidia_flags)}",
        )


def _fit_to_platform(fact: Fact[str], chosen: bool, ctx: PlanContext, why: Rationale) -> Fact[str]:
    """CUDA/ROCm do not exist on macOS, MPS only there, ROCm only on Linux x86_64: a given
    accelerator (or CUDA asked for by ``--driver``/``--compute-capability``) that does not
    fit is an error, a detected one falls back with a warning."""
    platform = ctx.platform
    accel = fact.value or "cpu"
    macos = platform.startswith("macos")
    fallback = None
    if macos and accel in ("cuda", "rocm"):
        fallback = "mps" if platform == MACOS_ARM else "cpu"
        default_wheels = (
            f"--accelerator {fallback} --variant default without --driver "
            "--compute-capability (the default macOS wheels)"
        )
        if chosen:
            raise PlanError(f"{accel.upper()} wheels do not exist for macOS", default_wheels)
        nvidia_flags = _nvidia_flags(ctx.facts)
        if nvidia_flags:  # they imply CUDA (--help): asked for, not merely detected
            verb = "describe" if len(nvidia_flags) > 1 else "describes"
            raise PlanError(
                f"{' and '.join(nvidia_flags)} {verb} an NVIDIA GPU, but CUDA wheels do not "
                "exist for macOS",
                default_wheels,
            )
        why.warnings.append(
            f"{accel} ({fact.origin}) does not apply to {platform}: planning the default macOS "
            "wheels"
        )
    elif not macos and accel == "mps":
        if chosen:
            raise PlanError(
                "MPS is macOS only",
                f"{CPU_CHOICE}, or --accelerator cuda without --variant",
            )
        fallback = "cpu"
    elif accel == "rocm" and platform != LINUX_X86:
        if chosen:
            raise PlanError(
                f"ROCm wheels exist for Linux x86_64 only, not {platform}",
                "--os linux --arch x86_64, or --accelerator cpu --variant cpu (the CPU build)",
            )
        why.warnings.append(
            f"AMD GPU found, but ROCm wheels exist for Linux x86_64 only: planning the CPU "
            f"build for {platform}"
        )
        fallback = "cpu"
    if fallback is not None:
        # Not "detected" (nor implied by the flag that implied the other accelerator).
        fact = Fact(
            fallback,
            IMPLIED,
            f"by the platform {platform}: the {accel} {fact.origin} here has no wheels for it",
        )
    if platform == MACOS_ARM and fact.value == "mps":
        why.reasons.append("macOS arm64: the default PyPI wheels include the MPS (Metal) backend")
    return fact
