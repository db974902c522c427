"""The merged view a layer is applied onto: this layer's snapshot over its lowers.

The snapshot being written is mirrored by an in-memory tree of :class:`Node`; the
lower snapshots are immutable while a layer is applied, so what they hold is looked
up once and cached. Lookups follow overlayfs rules: a whiteout (a 0/0 character
device) hides a name, an opaque directory hides everything below it in the layers
under it, a non-directory stops the merge.

``View.resolve`` gives a path's place in that view with chroot semantics: symlinks
met along the way are followed inside the root (absolute targets from the root,
``..`` clamped at the root, a bounded number of hops); the last component is never
followed.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path as FsPath

from sandpull.unpack.names import Path

#: Symlinks followed while resolving one name; the kernel allows 40.
MAX_HOPS = 40
#: Components in a resolved path; deeper trees are refused as hostile.
MAX_DEPTH = 256

_OPAQUE_XATTR = "trusted.overlay.opaque"


class Kind(Enum):
    MISSING = "missing"
    DIR = "directory"
    SYMLINK = "symlink"
    WHITEOUT = "whiteout"
    OTHER = "file"


@dataclass(frozen=True)
class DirMeta:
    """Directory metadata applied once the layer is written."""

    mode: int
    mtime_ns: int | None


@dataclass(eq=False)
class Node:
    """An entry of the snapshot being written."""

    kind: Kind
    link: str = ""
    children: dict[str, Node] = field(default_factory=dict)
    opaque: bool = False
    #: Declared by an entry of this layer (not a copy-up or implicit parent).
    declared: bool = False
    meta: DirMeta | None = None
    fd: int = -1


@dataclass(frozen=True)
class Found:
    """What a path is in the lower layers: its kind, link, and the layer holding it."""

    kind: Kind
    layer: int = -1
    link: str = ""


MISSING = Found(Kind.MISSING)


class NotADirectory(Exception):
    """A parent component names an existing non-directory."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.path = path


class TooManyLinks(Exception):
    """Resolving a name took more than ``MAX_HOPS`` symlinks or ``MAX_DEPTH`` parts."""


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


class Lowers:
    """Cached, read-only lookups in the lower snapshots, nearest first."""

    def __init__(self, roots: Sequence[FsPath]) -> None:
        self.roots = [os.fspath(root) for root in roots]
        self._stats: dict[tuple[int, Path], os.stat_result | None] = {}
        self._dirs: dict[Path, tuple[int, ...]] = {(): tuple(range(len(roots)))}
        self._found: dict[Path, Found] = {}

    def fs_path(self, layer: int, path: Path) -> str:
        return os.path.join(self.roots[layer], *path)

    def lstat(self, layer: int, path: Path) -> os.stat_result | None:
        key = (layer, path)
        if key not in self._stats:
            try:
                self._stats[key] = os.lstat(self.fs_path(layer, path))
            except FileNotFoundError:
                self._stats[key] = None
            except NotADirectoryError:
                self._stats[key] = None
        return self._stats[key]

    def dir_layers(self, path: Path) -> tuple[int, ...]:
        """The layers whose directory at ``path`` shows in the merged view."""
        cached = self._dirs.get(path)
        if cached is not None:
            return cached
        layers: list[int] = []
        for layer in self.dir_layers(path[:-1]):
            st = self.lstat(layer, path)
            if st is None:
                continue
            if not stat.S_ISDIR(st.st_mode):
                break
            layers.append(layer)
            if self._opaque(layer, path):
                break
        self._dirs[path] = tuple(layers)
        return self._dirs[path]

    def lookup(self, path: Path) -> Found:
        """What ``path`` is in the merged lowers, without following a last symlink."""
        if not path:
            return Found(Kind.DIR, 0) if self.roots else MISSING
        cached = self._found.get(path)
        if cached is None:
            cached = self._found[path] = self._lookup(path)
        return cached

    def _lookup(self, path: Path) -> Found:
        for layer in self.dir_layers(path[:-1]):
            st = self.lstat(layer, path)
            if st is None:
                continue
            if _is_whiteout(st):
                return MISSING
            if stat.S_ISDIR(st.st_mode):
                return Found(Kind.DIR, layer)
            if stat.S_ISLNK(st.st_mode):
                return Found(
                    Kind.SYMLINK, layer, os.readlink(self.fs_path(layer, path))
                )
            return Found(Kind.OTHER, layer)
        return MISSING

    def _opaque(self, layer: int, path: Path) -> bool:
        try:
            value = os.getxattr(
                self.fs_path(layer, path), _OPAQUE_XATTR, follow_symlinks=False
            )
        except OSError as exc:
            if exc.errno in (errno.ENODATA, errno.ENOTSUP):
                return False
            raise
        return value == b"y"


@dataclass
class Resolved:
    """A canonical path in the merged view; ``exists`` is False if a part is absent."""

    path: Path
    exists: bool


class View:
    """The merged view: the snapshot tree (``root``) over its ``lowers``."""

    def __init__(self, lowers: Lowers) -> None:
        self.root = Node(Kind.DIR)
        self.lowers = lowers

    def node(self, path: Path) -> Node | None:
        """The snapshot's node at canonical ``path``, or None."""
        node: Node | None = self.root
        for part in path:
            if node is None:
                return None
            node = node.children.get(part)
        return node

    def lookup(self, path: Path) -> Found:
        """What canonical ``path`` is in the merged view (last symlink not followed)."""
        node = self.root
        for depth, part in enumerate(path):
            if node.opaque:
                return self._in_snapshot(self.node(path))
            child = node.children.get(part)
            if child is None:
                return self.lowers.lookup(path)
            if depth == len(path) - 1:
                return self._in_snapshot(child)
            if child.kind is not Kind.DIR:
                return MISSING
            node = child
        return Found(Kind.DIR)

    def shows_lowers(self, path: Path) -> bool:
        """Whether lower layers can show through at canonical ``path``."""
        node = self.root
        for part in path:
            if node.opaque:
                return False
            child = node.children.get(part)
            if child is None:
                return True
            if child.kind is not Kind.DIR:
                return False
            node = child
        return not node.opaque

    def resolve(self, path: Path) -> Resolved:
        """Resolve ``path`` as a directory, following every symlink met inside the root.

        Raises ``NotADirectory`` if a component is a non-directory and
        ``TooManyLinks`` past ``MAX_HOPS`` symlinks or ``MAX_DEPTH`` components.
        """
        pending = list(reversed(path))
        current: list[str] = []
        missing_at: int | None = None
        hops = 0
        while pending:
            part = pending.pop()
            if part in ("", "."):
                continue
            if part == "..":
                if current:
                    current.pop()
                if missing_at is not None and len(current) <= missing_at:
                    missing_at = None
                continue
            current.append(part)
            if len(current) > MAX_DEPTH:
                raise TooManyLinks(f"path deeper than {MAX_DEPTH} components")
            if missing_at is not None:
                continue
            found = self.lookup(tuple(current))
            if found.kind is Kind.DIR:
                continue
            if found.kind is Kind.MISSING:
                missing_at = len(current) - 1
                continue
            if found.kind is Kind.SYMLINK:
                hops += 1
                if hops > MAX_HOPS:
                    raise TooManyLinks(f"more than {MAX_HOPS} symlinks")
                current.pop()
                if found.link.startswith("/"):
                    current.clear()
                pending.extend(reversed(found.link.split("/")))
                continue
            raise NotADirectory(tuple(current))
        return Resolved(tuple(current), missing_at is None)

    def _in_snapshot(self, node: Node | None) -> Found:
        if node is None or node.kind is Kind.WHITEOUT:
            return MISSING
        return Found(node.kind, -1, node.link)
