"""Parse a pip, uv or conda install command into packages, pins, index and channels.

Used to compare commands by meaning, not by whitespace: the golden tests parse both the
published pytorch.org commands and the planner's output, and the table generator parses the
published commands to learn each variant's index form.
"""

from __future__ import annotations

import re
import shlex

from msgspec import Struct, field

_PIP_REQUIREMENT = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"(?:(?P<op>===|==)(?P<version>[0-9][0-9A-Za-z.]*)(?:\+(?P<local>[0-9A-Za-z.]+))?)?$"
)
_CONDA_SPEC = re.compile(
    r"^(?:(?P<channel>[A-Za-z0-9_.-]+)::)?(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)"
    r"(?:(?P<op>==|=)(?P<version>[0-9][0-9A-Za-z.*]*))?$"
)
PIP_PROGRAMS = frozenset({"pip", "pip3"})
"""``pip3`` (Start-Locally text) and ``pip`` (previous-versions page) mean the same here."""


PIP_OPTIONS = frozenset({"--force-reinstall"})


class CommandParseError(ValueError):
    """The text is not a single install command this parser understands."""


class Requirement(Struct, frozen=True):
    """One package on an install command line."""

    name: str
    operator: str | None = None
    version: str | None = None
    local: str | None = None
    channel: str | None = None

    @property
    def pin(self) -> str | None:
        """The pinned version including its local part (``2.5.1+cu121``), if any."""
        if self.version is None:
            return None
        return f"{self.version}+{self.local}" if self.local else self.version


class ParsedCommand(Struct, frozen=True):
    """The meaning of one install command line."""

    manager: str
    requirements: tuple[Requirement, ...]
    index_url: str | None = None
    extra_index_urls: tuple[str, ...] = ()
    find_links: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    options: tuple[str, ...] = ()
    """Value-less pip options dlready itself prints (``--force-reinstall``)."""
    conda_extras: tuple[str, ...] = field(default=())
    """Conda specs that are not PyTorch packages: ``cudatoolkit=10.2``, ``pytorch-cuda=12.1``,
    ``cpuonly``."""

    def requirement(self, name: str) -> Requirement | None:
        """The requirement for one package name, if present."""
        for req in self.requirements:
            if req.name == name:
                return req
        return None

    @property
    def names(self) -> tuple[str, ...]:
        """Package names in command order."""
        return tuple(req.name for req in self.requirements)


CONDA_EXTRA_NAMES = frozenset({"cudatoolkit", "pytorch-cuda", "cpuonly"})


def parse_install_command(text: str) -> ParsedCommand:
    """Parse ``pip install``, ``pip3 install``, ``uv pip install`` or ``conda install``.

    Raises:
        CommandParseError: for anything else, or a flag without its value.
    """
    try:
        tokens = shlex.split(text.strip())
    except ValueError as exc:
        raise CommandParseError(f"cannot split {text!r}: {exc}") from None
    if tokens[:1] and tokens[0] in {"python", "python3"} and tokens[1:3] == ["-m", "pip"]:
        tokens = ["pip", *tokens[3:]]
    if tokens[:3] == ["uv", "pip", "install"]:
        return _parse_pip("uv", tokens[3:], text)
    if tokens[:1] and tokens[0] in PIP_PROGRAMS and tokens[1:2] == ["install"]:
        return _parse_pip("pip", tokens[2:], text)
    if tokens[:2] == ["conda", "install"]:
        return _parse_conda(tokens[2:], text)
    raise CommandParseError(f"not an install command: {text!r}")


def _take_value(tokens: list[str], i: int, flag: str, text: str) -> str:
    if i + 1 >= len(tokens) or tokens[i + 1].startswith("-"):
        raise CommandParseError(f"{flag} has no value in {text!r}")
    return tokens[i + 1]


def _parse_pip(manager: str, tokens: list[str], text: str) -> ParsedCommand:
    requirements: list[Requirement] = []
    index_url: str | None = None
    extra: list[str] = []
    links: list[str] = []
    options: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in PIP_OPTIONS:
            options.append(token)
            i += 1
            continue
        if token in {"--index-url", "-i"}:
            index_url = _take_value(tokens, i, token, text)
            i += 2
            continue
        if token == "--extra-index-url":
            extra.append(_take_value(tokens, i, token, text))
            i += 2
            continue
        if token in {"-f", "--find-links"}:
            links.append(_take_value(tokens, i, token, text))
            i += 2
            continue
        if token.startswith("-"):
            raise CommandParseError(f"unknown option {token!r} in {text!r}")
        match = _PIP_REQUIREMENT.match(token)
        if not match:
            raise CommandParseError(f"not a package requirement: {token!r} in {text!r}")
        requirements.append(
            Requirement(
                name=match.group("name").lower(),
                operator=match.group("op"),
                version=match.group("version"),
                local=match.group("local"),
            )
        )
        i += 1
    if not requirements:
        raise CommandParseError(f"no packages in {text!r}")
    return ParsedCommand(
        manager=manager,
        requirements=tuple(requirements),
        index_url=index_url,
        extra_index_urls=tuple(extra),
        find_links=tuple(links),
        options=tuple(options),
    )


def _parse_conda(tokens: list[str], text: str) -> ParsedCommand:
    requirements: list[Requirement] = []
    extras: list[str] = []
    channels: list[str] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if token in {"-c", "--channel"}:
            channels.append(_take_value(tokens, i, token, text))
            i += 2
            continue
        if token in {"-y", "--yes"}:
            i += 1
            continue
        if token.startswith("-"):
            raise CommandParseError(f"unknown option {token!r} in {text!r}")
        match = _CONDA_SPEC.match(token)
        if not match:
            raise CommandParseError(f"not a conda spec: {token!r} in {text!r}")
        name = match.group("name").lower()
        if name in CONDA_EXTRA_NAMES:
            extras.append(token)
        else:
            requirements.append(
                Requirement(
                    name=name,
                    operator=match.group("op"),
                    version=match.group("version"),
                    channel=match.group("channel"),
                )
            )
        i += 1
    if not requirements:
        raise CommandParseError(f"no packages in {text!r}")
    return ParsedCommand(
        manager="conda",
        requirements=tuple(requirements),
        channels=tuple(channels),
        conda_extras=tuple(extras),
    )
