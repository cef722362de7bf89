"""``install-cmd --channel test|nightly``: PyTorch's pre-release indexes, for GPUs newer than the
newest stable release supports (pure, from ``data/pytorch_channels.json``).

The stable channel is :func:`dlready.install.planner.plan_install`. The pre-release indexes
(``https://download.pytorch.org/whl/<channel>/<variant>``) have no fixed versions, so the
command installs the newest build there with ``--pre``. What each channel carries is
secondary evidence with a date (the data file says which); every plan warns about it.
"""

from __future__ import annotations

import functools
import json
from typing import Any

from msgspec import Struct
from msgspec.structs import replace

from dlready.install.archs import Coverage
from dlready.install.cuda_fit import driver_support, gpu_coverage
from dlready.install.errors import CPU_CHOICE, PlanError
from dlready.install.facts import MachineFacts
from dlready.install.plan import (
    Candidate,
    CoverageState,
    InstallPlan,
    InstallWishes,
    PinnedPackage,
)
from dlready.install.planner import plan_install
from dlready.install.table import CompatTable, PipForm, load_compat_table
from dlready.install.toolkit_archs import too_old_for_toolkit, toolkit_min_capability
from dlready.install.versions import (
    compare_numeric,
    cuda_of_variant,
    variant_kind,
    variant_sort_key,
)
from dlready.package_data import read_data_text

CHANNELS = ("stable", "test", "nightly")
PRE_RELEASE_CHANNELS = ("test", "nightly")


class ChannelNote(Struct, frozen=True):
    """A remark about a channel, and the plans it concerns (empty: every plan)."""

    text: str
    platforms: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    """Variant kinds: ``cuda``, ``rocm``, ``cpu``."""
    variants: tuple[str, ...] = ()

    def concerns(self, platform: str, variant: str) -> bool:
        """Whether a plan for ``variant`` on ``platform`` should carry this note."""
        return (
            (not self.platforms or platform in self.platforms)
            and (not self.kinds or variant_kind(variant) in self.kinds)
            and (not self.variants or variant in self.variants)
        )


class Channel(Struct, frozen=True):
    """One pre-release index and what it carries."""

    name: str
    what: str
    platforms: dict[str, tuple[str, ...]]
    packages: tuple[str, ...]
    torch_only_platforms: tuple[str, ...]
    notes: tuple[ChannelNote, ...]
    checked_on: str
    confidence: str
    index_url: str
    sources: tuple[str, ...]

    def url(self, variant: str) -> str:
        """The index of one variant."""
        return self.index_url.format(channel=self.name, variant=variant)


@functools.lru_cache(maxsize=1)
def _data() -> dict[str, Any]:
    text = read_data_text("pytorch_channels.json")
    data: dict[str, Any] = json.loads(text)
    return data


def load_channel(name: str) -> Channel:
    """A pre-release channel from the packaged data.

    Raises:
        KeyError: for a name that is not a pre-release channel.
    """
    data = _data()
    entry = data["channels"][name]
    return Channel(
        name=name,
        what=entry["what"],
        platforms={k: tuple(v) for k, v in entry["platforms"].items()},
        packages=tuple(entry["packages"]),
        torch_only_platforms=tuple(entry.get("torch_only_platforms", ())),
        notes=tuple(
            ChannelNote(
                note["text"],
                tuple(note.get("platforms", ())),
                tuple(note.get("kinds", ())),
                tuple(note.get("variants", ())),
            )
            for note in entry.get("notes", ())
        ),
        checked_on=data["checked_on"],
        confidence=data["confidence"],
        index_url=data["index_url"],
        sources=tuple(data["sources"]),
    )


def validate_channel(value: str) -> str:
    """``--channel``, normalised.

    Raises:
        PlanError: for an unknown channel.
    """
    channel = value.strip().lower()
    if channel not in CHANNELS:
        raise PlanError(f"unknown --channel {value!r}", f"--channel {' | '.join(CHANNELS)}")
    return channel


def _required(
    variant: str, facts: MachineFacts, table: CompatTable
) -> tuple[str | None, str | None]:
    """The driver a CUDA variant needs at least, and for full support (its own toolkit's
    driver; None when only its CUDA major's minimum is known), in this OS's numbering."""
    floor = table.driver_floor(variant)
    if floor is None:
        return None, None
    windows = facts.os.value == "windows" or facts.is_wsl.value is True
    if windows:
        return floor.min_windows, floor.full_windows
    return floor.min_linux, floor.full_linux


def _driver_ok(variant: str, facts: MachineFacts, table: CompatTable) -> bool | None:
    """Whether the driver runs this CUDA variant; None when the driver or the floor is
    unknown, which is never a pass."""
    minimum, _ = _required(variant, facts, table)
    driver = facts.driver_version.value
    if minimum is None or driver is None:
        return None
    return compare_numeric(driver, minimum) >= 0


def _own_floor_known(variant: str, table: CompatTable) -> bool:
    """Whether the table has this variant's own driver minimum (not only its CUDA major's)."""
    floor = table.driver_floor(variant)
    return floor is not None and not floor.from_major


def _driver_warning(variant: str, facts: MachineFacts, table: CompatTable) -> str | None:
    """What is not certain about the driver for a chosen or forced CUDA variant."""
    driver = facts.driver_version.value
    if driver is None:
        return None
    minimum, _ = _required(variant, facts, table)
    floor = table.driver_floor(variant)
    if floor is None or minimum is None:
        return (
            f"dlready does not know the driver minimum of {variant}: it cannot say that driver "
            f"{driver} runs it"
        )
    if compare_numeric(driver, minimum) < 0:
        return (
            f"{variant} needs NVIDIA driver >= {minimum}; this driver is {driver}: "
            "torch.cuda.is_available() will be False"
        )
    if floor.from_major:
        cuda_major = floor.cuda.split(".")[0]
        return (
            f"{variant}: dlready does not know this build's own driver minimum, only that of "
            f"every CUDA {cuda_major} build ({minimum}), which driver {driver} meets: if "
            "torch.cuda.is_available() is False after installing, update the NVIDIA driver"
        )
    return None


def _too_old_error(
    verdicts: dict[str, bool | None], facts: MachineFacts, table: CompatTable, channel: Channel
) -> PlanError:
    """No CUDA build on the channel is known to run with this driver (``verdicts``: each
    build's :func:`_driver_ok`, in the channel's order)."""
    driver = facts.driver_version.value
    too_old = [v for v, runs in verdicts.items() if runs is False]
    unknown = [v for v, runs in verdicts.items() if runs is None]
    needs = sorted({_required(v, facts, table)[0] or "" for v in too_old} - {""})
    if too_old and not unknown:
        oldest = too_old[0]
        return PlanError(
            f"driver {driver} is too old for every CUDA build on the {channel.name} index "
            f"(the oldest, {oldest}, needs {_required(oldest, facts, table)[0]})",
            "update the NVIDIA driver",
        )
    parts = []
    if too_old:
        parts.append(
            f"driver {driver} is too old for {', '.join(too_old)} (needs {', '.join(needs)})"
        )
    parts.append(
        f"dlready does not know the driver minimum of {', '.join(unknown)}, so it cannot say "
        f"that driver {driver} runs {'it' if len(unknown) == 1 else 'them'}"
    )
    return PlanError(
        f"no CUDA build on the {channel.name} index is known to run with this driver: "
        + "; ".join(parts),
        "update the NVIDIA driver",
    )


def _has(variants: tuple[str, ...] | list[str], kind: str | None) -> bool:
    return any(kind is None or variant_kind(v) == kind for v in variants)


def _elsewhere(channel: Channel, platform: str, kind: str | None) -> str:
    """Flags for a channel (or, failing that, a CPU of the same OS) that has builds of
    ``kind`` (``cuda``, ``rocm``; None: any) for ``platform``: every hint names one that works.
    Empty when none has ``kind`` builds there (no CUDA for macOS on any channel)."""
    table = load_compat_table()
    choices = []
    stable_kind = "default" if kind == "cpu" and platform.startswith("macos") else kind
    if any(_has([f.variant for f in r.pip_forms(platform)], stable_kind) for r in table.releases):
        choices.append("--channel stable")
    choices.extend(
        f"--channel {other}"
        for other in PRE_RELEASE_CHANNELS
        if other != channel.name and _has(load_channel(other).platforms.get(platform, ()), kind)
    )
    if not choices:
        os_name = platform.split("-")[0]
        for other_platform, variants in channel.platforms.items():
            if other_platform.startswith(f"{os_name}-") and _has(variants, kind):
                choices.append(f"--arch {other_platform.split('-', 1)[1]}")
                break
    return ", or ".join(choices) or ("--channel stable" if kind is None else "")


def _or_cpu(elsewhere: str) -> str:
    """A hint: where the builds asked for exist, or else the CPU build."""
    return f"{elsewhere}, or {CPU_CHOICE}" if elsewhere else CPU_CHOICE


def _stable_counterpart(
    variant: str, platform: str, table: CompatTable
) -> tuple[str, PipForm] | None:
    """The same CUDA variant in the newest stable release that has it for ``platform``, with
    an arch list (the nearest evidence of what the pre-release build carries), and that
    release's torch version."""
    for release in sorted(table.releases, key=lambda r: r.key, reverse=True):
        form = release.pip_form(variant, platform)
        if form is not None and form.arch is not None and not release.lts:
            return release.torch, form
    return None


class _ArchVerdict(Struct, frozen=True):
    """What is known about one pre-release CUDA build's kernels for the given GPUs."""

    impossible: tuple[str, ...]
    """Compute capabilities its CUDA toolkit cannot compile for at all (known)."""
    stable_lacks: tuple[str, ...]
    """Compute capabilities the newest stable build of the same variant has no code for."""
    stable_torch: str | None


def _arch_verdict(variant: str, facts: MachineFacts, table: CompatTable) -> _ArchVerdict:
    capabilities = facts.compute_capabilities.value or ()
    cuda = cuda_of_variant(variant) or ""
    impossible = tuple(cc for cc in capabilities if too_old_for_toolkit(cc, cuda))
    platform = facts.platform or ""
    counterpart = _stable_counterpart(variant, platform, table)
    stable_torch, stable = counterpart if counterpart else (None, None)
    stable_lacks = tuple(
        cc
        for cc in capabilities
        if stable is not None
        and stable.arch is not None
        and gpu_coverage(stable.arch.arch_list, cc, platform, table) is Coverage.NONE
    )
    return _ArchVerdict(impossible, stable_lacks, stable_torch)


def _no_kernels_error(
    verdicts: dict[str, _ArchVerdict],
    facts: MachineFacts,
    wishes: InstallWishes,
    table: CompatTable,
    channel: Channel,
) -> PlanError:
    """No CUDA build on the channel can run on the GPU: the stable command that does, if any."""
    gpus = ", ".join(sorted({cc for v in verdicts.values() for cc in v.impossible}))
    by_floor: dict[str, list[str]] = {}
    for variant in verdicts:
        floor = toolkit_min_capability(cuda_of_variant(variant) or "") or "?"
        by_floor.setdefault(floor, []).append(variant)
    why = "; ".join(
        f"{', '.join(variants)}: their CUDA version compiles for compute capability {floor} "
        "and newer"
        for floor, variants in by_floor.items()
    )
    message = (
        f"no CUDA build on the {channel.name} index has kernels for compute capability "
        f"{gpus} ({why})"
    )
    try:
        stable = plan_install(facts, replace(wishes, variant=None))
    except PlanError:
        return PlanError(
            message,
            f"{CPU_CHOICE} (the CPU build)",
        )
    return PlanError(
        message,
        f"--channel stable without --variant (torch {stable.torch} {stable.variant} has kernels "
        "for it)",
        hints=(f"the stable command: {stable.command_line}",),
    )


def _choose_cuda(
    variants: list[str],
    facts: MachineFacts,
    wishes: InstallWishes,
    table: CompatTable,
    channel: Channel,
) -> tuple[str, list[str], list[str], tuple[Candidate, ...]]:
    all_cuda = sorted((v for v in variants if variant_kind(v) == "cuda"), key=variant_sort_key)
    if not all_cuda:
        raise PlanError(
            f"the {channel.name} channel has no CUDA build for {facts.platform}",
            _or_cpu(_elsewhere(channel, facts.platform or "", "cuda")),
        )
    arch = {v: _arch_verdict(v, facts, table) for v in all_cuda}
    runnable = [v for v in all_cuda if not arch[v].impossible]
    if not runnable:
        raise _no_kernels_error(arch, facts, wishes, table, channel)
    # Prefer builds whose stable counterpart has code for the GPU; the others stay possible.
    cuda = [v for v in runnable if not arch[v].stable_lacks] or runnable
    verdicts = {v: _driver_ok(v, facts, table) for v in cuda}
    driver = facts.driver_version.value
    # A build whose own minimum is known comes first; one held only to its CUDA major's
    # minimum (a newer CUDA than any release has) only when nothing else runs.
    own_ok = [v for v in cuda if verdicts[v] is True and _own_floor_known(v, table)]
    major_ok = [v for v in cuda if verdicts[v] is True and not _own_floor_known(v, table)]
    reasons, warnings = [], []
    if own_ok:
        chosen = own_ok[-1]
        reasons.append(
            f"{chosen}: the newest CUDA build on the {channel.name} index that driver {driver} runs"
        )
    elif driver is None:
        known = [v for v in cuda if _own_floor_known(v, table)]
        chosen = (known or cuda)[-1]
        reasons.append(f"{chosen}: the newest CUDA build with a known driver minimum")
        warnings.append("the NVIDIA driver is unknown: check it meets this build's minimum")
    elif major_ok:
        chosen = major_ok[-1]
        floor = table.driver_floor(chosen)
        cuda_major = floor.cuda.split(".")[0] if floor else "?"
        minimum = _required(chosen, facts, table)[0]
        reasons.append(
            f"{chosen}: the only CUDA build on the {channel.name} index for this GPU that driver "
            f"{driver} may run: it meets the minimum of every CUDA {cuda_major} build ({minimum})"
        )
        warnings.append(_driver_warning(chosen, facts, table) or "")
    else:
        raise _too_old_error(verdicts, facts, table, channel)
    excluded = [v for v in all_cuda if arch[v].impossible]
    if excluded:
        reasons.append(
            f"{', '.join(excluded)}: no kernels for compute capability "
            f"{', '.join(arch[excluded[0]].impossible)} (their CUDA version cannot compile for it)"
        )
    warnings.append(_arch_warning(chosen, arch[chosen], facts))
    candidates = tuple(
        Candidate(
            v,
            v in cuda and (verdicts[v] is True or (verdicts[v] is None and driver is None)),
            v == chosen,
            CoverageState.NONE if arch[v].impossible else CoverageState.UNKNOWN,
            driver_support(driver, *_required(v, facts, table)),
            "chosen"
            if v == chosen
            else "no kernels for this GPU"
            if arch[v].impossible
            else f"driver too old (needs {_required(v, facts, table)[0]})"
            if verdicts.get(v) is False
            else "driver minimum unknown"
            if verdicts.get(v) is None and driver is not None
            else "usable",
        )
        for v in all_cuda
    )
    return chosen, reasons, warnings, candidates


def _arch_warning(chosen: str, arch: _ArchVerdict, facts: MachineFacts) -> str:
    """What is not known about the chosen build's kernels for this GPU."""
    after = "after installing, `dlready smoke` shows whether it carries code for your GPU"
    capabilities = facts.compute_capabilities.value or ()
    if not capabilities:
        return (
            "the GPU's compute capability is unknown and dlready has no GPU architecture lists "
            f"for pre-release builds: {after}"
        )
    gpus = ", ".join(capabilities)
    if arch.stable_lacks:
        return (
            f"dlready has no GPU architecture list for pre-release builds, and the stable "
            f"{chosen} build of torch {arch.stable_torch} has no kernels for compute capability "
            f"{', '.join(arch.stable_lacks)}: {after}"
        )
    return (
        f"dlready has no GPU architecture list for pre-release builds (CUDA "
        f"{cuda_of_variant(chosen)} can compile for compute capability {gpus}): {after}"
    )


def plan_channel(
    facts: MachineFacts, wishes: InstallWishes, channel_name: str, table: CompatTable | None = None
) -> InstallPlan:
    """The command for a pre-release channel.

    Raises:
        PlanError: conda, a pinned ``--torch``, a platform or variant the channel lacks.
    """
    table = table or load_compat_table()
    channel = load_channel(channel_name)
    if wishes.torch:
        raise PlanError(
            f"--torch pins a release; the {channel.name} channel has no fixed versions",
            "drop --torch, or --channel stable",
        )
    if wishes.manager == "conda":
        raise PlanError(
            f"there are no conda packages on PyTorch's {channel.name} channel", "--manager pip"
        )
    platform = facts.platform
    if platform is None:
        raise PlanError("the OS or the CPU architecture is unknown", "--os and --arch")
    variants = list(channel.platforms.get(platform, ()))
    if not variants:
        raise PlanError(
            f"the {channel.name} channel has no builds for {platform} (as of {channel.checked_on})",
            _elsewhere(channel, platform, None),
        )
    reasons = [f"{channel.name} channel: {channel.what}"]
    warnings = [
        f"{channel.name} channel contents as of {channel.checked_on} ({channel.confidence})",
    ]
    candidates: tuple[Candidate, ...] = ()
    accelerator = facts.accelerator.value
    if wishes.variant:
        variant = wishes.variant.strip().lower()
        if variant not in variants:
            raise PlanError(
                f"the {channel.name} channel has no {variant} build for {platform} "
                f"(available: {', '.join(variants)})",
                f"--variant {variants[-1]}",
            )
        reasons.append(f"{variant}: the variant you asked for with --variant")
        if variant_kind(variant) == "cuda":
            forced = _arch_verdict(variant, facts, table)
            if forced.impossible:
                others = [
                    v
                    for v in variants
                    if variant_kind(v) == "cuda" and not _arch_verdict(v, facts, table).impossible
                ]
                if others:
                    raise PlanError(
                        f"the {channel.name} {variant} build has no kernels for compute "
                        f"capability {', '.join(forced.impossible)} (CUDA "
                        f"{cuda_of_variant(variant)} compiles for compute capability "
                        f"{toolkit_min_capability(cuda_of_variant(variant) or '')} and newer)",
                        f"--variant {others[-1]}",
                    )
                every = {
                    v: _arch_verdict(v, facts, table) for v in variants if variant_kind(v) == "cuda"
                }
                raise _no_kernels_error(every, facts, wishes, table, channel)
            warnings.append(_arch_warning(variant, forced, facts))
            driver_warning = _driver_warning(variant, facts, table)
            if driver_warning:
                warnings.append(driver_warning)
    elif accelerator == "cuda":
        variant, more_reasons, more_warnings, candidates = _choose_cuda(
            variants, facts, wishes, table, channel
        )
        reasons += more_reasons
        warnings += more_warnings
    elif accelerator == "rocm":
        rocm = sorted((v for v in variants if variant_kind(v) == "rocm"), key=variant_sort_key)
        if not rocm:
            raise PlanError(
                f"the {channel.name} channel has no ROCm build for {platform} in dlready's data",
                _or_cpu(_elsewhere(channel, platform, "rocm")),
            )
        variant = rocm[-1]
        reasons.append(f"{variant}: the newest ROCm build on the {channel.name} index")
    else:
        variant = "cpu"
        reasons.append(
            "the CPU index"
            + (" (on macOS it carries the MPS build)" if platform.startswith("macos") else "")
        )
    names = ("torch",) if platform in channel.torch_only_platforms else channel.packages
    if wishes.packages is not None:
        unknown = [p for p in wishes.packages if p not in channel.packages]
        if unknown:
            raise PlanError(
                f"the {channel.name} channel has no {', '.join(unknown)}",
                f"--packages {','.join(channel.packages)}",
            )
        left_out = [p for p in channel.packages if p in wishes.packages and p not in names]
        names = tuple(p for p in channel.packages if p in wishes.packages and p in names)
        if not names:
            raise PlanError(
                f"the {channel.name} channel has torch only for {platform}, not "
                f"{', '.join(left_out)}",
                "--packages torch",
            )
        if left_out:
            warnings.append(
                f"{', '.join(left_out)} left out although asked for: the {channel.name} channel "
                f"has torch only for {platform}"
            )
    elif len(names) < len(channel.packages):
        left = [p for p in channel.packages if p not in names]
        reasons.append(
            f"{', '.join(left)} left out: the {channel.name} channel has torch only for {platform}"
        )
    packages = tuple(PinnedPackage(name, "", None, "") for name in names)
    # Notes about other platforms and variants concern other plans (docs/install-cmd.md).
    warnings[1:1] = [n.text for n in channel.notes if n.concerns(platform, variant)]
    floor = table.driver_floor(variant) if variant_kind(variant) == "cuda" else None
    sources = [*channel.sources, *([floor.source] if floor is not None else [])]
    url = channel.url(variant)
    pre = "--prerelease allow" if wishes.manager == "uv" else "--pre"
    program = "uv pip install" if wishes.manager == "uv" else "pip install"
    command = f"{program} {pre} {' '.join(names)} --index-url {url}"
    return InstallPlan(
        command_line=command,
        manager=wishes.manager,
        torch=f"newest {channel.name} build",
        variant=variant,
        platform=platform,
        packages=packages,
        index_url=url,
        index_flag="--index-url",
        channels=(),
        conda_extras=(),
        warnings=warnings,
        reasons=reasons,
        facts=facts,
        candidates=candidates,
        sources=sources,
        table_checked_on=channel.checked_on,
    )
