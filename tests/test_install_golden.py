"""Golden tests: the planner reproduces the published pytorch.org install commands.

Every published pip and conda command of the reference data (previous-versions page,
Start-Locally data, the 2.14.0 release notice, the book's 2020 command) is in
``tests/install_golden/published_commands.json`` (written by ``tools/build_compat_table.py``)
with the platforms and variant it is meant for. For each, the planner is asked for that
release, variant, manager and package set, and both commands are compared *parsed*:
packages, pins (where the published command pins), index URL / ``-f`` link, conda channels
and CUDA package, never whitespace.

Outcomes: ``reproduced``; ``equivalent`` (a documented equivalence: a plain-PyPI line whose
PyPI build is the variant dlready names explicitly, or ``===`` for ``==``); ``miss`` (the
reference lists it as a published anomaly, or it conflicts with the form dlready follows).
Run ``python tests/test_install_golden.py`` for the report with every miss and its reason.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from install_command_parse import (
    ParsedCommand,
    parse_install_command,
)  # tools/, on sys.path by conftest

from dlready.install.facts import GIVEN, Fact, MachineFacts
from dlready.install.planner import InstallWishes, plan_install
from dlready.install.table import load_compat_table
from dlready.install.versions import variant_kind

GOLDEN = Path(__file__).parent / "install_golden" / "published_commands.json"
COMMANDS: list[dict[str, Any]] = json.loads(GOLDEN.read_text())["commands"]


def _facts(platform: str, variant: str, python: str) -> MachineFacts:
    os_name, arch = platform.split("-", 1)
    kind = variant_kind(variant)
    accelerator = {"cuda": "cuda", "rocm": "rocm", "cpu": "cpu"}.get(kind)
    if accelerator is None:
        accelerator = "mps" if platform == "macos-arm64" else "cpu"
    return MachineFacts(
        os=Fact(os_name, GIVEN),
        arch=Fact(arch, GIVEN),
        python=Fact(python, GIVEN),
        accelerator=Fact(accelerator, GIVEN),
    )


def _index(parsed: ParsedCommand) -> tuple[str | None, str | None]:
    if parsed.index_url:
        return "--index-url", parsed.index_url
    if parsed.extra_index_urls:
        return "--extra-index-url", parsed.extra_index_urls[0]
    if parsed.find_links:
        return "-f", parsed.find_links[0]
    return None, None


def _channels(parsed: ParsedCommand) -> tuple[str, ...]:
    channels = list(parsed.channels)
    for req in parsed.requirements:
        if req.channel and req.channel not in channels:
            channels.insert(0, req.channel)
    return tuple(channels)


def _pypi_variant(release: str, platform: str) -> str | None:
    """The build plain PyPI gives on a platform (the equivalence for index-less lines)."""
    table_release = load_compat_table().release(release)
    if platform == "linux-x86_64" and table_release is not None:
        return table_release.pypi_default_cuda
    if platform.startswith("windows"):
        return "cpu"
    if platform.startswith("macos"):
        return "default"
    return None


def compare(entry: dict[str, Any], platform: str) -> tuple[str, str]:
    """(outcome, reason) for one published command on one platform."""
    published = parse_install_command(entry["command"])
    names = tuple("torch" if r.name == "pytorch" else r.name for r in published.requirements)
    release = load_compat_table().release(entry["release"])
    assert release is not None, entry["release"]
    wishes = InstallWishes(
        torch=entry["release"],
        variant=entry["variant"],
        manager=entry["manager"],
        packages=names,
    )
    plan = plan_install(_facts(platform, entry["variant"], release.python.max), wishes)
    ours = parse_install_command(plan.command_line)
    notes = []
    if {r.name for r in ours.requirements} != {r.name for r in published.requirements}:
        return "miss", f"packages differ: ours {ours.names}, published {published.names}"
    for pub in published.requirements:
        mine = ours.requirement(pub.name)
        assert mine is not None
        if pub.version is None:
            continue
        if (pub.version, pub.local) != (mine.version, mine.local):
            return "miss", f"{pub.name}: ours {mine.pin}, published {pub.pin}"
        if pub.operator != mine.operator:
            notes.append(f"{pub.name}{pub.operator} vs {mine.operator}")
    if entry["manager"] == "conda":
        if _channels(published) != _channels(ours):
            return "miss", f"channels: ours {_channels(ours)}, published {_channels(published)}"
        if published.conda_extras != ours.conda_extras:
            return (
                "miss",
                f"conda extras: ours {ours.conda_extras}, published {published.conda_extras}",
            )
    elif _index(published) != _index(ours):
        if (
            _index(published) == (None, None)
            and _pypi_variant(entry["release"], platform) == plan.variant
        ):
            notes.append(f"plain PyPI is the {plan.variant} build; dlready names its index")
        else:
            return "miss", f"index: ours {_index(ours)}, published {_index(published)}"
    if notes:
        return "equivalent", "; ".join(notes)
    return "reproduced", ""


def outcome(entry: dict[str, Any]) -> tuple[str, str]:
    """The outcome of one published command over all its platforms (worst wins)."""
    if entry["anomaly"]:
        return "miss", f"published anomaly: {entry['anomaly']}"
    results = [compare(entry, platform) for platform in entry["platforms"]]
    for kind in ("miss", "equivalent"):
        for result, reason in results:
            if result == kind:
                if kind == "miss" and entry["superseded"]:
                    return "miss", f"{entry['superseded']} ({reason})"
                return result, reason
    return "reproduced", ""


def _id(entry: dict[str, Any]) -> str:
    return f"{entry['release']}-{entry['manager']}-{entry['labels'][0]}-{entry['source'][:5]}"


CASES = [pytest.param(entry, id=_id(entry)) for entry in COMMANDS]


@pytest.mark.parametrize("entry", CASES)
def test_published_command_is_reproduced_or_explained(entry: dict[str, Any]) -> None:
    result, reason = outcome(entry)
    if entry["anomaly"] or entry["superseded"]:
        # Expected misses must carry their reason from the reference or the generator.
        assert result != "miss" or reason
        return
    assert result in ("reproduced", "equivalent"), f"{entry['command']!r}: {reason}"


@pytest.mark.parametrize(
    "entry",
    [pytest.param(e, id=_id(e)) for e in COMMANDS if e["source"] == "page" and not e["anomaly"]],
)
def test_previous_versions_page_is_reproduced_exactly(entry: dict[str, Any]) -> None:
    """The pinned page commands are the strictest golden: no equivalences needed."""
    result, reason = outcome(entry)
    assert result == "reproduced", f"{entry['command']!r}: {result} {reason}"


@pytest.mark.parametrize(
    "entry",
    [
        pytest.param(e, id=_id(e))
        for e in COMMANDS
        if e["manager"] == "pip" and not (e["anomaly"] or e["superseded"])
    ],
)
def test_uv_pins_exactly_the_local_versions_of_the_published_pip_command(
    entry: dict[str, Any],
) -> None:
    """``--manager uv`` never invents a ``+variant`` pin the published command lacks (torchaudio
    0.7.2, the Windows cu102 build of 1.7.1) and never drops one it has; same index too."""
    for platform in entry["platforms"]:
        result, reason = compare({**entry, "manager": "uv"}, platform)
        assert result != "miss", f"{entry['command']!r} on {platform}: {reason}"


def test_the_books_command_is_reproduced() -> None:
    """SEED.md: `pip install torch===1.7.1 torchvision===0.8.2 torchaudio===0.7.2 -f ...`."""
    book = [e for e in COMMANDS if e["source"].startswith("shared/SEED.md")]
    assert len(book) == 1
    assert outcome(book[0]) == ("reproduced", "")


def test_golden_covers_every_release() -> None:
    releases = {entry["release"] for entry in COMMANDS}
    assert releases == {release.torch for release in load_compat_table().releases} - {"2.14.1"}


def report() -> dict[str, Any]:
    """Counts per outcome and source, and every miss with its reason."""
    counts: Counter[str] = Counter()
    by_source: Counter[tuple[str, str]] = Counter()
    misses = []
    for entry in COMMANDS:
        result, reason = outcome(entry)
        counts[result] += 1
        by_source[(entry["source"][:40], result)] += 1
        if result != "reproduced":
            misses.append((result, entry["release"], entry["command"], reason))
    return {"counts": counts, "by_source": by_source, "not_reproduced": misses}


if __name__ == "__main__":
    summary = report()
    print(f"published commands: {len(COMMANDS)}; outcomes: {dict(summary['counts'])}")
    for (source, result), count in sorted(summary["by_source"].items()):
        print(f"  {source:<42} {result:<11} {count}")
    for result, release, command, reason in summary["not_reproduced"]:
        print(f"{result:<10} {release:<7} {command}\n           -> {reason}")
