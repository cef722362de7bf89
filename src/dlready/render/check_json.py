"""The ``data`` of ``check --json``; kept apart from the table renderer so JSON never imports rich."""

from __future__ import annotations

from typing import Any

from dlready.model import MachineSnapshot, to_jsonable
from dlready.spec.build import BuildPart
from dlready.spec.verdict import CheckReport


def report_jsonable(
    report: CheckReport, snapshot: MachineSnapshot, fail_on: str, strict: bool
) -> dict[str, Any]:
    """The ``data`` of ``check --json`` (schema in docs/json-schema.md)."""
    return {
        "profile": {
            "name": report.profile,
            "title": report.profile_title,
            "origin": report.profile_origin,
        },
        "status": str(report.status),
        "unknown_parts": list(report.unknown_parts),
        "not_judged": [
            {"part": c.subject, "criteria": list(c.not_judged)}
            for c in report.components
            if c.status.value == "unknown" or c.not_judged
        ],
        "fail_on": fail_on,
        "strict": strict,
        "components": to_jsonable(report.components),
        "power_budget": to_jsonable(report.power_budget),
        "install_command": report.install_command,
        "install_alternatives": list(report.install_alternatives),
        "notes": list(report.notes),
        "snapshot": to_jsonable(snapshot),
    }


def build_jsonable(build: BuildPart) -> dict[str, Any]:
    """``data.build`` of ``check --json``: the judged build tools and whether they count."""
    return {"counts": build.counts, "verdict": to_jsonable(build.verdict)}
