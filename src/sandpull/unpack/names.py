"""Entry names of a layer tar: cleaning and whiteout markers.

A cleaned name is a tuple of path components relative to the snapshot root, with no
empty, ``.`` or ``..`` component. Cleaning is lexical and happens before any
filesystem call, so a name that climbs above the root is refused without touching
the disk.
"""

from __future__ import annotations

from dataclasses import dataclass

Path = tuple[str, ...]

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"


class EscapingName(ValueError):
    """A name that still climbs above the root after cleaning, or is unusable."""


def clean_name(name: str) -> Path:
    """Components of ``name`` taken relative to the root; raises ``EscapingName``."""
    if "\0" in name:
        raise EscapingName("name contains a NUL byte")
    parts: list[str] = []
    for part in name.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise EscapingName("name climbs above the root")
            parts.pop()
            continue
        parts.append(part)
    return tuple(parts)


@dataclass(frozen=True)
class Whiteout:
    """A whiteout entry: hide ``name`` in directory ``parent`` of the lower layers."""

    parent: Path
    name: str


@dataclass(frozen=True)
class Opaque:
    """An opaque marker: hide the lower layers' contents of ``directory``."""

    directory: Path


def marker_of(path: Path) -> Whiteout | Opaque | None:
    """The whiteout or opaque marker that ``path`` spells, or None for a plain entry.

    Raises ``EscapingName`` for a whiteout with no usable basename (``.wh.``,
    ``.wh..``, ``.wh...``) and for a marker used as a parent component.
    """
    for part in path[:-1]:
        if part.startswith(WHITEOUT_PREFIX):
            raise EscapingName("whiteout marker used as a parent directory")
    if not path or not path[-1].startswith(WHITEOUT_PREFIX):
        return None
    if path[-1] == OPAQUE_MARKER:
        return Opaque(path[:-1])
    hidden = path[-1][len(WHITEOUT_PREFIX) :]
    if hidden in ("", ".", ".."):
        raise EscapingName("whiteout has no usable basename")
    return Whiteout(path[:-1], hidden)


def show(path: Path) -> str:
    """``path`` as text for messages and logs."""
    return "/".join(path) or "/"
