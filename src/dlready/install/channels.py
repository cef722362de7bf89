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
from dataclasses import dataclass
from typing import Any

from dlready.install.errors import PlanError
from dlready.install.facts import MachineFacts
from dlready.install.plan import (
    Candidate,
    CoverageState,
    DriverSupport,
    InstallPlan,
    InstallWishes,
    PinnedPackage,
)
from dlready.install.table import CompatTable, load_compat_table
from dlready.install.versions import compare_numeric, variant_kind, variant_sort_key
from dlready.package_data import read_data_text

CHANNELS = ("stable", "test", "nightly")
PRE_RELEASE_CHANNELS = ("test", "nightly")


@dataclass(frozen=True)
class Channel:
    """One pre-release index and what it carries."""

    name: str
    what: str
    platforms: dict[str, tuple[str, ...]]
    packages: tuple[str, ...]
    torch_only_platforms: tuple[str, ...]
    notes: tuple[str, ...]
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
        notes=tuple(entry.get("notes", ())),
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


def _driver_ok(variant: str, facts: MachineFacts, table: CompatTable) -> bool | None:
    """Whether the driver runs this CUDA variant; None when the driver or the floor is unknown."""
    floor = table.drivers.get(variant)
    driver = facts.driver_version.value
    if floor is None or driver is None:
        return None
    windows = facts.os.value == "windows" or facts.is_wsl.value is True
    minimum = floor.min_windows if windows else floor.min_linux
    if minimum is None:
        return None
    return compare_numeric(driver, minimum) >= 0


def _choose_cuda(
    variants: list[str], facts: MachineFacts, table: CompatTable, channel: Channel
) -> tuple[str, list[str], list[str], tuple[Candidate, ...]]:
    cuda = sorted((v for v in variants if variant_kind(v) == "cuda"), key=variant_sort_key)
    if not cuda:
        raise PlanError(
            f"the {channel.name} channel has no CUDA build for {facts.platform}",
            "--channel stable, or --accelerator cpu",
        )
    verdicts = {v: _driver_ok(v, facts, table) for v in cuda}
    known_ok = [v for v in cuda if verdicts[v] is True]
    reasons, warnings = [], []
    if known_ok:
        chosen = known_ok[-1]
        reasons.append(
            f"{chosen}: the newest CUDA build on the {channel.name} index that driver "
            f"{facts.driver_version.value} runs"
        )
    elif facts.driver_version.value is None:
        known = [v for v in cuda if table.drivers.get(v) is not None]
        chosen = (known or cuda)[-1]
        reasons.append(f"{chosen}: the newest CUDA build with a known driver minimum")
        warnings.append("the NVIDIA driver is unknown: check it meets this build's minimum")
    elif all(verdicts[v] is False for v in cuda):
        oldest = cuda[0]
        floor = table.drivers[oldest]
        raise PlanError(
            f"driver {facts.driver_version.value} is too old for every CUDA build on the "
            f"{channel.name} index (the oldest, {oldest}, needs {floor.min_linux or floor.min_windows})",
            "update the NVIDIA driver",
        )
    else:
        unknown = [v for v in cuda if verdicts[v] is None]
        chosen = unknown[-1]
        reasons.append(f"{chosen}: its driver minimum is not in dlready's data")
        warnings.append(f"{chosen}: dlready does not know this build's driver minimum")
    warnings.append(
        "dlready has no GPU architecture lists for pre-release builds: after installing, "
        "`dlready smoke` shows whether they carry code for your GPU"
    )
    candidates = tuple(
        Candidate(
            v,
            verdicts[v] is not False,
            v == chosen,
            CoverageState.UNKNOWN,
            {
                True: DriverSupport.FULL,
                False: DriverSupport.TOO_OLD,
                None: DriverSupport.UNKNOWN,
            }[verdicts[v]],
            "chosen" if v == chosen else ("driver too old" if verdicts[v] is False else "usable"),
        )
        for v in cuda
    )
    return chosen, reasons, warnings, candidates


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
            "--channel stable",
        )
    reasons = [f"{channel.name} channel: {channel.what}"]
    warnings = [
        f"{channel.name} channel contents as of {channel.checked_on} ({channel.confidence})",
        *channel.notes,
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
    elif accelerator == "cuda":
        variant, more_reasons, more_warnings, candidates = _choose_cuda(
            variants, facts, table, channel
        )
        reasons += more_reasons
        warnings += more_warnings
    elif accelerator == "rocm":
        rocm = sorted((v for v in variants if variant_kind(v) == "rocm"), key=variant_sort_key)
        if not rocm:
            raise PlanError(
                f"the {channel.name} channel has no ROCm build for {platform} in dlready's data",
                "--channel stable, or --accelerator cpu",
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
        names = tuple(p for p in channel.packages if p in wishes.packages and p in names)
    packages = tuple(PinnedPackage(name, "", None, "") for name in names)
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
        sources=list(channel.sources),
        table_checked_on=channel.checked_on,
    )
