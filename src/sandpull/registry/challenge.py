"""``WWW-Authenticate`` challenges (RFC 9110 section 11.6.1), parsed leniently.

Registries send several challenges in one header, several headers, quoted values with
commas inside, unquoted values and schemes in any case; every one of them is kept.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

_TOKEN = r"[!#$%&'*+.^_`|~0-9A-Za-z-]+"
_QUOTED = r'"(?:[^"\\]|\\.)*"'
# One element of the header: a parameter (name=value), a bare scheme, or a comma.
_ELEMENT = re.compile(
    rf"\s*(?:(?P<name>{_TOKEN})\s*=\s*(?P<value>{_QUOTED}|[^,\s]*)"
    rf"|(?P<scheme>{_TOKEN}=*)|(?P<comma>,))\s*"
)


@dataclass(frozen=True)
class Challenge:
    """One challenge: a lowercase scheme and its parameters (lowercase names)."""

    scheme: str
    params: dict[str, str] = field(default_factory=dict, hash=False)

    @property
    def realm(self) -> str | None:
        return self.params.get("realm")


def parse_challenges(headers: Iterable[str]) -> list[Challenge]:
    """Every challenge of every ``WWW-Authenticate`` header value, in order."""
    challenges: list[Challenge] = []
    for header in headers:
        challenges.extend(_parse_header(header))
    return challenges


def _parse_header(header: str) -> list[Challenge]:
    challenges: list[Challenge] = []
    position = 0
    while position < len(header):
        match = _ELEMENT.match(header, position)
        if match is None or match.end() == position:
            break  # garbage: keep what was understood so far
        position = match.end()
        if match["scheme"] is not None:
            challenges.append(Challenge(match["scheme"].lower(), {}))
        elif match["name"] is not None and challenges:
            challenges[-1].params[match["name"].lower()] = _unquote(match["value"])
    return challenges


def _unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] == '"':
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value
