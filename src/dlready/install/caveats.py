"""What dlready could not confirm, in a student's words: what was checked, when, against which
public page, and what to do. The research notes behind each caveat stay in the table (and in
``--json``'s ``research_notes``); people are shown the public page and the date."""

from __future__ import annotations

from msgspec import Struct

from dlready.install.table import CompatTable, PipForm

_WHAT_TO_DO = {
    "commands": "if pip cannot find these versions, take the command from that page",
    "arch_lists": "after installing, `dlready smoke` checks that this build runs on your GPU",
    "drivers": ("if torch.cuda.is_available() is False after installing, update the NVIDIA driver"),
    "conda": "if conda cannot find these packages, use --manager pip",
    "jetson": "install the wheel NVIDIA publishes for your JetPack release",
}


class Unconfirmed(Struct, frozen=True):
    """One part of a plan that dlready's table could not confirm."""

    subject: str
    """Plain words: ``torch 2.14.1's release and install commands``."""
    topic: str
    """The key of :attr:`CompatTable.public_sources` to check it against."""
    note: str
    """The research note behind it (kept for ``--json``, not shown to people)."""


def caveat_lines(items: list[Unconfirmed], table: CompatTable) -> list[str]:
    """One line per public page: the unconfirmed subjects, the date, the URL, what to do."""
    by_topic: dict[str, list[str]] = {}
    for item in items:
        subjects = by_topic.setdefault(item.topic, [])
        if item.subject not in subjects:
            subjects.append(item.subject)
    lines = []
    for topic, subjects in by_topic.items():
        source = table.public_sources.get(topic) or table.public_sources.get("commands")
        where = f"{source.title} ({source.url})" if source else "pytorch.org"
        todo = _WHAT_TO_DO.get(topic, _WHAT_TO_DO["commands"])
        lines.append(
            f"not confirmed by {where} when dlready's table was checked on {table.checked_on}: "
            f"{'; '.join(subjects)}; {todo}"
        )
    return lines


def checked_line(table: CompatTable) -> str:
    """``checked on 2026-11-27 against PyTorch's published install commands (URL)``."""
    source = table.public_sources.get("commands")
    against = f" against {source.title} ({source.url})" if source else ""
    return f"checked on {table.checked_on}{against}"


def arch_list_caveat(form: PipForm) -> list[Unconfirmed]:
    """The build's GPU architecture list, where the table could not confirm it."""
    if form.arch is None or not form.arch.unconfirmed:
        return []
    return [
        Unconfirmed(
            f"which GPUs the {form.variant} build has kernels for",
            "arch_lists",
            f"{form.variant}: {form.arch.unconfirmed}",
        )
    ]


def driver_floor_caveats(variant: str, table: CompatTable, windows: bool) -> list[Unconfirmed]:
    """The build's NVIDIA driver minimum, where the table could not confirm it."""
    floor = table.drivers.get(variant)
    if floor is None:
        return []
    return [
        Unconfirmed(
            f"the NVIDIA driver minimum of {variant}", "drivers", f"{variant} driver floor: {note}"
        )
        for note in floor.unconfirmed(windows)
    ]
