"""The command line itself: which packages, pinned how, from which index or channel (pure)."""

from __future__ import annotations

import difflib

from dlready.install.errors import PlanError
from dlready.install.plan import PACKAGE_ORDER, PinnedPackage, PlanContext
from dlready.install.table import LINUX_X86, WINDOWS_X86, CondaForm, PipForm, Release

_TYPO_CUTOFF = 0.8
"""``torchvison`` -> ``torchvision`` (0.95) is a typo; ``tensorflow`` -> ``torchaudio`` (0.4)
is another package."""
UV_SAME_PINS_REASON = (
    "uv: the pins and index of the published pip command (+variant local versions only where "
    "it pins them)"
)


def packages_for(release: Release, ctx: PlanContext) -> tuple[tuple[str, ...], list[str]]:
    """The packages to install (``--packages``, else all the release has) and notes on them."""
    versions = release.versions(ctx.wishes.manager)
    if ctx.wishes.packages is None:
        names = tuple(name for name in PACKAGE_ORDER if name in versions)
        notes = []
        if "torchaudio" not in versions:
            notes.append(
                f"torchaudio left out: it has no release for torch {release.torch} "
                "(torchaudio 2.11.0 was the last)"
            )
        return names, notes
    wanted = [_package_name(raw, release, versions, ctx) for raw in ctx.wishes.packages]
    if not any(wanted):
        raise PlanError("--packages is empty", f"--packages {','.join(PACKAGE_ORDER)}")
    return tuple(name for name in PACKAGE_ORDER if name in wanted), []


def _package_name(raw: str, release: Release, versions: dict[str, str], ctx: PlanContext) -> str:
    """One ``--packages`` entry, checked ("" for an empty entry)."""
    name = raw.strip().lower()
    if name == "pytorch":
        name = "torch"
    if name and name not in PACKAGE_ORDER:
        raise _unknown_package(raw, name)
    if name and name not in versions:
        last = next(
            (r for r in ctx.table.releases if "torchaudio" in r.pip_versions),
            None,
        )
        nearest = (
            f"--torch {last.torch} (the last with {name})"
            if last and name == "torchaudio"
            else "drop it"
        )
        raise PlanError(
            f"{name} has no release for torch {release.torch}",
            f"drop {name} from --packages, or {nearest}",
        )
    return name


def _unknown_package(raw: str, name: str) -> PlanError:
    """Not torch, torchvision or torchaudio: "did you mean" only for a near-typo; another
    package (tensorflow, numpy) is named as one this command does not install."""
    close = difflib.get_close_matches(name, list(PACKAGE_ORDER), n=1, cutoff=_TYPO_CUTOFF)
    choices = ",".join(PACKAGE_ORDER)
    if close:
        return PlanError(
            f"--packages: unknown package {raw!r}",
            f"--packages with any of {choices} (did you mean {close[0]}?)",
        )
    return PlanError(
        f"--packages: {raw.strip()} is not a PyTorch package; this command installs only "
        f"{', '.join(PACKAGE_ORDER)}",
        f"--packages with any of {choices}, and install {raw.strip()} separately",
    )


def _index_carries_local_versions(form: PipForm, platform: str) -> bool:
    """Indexes whose wheels of every package carry ``+variant`` local versions (the
    ``--index-url``/``--extra-index-url`` indexes for Linux x86_64 and Windows). Not
    ``torch_stable.html``: there some packages had none (torchaudio 0.7.2, Windows cu102)."""
    return (
        form.flag in ("--index-url", "--extra-index-url")
        and form.kind in ("cuda", "rocm", "cpu")
        and platform in (LINUX_X86, WINDOWS_X86)
    )


def render_pip(
    release: Release, form: PipForm, names: tuple[str, ...], ctx: PlanContext
) -> tuple[str, tuple[PinnedPackage, ...], list[str]]:
    """pip or uv: the published pins (``form.local``: the packages whose published pin carries
    ``+variant``), the same for uv; a replacement (``pin_local_versions``) adds local pins only
    on indexes where every wheel carries one, else ``--force-reinstall``."""
    wishes = ctx.wishes
    notes: list[str] = []
    uv = wishes.manager == "uv"
    local_names = set(form.local)
    if wishes.pin_local_versions and _index_carries_local_versions(form, ctx.platform):
        local_names = set(names)
    if uv:
        notes.append(UV_SAME_PINS_REASON)
    packages = tuple(
        PinnedPackage(
            name,
            release.pip_versions[name],
            form.variant if name in local_names else None,
            "===" if (name in form.exact_equality and not uv) else "==",
        )
        for name in names
    )
    parts = ["uv pip install" if uv else "pip install", *(p.spec for p in packages)]
    if form.flag:
        parts += [form.flag, form.url or ""]
    if wishes.pin_local_versions and "torch" not in local_names:
        # No local version to pin: without this, an installed `2.0.1+cpu` would satisfy
        # `torch==2.0.1` and the replacement would do nothing.
        parts.append("--force-reinstall")
        notes.append("--force-reinstall: replaces the installed build of the same version")
    return " ".join(parts), packages, notes


def render_conda(
    release: Release, form: CondaForm, names: tuple[str, ...]
) -> tuple[str, tuple[PinnedPackage, ...]]:
    """``conda install pytorch==X torchvision==Y pytorch-cuda=12.1 -c pytorch -c nvidia``."""
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
