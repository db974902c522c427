"""Snapshots of a directory tree, and a readable comparison of two snapshots.

:func:`tree_snapshot` records every path below a root without following symlinks.
:func:`compare_trees` lists the differences as sentences. What is compared, and why:

- type, permission bits (setuid, setgid and sticky included), uid and gid;
- regular files: size and sha256 of the content (holes read as zeros, so a sparse
  file equals its dense copy); symlinks: the target; devices: major and minor;
- hardlinks, as partitions of paths: each path records the smallest path that shares
  its inode within the tree; inode numbers and link counts are not compared (an
  overlay reports the lower filesystem's counts, which include links hidden by
  upper layers);
- extended attributes, except ``trusted.overlay.*`` and ``user.overlay.*`` (the
  overlay's own bookkeeping, hidden in a merged view anyway) and ``security.selinux``
  (set by the host's policy, not by the image);
- mtimes of everything except directories, and only when asked: a directory's
  mtime changes whenever an entry is created or deleted in it, and umoci (which
  deletes whiteout targets in place) and an overlay (which shows the topmost
  layer's copy of a directory) legitimately disagree on it;
- the root directory itself is recorded as ``.`` but only its type is compared:
  its mode and owner come from whoever made the mount point or bundle.

Overlay limitation, by design of overlayfs: a hardlink added in an upper layer to a
file that was already hardlinked in a lower layer cannot join the lower group; the
test images avoid that shape rather than report it.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass, replace
from pathlib import Path

IGNORED_XATTR_PREFIXES = ("trusted.overlay.", "user.overlay.", "security.selinux")
_CHUNK = 1 << 20

_TYPES = (
    (stat.S_ISREG, "file"),
    (stat.S_ISDIR, "dir"),
    (stat.S_ISLNK, "symlink"),
    (stat.S_ISCHR, "char"),
    (stat.S_ISBLK, "block"),
    (stat.S_ISFIFO, "fifo"),
    (stat.S_ISSOCK, "socket"),
)


@dataclass(frozen=True)
class Entry:
    """What is recorded of one path; fields that do not apply are empty."""

    type: str
    mode: int
    uid: int
    gid: int
    size: int = 0
    sha256: str = ""
    target: str = ""
    link_group: str = ""
    xattrs: tuple[tuple[str, bytes], ...] = ()
    rdev: tuple[int, int] | None = None
    mtime: int = 0


Tree = dict[str, Entry]


def tree_snapshot(root: Path) -> Tree:
    """Every path below ``root`` (``.`` for root itself), symlinks not followed."""
    stats = {".": root.lstat()}
    for parent, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(parent, name)
            stats[str(path.relative_to(root))] = path.lstat()
    groups = _link_groups(stats)
    return {
        rel: _entry(root / rel, st, groups.get(rel, "")) for rel, st in stats.items()
    }


def _link_groups(stats: dict[str, os.stat_result]) -> dict[str, str]:
    by_inode: dict[tuple[int, int], list[str]] = {}
    for rel, st in stats.items():
        if not stat.S_ISDIR(st.st_mode) and st.st_nlink > 1:
            by_inode.setdefault((st.st_dev, st.st_ino), []).append(rel)
    return {
        rel: min(paths)
        for paths in by_inode.values()
        if len(paths) > 1
        for rel in paths
    }


def _entry(path: Path, st: os.stat_result, link_group: str) -> Entry:
    kind = next(name for test, name in _TYPES if test(st.st_mode))
    entry = Entry(
        type=kind,
        mode=stat.S_IMODE(st.st_mode),
        uid=st.st_uid,
        gid=st.st_gid,
        link_group=link_group,
        xattrs=_xattrs(path),
        mtime=int(st.st_mtime),
    )
    if kind == "file":
        return replace(entry, size=st.st_size, sha256=_sha256(path))
    if kind == "symlink":
        return replace(entry, target=os.readlink(path))
    if kind in ("char", "block"):
        return replace(entry, rdev=(os.major(st.st_rdev), os.minor(st.st_rdev)))
    return entry


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _xattrs(path: Path) -> tuple[tuple[str, bytes], ...]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return ()
    kept = sorted(n for n in names if not n.startswith(IGNORED_XATTR_PREFIXES))
    return tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in kept)


_FIELDS = ("type", "mode", "uid", "gid", "size", "sha256", "target", "link_group",
           "xattrs", "rdev")  # fmt: skip


def compare_trees(
    expected: Tree,
    actual: Tree,
    *,
    mtimes: bool = False,
    labels: tuple[str, str] = ("expected", "actual"),
) -> list[str]:
    """Differences between two snapshots as sentences; empty when they match."""
    want, got = labels
    problems = [
        f"{p}: only in {want} ({expected[p].type})"
        for p in sorted(expected.keys() - actual.keys())
    ]
    problems += [
        f"{p}: only in {got} ({actual[p].type})"
        for p in sorted(actual.keys() - expected.keys())
    ]
    for path in sorted(expected.keys() & actual.keys()):
        problems += _entry_differences(
            path, expected[path], actual[path], mtimes, labels
        )
    return problems


def _entry_differences(
    path: str, a: Entry, b: Entry, mtimes: bool, labels: tuple[str, str]
) -> list[str]:
    names: tuple[str, ...] = ("type",) if path == "." else _FIELDS
    if mtimes and a.type != "dir":
        names += ("mtime",)
    return [
        f"{path}: {name} {labels[0]} {_show(name, getattr(a, name))}, "
        f"{labels[1]} {_show(name, getattr(b, name))}"
        for name in names
        if getattr(a, name) != getattr(b, name)
    ]


def _show(name: str, value: object) -> str:
    if name == "mode" and isinstance(value, int):
        return f"{value:04o}"
    if name == "sha256" and isinstance(value, str):
        return value[:12]
    return repr(value)
