"""Resolve a container's ``user`` (name, uid, ``user:group``) against its rootfs.

``/etc/passwd`` and ``/etc/group`` are read from the container's merged rootfs.
Symlinks there are resolved inside the rootfs, never on the host: an absolute
link such as ``/etc/passwd -> /usr/lib/passwd`` means ``<rootfs>/usr/lib/passwd``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sandpull.errors import InvalidArgument
from sandpull.oci.runtime import User

MAX_FILE_BYTES = 1 << 20
_MAX_LINKS = 40


@dataclass(frozen=True)
class PasswdEntry:
    name: str
    uid: int
    gid: int
    home: str


@dataclass(frozen=True)
class GroupEntry:
    name: str
    gid: int
    members: tuple[str, ...]


def resolve_user(rootfs: Path, spec: str) -> User:
    """The numeric identity for ``spec``; raises InvalidArgument for unknown names.

    An empty spec is root. A numeric uid not in ``/etc/passwd`` runs with gid 0.
    Supplementary groups are those of ``/etc/group`` that list the user's name.
    """
    name, _, group = spec.partition(":")
    passwd = parse_passwd(read_in_root(rootfs, "etc/passwd"))
    entry = _find_user(passwd, name or "0")
    if entry is None:
        raise InvalidArgument(f"resolve user {spec!r}: no such user in /etc/passwd")
    groups = parse_group(read_in_root(rootfs, "etc/group"))
    gid = entry.gid if not group else _group_id(groups, group, spec)
    extra = tuple(
        g.gid for g in groups if entry.name and entry.name in g.members and g.gid != gid
    )
    return User(uid=entry.uid, gid=gid, additional_gids=extra, home=entry.home)


def parse_passwd(text: str) -> list[PasswdEntry]:
    entries = []
    for fields in _records(text, 7):
        if fields[2].isdigit() and fields[3].isdigit():
            entries.append(
                PasswdEntry(fields[0], int(fields[2]), int(fields[3]), fields[5] or "/")
            )
    return entries


def parse_group(text: str) -> list[GroupEntry]:
    entries = []
    for fields in _records(text, 4):
        if fields[2].isdigit():
            members = tuple(m for m in fields[3].split(",") if m)
            entries.append(GroupEntry(fields[0], int(fields[2]), members))
    return entries


def read_in_root(root: Path, relative: str) -> str:
    """A small text file of the rootfs, or "" if absent; links stay inside ``root``."""
    path = _resolve_in_root(root, relative)
    if path is None:
        return ""
    with open(path, "rb") as file:
        data = file.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise InvalidArgument(f"read /{relative}: over {MAX_FILE_BYTES} bytes")
    return data.decode("utf-8", errors="replace")


def _find_user(passwd: list[PasswdEntry], name: str) -> PasswdEntry | None:
    for entry in passwd:
        if entry.name == name:
            return entry
    if not name.isdigit():
        return None
    uid = int(name)
    for entry in passwd:
        if entry.uid == uid:
            return entry
    return PasswdEntry("", uid, 0, "/")


def _group_id(groups: list[GroupEntry], group: str, spec: str) -> int:
    for entry in groups:
        if entry.name == group:
            return entry.gid
    if group.isdigit():
        return int(group)
    raise InvalidArgument(f"resolve user {spec!r}: no such group in /etc/group")


def _records(text: str, width: int) -> list[list[str]]:
    records = []
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            fields = line.split(":")
            if len(fields) >= width:
                records.append(fields)
    return records


def _resolve_in_root(root: Path, relative: str) -> Path | None:
    """Follow ``relative`` component by component, treating ``root`` as ``/``."""
    parts = [p for p in relative.split("/") if p]
    current: list[str] = []
    links = 0
    while parts:
        part = parts.pop(0)
        if part == "..":
            current = current[:-1]
            continue
        if part == ".":
            continue
        candidate = root.joinpath(*current, part)
        if not candidate.is_symlink():
            if not candidate.exists():
                return None
            current.append(part)
            continue
        links += 1
        if links > _MAX_LINKS:
            raise InvalidArgument(f"read /{relative}: too many symbolic links")
        target = os.readlink(candidate)
        if target.startswith("/"):
            current = []
        parts = [p for p in target.split("/") if p] + parts
    path = root.joinpath(*current)
    return path if path.is_file() else None
