"""Spec profiles: TOML tables of minimum / recommended thresholds, validated with clear errors.

Built-in profiles ship in ``spec/profiles/``; a user's own table comes from ``--spec FILE``.
Every error names the file, the line and the dotted key.
"""

from __future__ import annotations

import math
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from msgspec import Struct, field

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised only on Python 3.10
    import tomli as tomllib

from dlready.bounded_read import read_regular_text
from dlready.install.versions import compute_capability_key
from dlready.model import CpuClass
from dlready.package_data import package_file

DEFAULT_PROFILE = "book-2020"
PROFILE_SCHEMA_VERSION = 1
MAX_SPEC_FILE_BYTES = 1024 * 1024
"""The built-in profiles are about 5 KiB; a larger spec file is not a spec table."""

_NUMBER = "number from 0 to 1,000,000"
_WHOLE = "whole number from 0 to 1,000,000"
_ABOVE_ZERO = "number above 0, up to 1,000,000"
_FRACTION = "fraction between 0 and 10"
_TEXT = "text"
_NAME = "non-empty text"
_BOOL = "boolean"
_CAPABILITY = 'compute capability like "7.5"'
_INTEGER = "integer"

_CPU_KEYS = {"usable_cpus": _WHOLE, "max_clock_mhz": _NUMBER}
_MEMORY_KEYS = {"effective_total_gib": _NUMBER, "ratio_to_total_vram": _NUMBER}
_GPU_RECOMMENDED_KEYS = {
    "vram_gib": _NUMBER,
    "compute_capability": _CAPABILITY,
    "fp32_tflops": _NUMBER,
}
# The recommended PCIe width is each card's own maximum, so only a minimum can be set.
_GPU_MINIMUM_KEYS = {**_GPU_RECOMMENDED_KEYS, "pcie_width_lanes": _WHOLE}
_COOLING_KEYS = {"gpu_slowdown_margin_c": _NUMBER, "cpu_package_max_c": _NUMBER}

# Allowed keys per table; "*" marks a table whose own keys are fixed, "reasoning" is free text.
_SCHEMA: dict[str, dict[str, str]] = {
    "": {"schema": _INTEGER, "name": _NAME, "title": _NAME, "source": _TEXT},
    "cpu": {"reasoning": _TEXT},
    "cpu.minimum": _CPU_KEYS,
    "cpu.recommended": _CPU_KEYS,
    "memory": {"reasoning": _TEXT},
    "memory.minimum": _MEMORY_KEYS,
    "memory.recommended": _MEMORY_KEYS,
    "gpu": {"reasoning": _TEXT, "required": _BOOL},
    "gpu.minimum": _GPU_MINIMUM_KEYS,
    "gpu.recommended": _GPU_RECOMMENDED_KEYS,
    "gpu.caveats": {"below_compute_capability": _CAPABILITY, "text": _TEXT},
    "psu": {
        "reasoning": _TEXT,
        "watts_per_gpu": _NUMBER,
        "default_gpu_power_w": _NUMBER,
        "base_system_w": _NUMBER,
        "minimum_headroom_fraction": _FRACTION,
        "recommended_headroom_fraction": _FRACTION,
    },
    "psu.cpu_tdp_w": {cpu_class.value: _NUMBER for cpu_class in CpuClass},
    "cooling": {"reasoning": _TEXT},
    "cooling.minimum": _COOLING_KEYS,
    "build": {"reasoning": _TEXT, "required": _BOOL, "ram_per_job_gib": _ABOVE_ZERO},
    "cooling.recommended": _COOLING_KEYS,
}
_REQUIRED_KEYS = ("schema", "name", "title")


class SpecError(ValueError):
    """A spec file that cannot be used; the message names file, line and key."""


class Thresholds(Struct, frozen=True):
    """One component's minimum and recommended values (absent keys are not judged)."""

    minimum: Mapping[str, float | str] = field(default_factory=dict)
    recommended: Mapping[str, float | str] = field(default_factory=dict)
    reasoning: str = ""


class Caveat(Struct, frozen=True):
    """Advice attached to GPUs below a compute capability, whatever their verdict."""

    below_compute_capability: str
    text: str


class PsuRule(Struct, frozen=True):
    """How the power budget is computed."""

    watts_per_gpu: float = 0.0
    default_gpu_power_w: float = 250.0
    base_system_w: float = 75.0
    minimum_headroom_fraction: float = 0.2
    recommended_headroom_fraction: float = 0.2
    cpu_tdp_w: Mapping[str, float] = field(default_factory=dict)
    reasoning: str = ""


class BuildRule(Struct, frozen=True):
    """The ``[build]`` table: whether the extension build tools count toward the verdict."""

    required: bool = False
    """False: the build tools part is shown but never changes the verdict (most users install
    wheels and never compile)."""
    ram_per_job_gib: float = 4.0
    """RAM one parallel compile job needs (see the profiles' ``[build]`` reasoning)."""
    reasoning: str = ""


class SpecProfile(Struct, frozen=True):
    """A validated spec table."""

    name: str
    title: str
    source: str
    origin: str
    cpu: Thresholds
    memory: Thresholds
    gpu: Thresholds
    gpu_required: bool
    gpu_caveats: tuple[Caveat, ...]
    psu: PsuRule
    cooling: Thresholds
    judges_psu: bool = True
    """False when the spec has no ``[psu]`` table: the power supply is then not judged."""
    judges_cooling: bool = True
    """False when the spec has no ``[cooling]`` table: cooling is then not judged."""
    build: BuildRule = field(default_factory=BuildRule)

    @property
    def judges_gpus(self) -> bool:
        """GPUs are judged when one is required or any GPU criterion is named."""
        return self.gpu_required or bool(self.gpu.minimum) or bool(self.gpu.recommended)


def builtin_profile_names() -> list[str]:
    """Names of the profiles shipped with dlready."""
    folder = package_file("spec", "profiles")
    return sorted(p.name[: -len(".toml")] for p in folder.iterdir() if p.name.endswith(".toml"))


def load_builtin_profile(name: str) -> SpecProfile:
    """Load a shipped profile by name.

    Raises:
        SpecError: for an unknown name (listing the valid ones).
    """
    names = builtin_profile_names()
    if name not in names:
        raise SpecError(f"unknown profile {name!r}; choose one of: {', '.join(names)}")
    resource = package_file("spec", "profiles", f"{name}.toml")
    return parse_profile(resource.read_text(encoding="utf-8"), origin=f"built-in:{name}")


def load_profile_file(path: Path) -> SpecProfile:
    """Load a user's spec table.

    Raises:
        SpecError: when the file is unreadable, not TOML, or does not fit the schema.
    """
    try:
        text = read_regular_text(path, MAX_SPEC_FILE_BYTES)
    except UnicodeDecodeError as exc:
        raise SpecError(f"{path}: cannot read: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise SpecError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_profile(text, origin=str(path))


def _line_of(text: str, table: str, key: str | None) -> int:
    """1-based line of ``key`` inside ``[table]`` (or of the table header), best effort."""
    current = ""
    header_line = 1
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = re.fullmatch(r"\[\[?\s*([^\]]+?)\s*\]\]?(\s*#.*)?", line)
        if header:
            current = header.group(1).replace(" ", "")
            if key is None and current == table:
                return number
            if current == table:
                header_line = number
            continue
        if key is not None and current == table and re.match(rf"{re.escape(key)}\s*=", line):
            return number
    return header_line


_MAX_NUMBER = 1e6
"""Larger than any threshold a profile needs (MHz, W, GiB); keeps arithmetic finite."""


def _type_ok(expected: str, value: Any) -> bool:
    if expected in (_NUMBER, _WHOLE, _ABOVE_ZERO, _FRACTION):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            return False
        upper = 10.0 if expected == _FRACTION else _MAX_NUMBER
        if expected == _WHOLE and not float(value).is_integer():
            return False
        if expected == _ABOVE_ZERO and not value > 0:
            return False
        return math.isfinite(value) and 0 <= value <= upper
    if expected == _NAME:
        return isinstance(value, str) and bool(value.strip())
    if expected == _INTEGER:
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == _BOOL:
        return isinstance(value, bool)
    if expected == _CAPABILITY:
        # Two digits each: CUDA's compute capabilities go from 1.0 to 12.x.
        return isinstance(value, str) and re.fullmatch(r"\d{1,2}\.\d{1,2}", value) is not None
    return isinstance(value, str)


def _validate(data: Mapping[str, Any], text: str, origin: str, table: str = "") -> None:
    allowed = _SCHEMA.get(table)
    if allowed is None:
        raise SpecError(f"{origin}:{_line_of(text, table, None)}: [{table}]: unknown table")
    for key, value in data.items():
        dotted = f"{table}.{key}" if table else key
        if isinstance(value, dict) and dotted in _SCHEMA:
            _validate(value, text, origin, dotted)
            continue
        if isinstance(value, list) and dotted in _SCHEMA:
            for item in value:
                if not isinstance(item, dict):
                    raise SpecError(
                        f"{origin}:{_line_of(text, table, key)}: {dotted}: expected tables"
                    )
                _validate(item, text, origin, dotted)
            continue
        if isinstance(value, (dict, list)) and key not in allowed:
            known = ", ".join(f"[{t}]" for t in _SCHEMA if t)
            line = _line_of(text, dotted, None)
            raise SpecError(f"{origin}:{line}: [{dotted}]: unknown table; known: {known}")
        # The line is found only for an error: scanning the text per key costs ~9 ms.
        if key not in allowed:
            choices = ", ".join(sorted(allowed)) or "(none)"
            line = _line_of(text, table, key)
            raise SpecError(f"{origin}:{line}: {dotted}: unknown key; allowed here: {choices}")
        if not _type_ok(allowed[key], value):
            line = _line_of(text, table, key)
            quote = (
                f' (write it in quotes: "{value}")'
                if allowed[key] == _CAPABILITY and isinstance(value, float)
                else ""
            )
            raise SpecError(
                f"{origin}:{line}: {dotted}: expected a {allowed[key]}, got {value!r}{quote}"
            )


def _check_consistency(data: Mapping[str, Any], text: str, origin: str) -> None:
    """Caveats need both keys; a minimum must not exceed its recommended value."""
    for caveat in data.get("gpu", {}).get("caveats", []):
        for key in ("below_compute_capability", "text"):
            if key not in caveat:
                line = _line_of(text, "gpu.caveats", None)
                raise SpecError(f"{origin}:{line}: gpu.caveats: every caveat needs {key}")
    for section in ("cpu", "memory", "gpu", "cooling"):
        part = data.get(section, {})
        minimum, recommended = part.get("minimum", {}), part.get("recommended", {})
        for key, low in minimum.items():
            high = recommended.get(key)
            if high is None:
                continue
            low_value: tuple[float, ...] = (
                compute_capability_key(low) if key == "compute_capability" else (float(low),)
            )
            high_value: tuple[float, ...] = (
                compute_capability_key(high) if key == "compute_capability" else (float(high),)
            )
            # A maximum temperature is better when lower: its minimum bar is the higher number.
            inverted = key == "cpu_package_max_c"
            if (low_value < high_value) if inverted else (low_value > high_value):
                line = _line_of(text, f"{section}.minimum", key)
                raise SpecError(
                    f"{origin}:{line}: {section}.minimum.{key}: {low} is stricter than "
                    f"{section}.recommended.{key} = {high}"
                )


def _thresholds(data: Mapping[str, Any], section: str) -> Thresholds:
    part = data.get(section, {})
    return Thresholds(
        minimum=dict(part.get("minimum", {})),
        recommended=dict(part.get("recommended", {})),
        reasoning=str(part.get("reasoning", "")).strip(),
    )


def parse_profile(text: str, origin: str) -> SpecProfile:
    """Parse and validate a profile's TOML text.

    Raises:
        SpecError: naming ``origin``, the line and the key of the first problem.
    """
    text = text.removeprefix("\ufeff")  # editors on Windows may save a byte-order mark
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{origin}: not valid TOML: {exc}") from None
    except RecursionError:
        raise SpecError(
            f"{origin}: not a spec table: its tables or arrays nest too deeply"
        ) from None
    except ValueError as exc:  # an integer of more digits than Python converts (4,300)
        raise SpecError(f"{origin}: not valid TOML: {exc}") from None
    _validate(data, text, origin)
    _check_consistency(data, text, origin)
    for key in _REQUIRED_KEYS:
        if key not in data:
            raise SpecError(f"{origin}:1: {key}: missing (required: {', '.join(_REQUIRED_KEYS)})")
    if data["schema"] != PROFILE_SCHEMA_VERSION:
        raise SpecError(
            f"{origin}:{_line_of(text, '', 'schema')}: schema: version {data['schema']} is not "
            f"supported; this dlready reads schema {PROFILE_SCHEMA_VERSION}"
        )
    gpu = data.get("gpu", {})
    psu = data.get("psu", {})
    build = data.get("build", {})
    return SpecProfile(
        name=str(data["name"]),
        title=str(data["title"]),
        source=str(data.get("source", "")),
        origin=origin,
        cpu=_thresholds(data, "cpu"),
        memory=_thresholds(data, "memory"),
        gpu=_thresholds(data, "gpu"),
        # Naming any GPU criterion means a GPU is expected; `required` overrides either way.
        gpu_required=bool(
            gpu.get("required", bool(gpu.get("minimum")) or bool(gpu.get("recommended")))
        ),
        gpu_caveats=tuple(
            Caveat(c["below_compute_capability"], str(c["text"]).strip())
            for c in gpu.get("caveats", [])
        ),
        psu=PsuRule(
            watts_per_gpu=float(psu.get("watts_per_gpu", 0)),
            default_gpu_power_w=float(psu.get("default_gpu_power_w", 250)),
            base_system_w=float(psu.get("base_system_w", 75)),
            minimum_headroom_fraction=float(psu.get("minimum_headroom_fraction", 0.2)),
            recommended_headroom_fraction=float(
                psu.get("recommended_headroom_fraction", psu.get("minimum_headroom_fraction", 0.2))
            ),
            cpu_tdp_w={k: float(v) for k, v in psu.get("cpu_tdp_w", {}).items()},
            reasoning=str(psu.get("reasoning", "")).strip(),
        ),
        cooling=_thresholds(data, "cooling"),
        judges_psu="psu" in data,
        judges_cooling="cooling" in data,
        build=BuildRule(
            required=bool(build.get("required", False)),
            ram_per_job_gib=float(build.get("ram_per_job_gib", BuildRule().ram_per_job_gib)),
            reasoning=str(build.get("reasoning", "")).strip(),
        ),
    )
