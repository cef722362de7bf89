"""Which torch release: the pinned ``--torch`` one, else the newest that has wheels for this
Python and platform (pure)."""

from __future__ import annotations

from collections.abc import Callable

from dlready.install.caveats import Unconfirmed
from dlready.install.errors import PlanError
from dlready.install.plan import SUPPORTED_PLATFORMS, PlanContext, Rationale
from dlready.install.table import MACOS_X86, CompatTable, Release
from dlready.install.versions import is_numeric_version, numeric_key, python_key


def python_fits(release: Release, python: str) -> str | None:
    """Whether ``release`` has wheels for Python ``X.Y``: ``"stable"``, ``"experimental"``
    (allowed with a warning) or None."""
    key = python_key(python)
    if python_key(release.python.min) <= key <= python_key(release.python.max):
        return "stable"
    if python in release.python.experimental:
        return "experimental"
    return None


def has_platform(release: Release, platform: str, manager: str) -> bool:
    """The release publishes packages for the platform (pip wheels, or conda packages)."""
    if manager == "conda":
        return any(form.platform == platform for form in release.conda) or bool(
            release.pip_forms(platform)
        )
    return bool(release.pip_forms(platform))


def python_range(release: Release) -> str:
    """``3.10–3.14 (3.14t experimental)``."""
    extra = (
        f" ({', '.join(release.python.experimental)} experimental)"
        if release.python.experimental
        else ""
    )
    return f"{release.python.min}–{release.python.max}{extra}"


def newest_with(
    table: CompatTable, python: str, predicate: Callable[[Release], bool]
) -> Release | None:
    """The newest non-LTS release with stable wheels for ``python`` that passes ``predicate``."""
    for release in table.releases:
        if not release.lts and python_fits(release, python) == "stable" and predicate(release):
            return release
    return None


def newest_for_python(
    table: CompatTable, python: str, platform: str, manager: str
) -> Release | None:
    """The newest release with stable wheels for ``python`` on ``platform``."""
    return newest_with(table, python, lambda r: has_platform(r, platform, manager))


def _padded(key: tuple[int, ...], width: int = 3) -> tuple[int, ...]:
    """``(2,)`` -> ``(2, 0, 0)``: missing trailing parts count as 0, as in PEP 440."""
    return key + (0,) * (width - len(key))


def resolve_torch(wish: str, ctx: PlanContext) -> tuple[Release, str | None]:
    """A release from ``--torch``: ``2.5.1``; ``2.5`` or ``2`` for the newest 2.5.x or 2.x
    release with stable wheels for this Python and platform (else the newest of the series, so
    the error names the Python range); the LTS release only by its full version; ``2.5.1.0``
    is ``2.5.1`` (PEP 440). Returns the release and a note on how the wish was read."""
    table = ctx.table
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
    found = _series_release(wish, text, key, ctx) if len(key) <= 2 else None
    if found is None and len(key) > 3 and not any(key[3:]):
        trimmed = table.release(".".join(str(part) for part in key[:3]))
        if trimmed is not None:
            found = trimmed, f"--torch {wish} is release {trimmed.torch} (trailing zeros)"
    if found is None:
        raise PlanError(
            f"torch {wish} is not in the compatibility table (checked {table.checked_on})",
            _nearest_release_hint(key, table),
        )
    return found


def _series_release(
    wish: str, text: str, key: tuple[int, ...], ctx: PlanContext
) -> tuple[Release, str] | None:
    """``--torch 2.5``: the newest 2.5.x for this Python and platform, else of the series."""
    series = [r for r in ctx.table.releases if r.key[: len(key)] == key and not r.lts]
    fitting = [
        r
        for r in series
        if python_fits(r, ctx.python) == "stable"
        and has_platform(r, ctx.platform, ctx.wishes.manager)
    ]
    if fitting:
        return fitting[0], (
            f"--torch {wish} means the newest {text}.x release for Python {ctx.python} on "
            f"{ctx.platform}: {fitting[0].torch}"
        )
    if series:
        return series[0], f"--torch {wish} means the newest {text}.x release: {series[0].torch}"
    return None


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


def choose_release(ctx: PlanContext, why: Rationale) -> Release:
    """The pinned release checked against this Python and platform, else the newest fitting."""
    if ctx.wishes.torch:
        return _pinned_release(ctx.wishes.torch, ctx, why)
    table, python, platform = ctx.table, ctx.python, ctx.platform
    candidates = [
        r
        for r in table.releases
        if not r.lts and python_fits(r, python) == "stable" and r.pip_forms(platform)
    ]
    if not candidates:
        raise PlanError(*_no_release_for_python(table, python, platform))
    release = candidates[0]
    if release is table.newest:
        why.reasons.append(
            f"torch {release.torch}: the newest release; it supports Python {python_range(release)}"
        )
        return release
    reason = "the newest release with wheels for " + platform
    if platform == MACOS_X86:
        why.warnings.append(
            f"Intel Macs: torch {table.macos_x86_last_release} was the last release with "
            "macOS x86_64 wheels (pytorch/pytorch#114602); newer releases need Apple silicon"
        )
    elif python_fits(table.newest, python) is None:
        reason = f"the newest release for Python {python}"
    why.reasons.append(f"torch {release.torch}: {reason}")
    return release


def _pinned_release(wish: str, ctx: PlanContext, why: Rationale) -> Release:
    python, manager = ctx.python, ctx.wishes.manager
    release, note = resolve_torch(wish, ctx)
    if note:
        why.reasons.append(note)
    fit = python_fits(release, python)
    if fit is None:
        newest = newest_for_python(ctx.table, python, ctx.platform, manager)
        alternative = f", or --torch {newest.torch} (newest for Python {python})" if newest else ""
        closest = _closest_python(release, python)
        raise PlanError(
            f"torch {release.torch} supports Python {python_range(release)}, not {python}",
            f"--python {closest} (torch {release.torch} with Python {closest}){alternative}",
        )
    if fit == "experimental":
        source = ctx.table.public_sources.get("python")
        where = f" ({source.title}: {source.url})" if source else ""
        why.warnings.append(
            f"Python {python} is experimental for torch {release.torch}{where}: its wheels may "
            "lack packages or fail; the newest stable Python is safer"
        )
    if not has_platform(release, ctx.platform, manager):
        raise PlanError(
            f"torch {release.torch} has no wheels for {ctx.platform}",
            _nearest_platform_release(ctx.table, ctx.platform, python, manager),
        )
    why.reasons.append(f"torch {release.torch}: the release you pinned with --torch")
    return release


def _closest_python(release: Release, python: str) -> str:
    if python_key(python) < python_key(release.python.min):
        return release.python.min
    return release.python.max


def _nearest_platform_release(table: CompatTable, platform: str, python: str, manager: str) -> str:
    release = newest_for_python(table, python, platform, manager)
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
                f", or --torch {experimental[0].torch} (its experimental Python {python} wheels)"
            )
        return (
            f"PyTorch publishes no stable wheels for Python {python} on {platform} "
            f"(newest supported: Python {newest_max.python.max} with torch {newest_max.torch})",
            f"--python {newest_max.python.max} (the newest Python with stable wheels: torch "
            f"{newest_max.torch}){extra}",
        )
    if key < python_key(oldest_min.python.min):
        return (
            f"Python {python} is older than every release in the table supports",
            f"--python {oldest_min.python.min} --torch {oldest_min.torch} (the oldest Python "
            f"in the table, with the newest torch for it)",
        )
    return (f"no release supports Python {python} on {platform}", "another Python version")


_RELEASE_SUBJECTS = {
    "all": "torch {torch}'s release and install commands",
    "conda": "torch {torch}'s conda packages",
    "rocm": "torch {torch}'s ROCm build",
    "torchaudio": "the torchaudio version that goes with torch {torch}",
    "python-experimental": "torch {torch}'s experimental Python {python} wheels",
}


def release_caveats(
    release: Release, variant: str, ctx: PlanContext, names: tuple[str, ...]
) -> list[Unconfirmed]:
    """The release's unconfirmed notes that concern this plan."""
    caveats = []
    for note in release.unconfirmed:
        applies = (
            note.scope == "all"
            or (note.scope == "rocm" and variant.startswith("rocm"))
            or (note.scope == "conda" and ctx.conda)
            or (note.scope == "torchaudio" and "torchaudio" in names)
            or (note.scope == "python-experimental" and ctx.python in release.python.experimental)
        )
        if applies:
            subject = _RELEASE_SUBJECTS.get(note.scope, _RELEASE_SUBJECTS["all"])
            caveats.append(
                Unconfirmed(
                    subject.format(torch=release.torch, python=ctx.python),
                    "commands",
                    f"torch {release.torch}: {note.text}",
                )
            )
    return caveats
