"""Applying one tar entry to a snapshot: the rules for each entry type.

Every entry name is cleaned first (absolute names taken from the root, names that
climb above it refused); its parent is resolved in the merged view with symlinks
followed inside the root; the entry itself replaces whatever the snapshot holds at
that name with a new inode.
"""

from __future__ import annotations

import logging
import os
import stat
import tarfile
from dataclasses import dataclass, field
from typing import cast

from sandpull.errors import HostileEntryError, VerificationError
from sandpull.oci import Digest
from sandpull.unpack import metadata
from sandpull.unpack.names import (
    EscapingName,
    Opaque,
    Path,
    Whiteout,
    clean_name,
    marker_of,
    show,
)
from sandpull.unpack.snapshot import SnapshotWriter
from sandpull.unpack.stream import CHUNK
from sandpull.unpack.tarstream import TarReader
from sandpull.unpack.view import (
    DirMeta,
    Kind,
    Node,
    NotADirectory,
    Resolved,
    TooManyLinks,
)

_log = logging.getLogger(__name__)

#: Bytes of one file written before its writeback is started.
_WRITEBACK_BYTES = 16 << 20
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


@dataclass
class Policy:
    """What the caller allows, and what was skipped because of it."""

    devices: bool
    ownership: bool
    skipped_devices: list[str] = field(default_factory=list)


class EntryApplier:
    """Applies the entries of one layer, in order, to a ``SnapshotWriter``."""

    def __init__(self, writer: SnapshotWriter, layer: Digest, policy: Policy) -> None:
        self.writer = writer
        self.view = writer.view
        self.layer = layer
        self.policy = policy

    def hostile(self, entry: tarfile.TarInfo, reason: str) -> HostileEntryError:
        return HostileEntryError(
            f"apply layer {self.layer.short} entry {entry.name[:256]!r}: {reason}"
        )

    def apply(self, entry: tarfile.TarInfo, archive: TarReader) -> None:
        """Apply ``entry``; its data, if any, is read from ``archive``."""
        self.writer.release_fds()
        try:
            path = clean_name(entry.name)
            marker = marker_of(path)
        except EscapingName as exc:
            raise self.hostile(entry, str(exc)) from None
        try:
            if isinstance(marker, Whiteout):
                self._whiteout(marker)
            elif isinstance(marker, Opaque):
                self._opaque(marker.directory)
            elif not path:
                self._root(entry)
            else:
                self._entry(entry, path, archive)
        except NotADirectory as exc:
            raise self.hostile(entry, f"{show(exc.path)} is not a directory") from None
        except TooManyLinks as exc:
            raise self.hostile(entry, str(exc)) from None
        except metadata.BadMetadata as exc:
            raise self.hostile(entry, str(exc)) from exc

    # Markers -----------------------------------------------------------------

    def _whiteout(self, marker: Whiteout) -> None:
        try:
            parent = self.view.resolve(marker.parent)
        except NotADirectory:
            return  # nothing below a non-directory to hide
        if not parent.exists:
            return
        node = self.view.node(parent.path)
        existing = node.children.get(marker.name) if node is not None else None
        if existing is not None:
            self._whiteout_over(node, marker.name, existing, parent.path)
            return
        if self.view.lookup((*parent.path, marker.name)).kind is Kind.MISSING:
            return
        self.writer.make_whiteout(self.writer.ensure_dir(parent.path), marker.name)

    def _whiteout_over(
        self, parent: Node | None, name: str, node: Node, at: Path
    ) -> None:
        # A whiteout hides the lowers only: this layer's own entries stay.
        if node.kind is not Kind.DIR or parent is None:
            return
        path = (*at, name)
        if _holds_entries(node):
            if not node.opaque:
                self.writer.ensure_dir(path)
                self.writer.set_opaque(path, node)
            return
        holder = self.writer.ensure_dir(at)
        self.writer.clear(holder, name, keep_dir=False)
        self.writer.make_whiteout(holder, name)

    def _opaque(self, directory: Path) -> None:
        try:
            resolved = self.view.resolve(directory)
        except NotADirectory:
            return
        if not resolved.exists:
            return
        node = self.writer.ensure_dir(resolved.path)
        if not node.opaque:
            self.writer.set_opaque(resolved.path, node)

    def _root(self, entry: tarfile.TarInfo) -> None:
        if not entry.isdir():
            raise self.hostile(entry, "the root must be a directory")
        meta = metadata.metadata_of(entry)
        root = self.view.root
        self._own_dir(root, self.writer.target, meta)
        root.meta = DirMeta(meta.mode, meta.mtime_ns)

    # Entries -----------------------------------------------------------------

    def _entry(self, entry: tarfile.TarInfo, path: Path, archive: TarReader) -> None:
        resolved = self.view.resolve(path[:-1])
        parent = self.writer.ensure_dir(resolved.path)
        name = path[-1]
        at = (*resolved.path, name)
        meta = metadata.metadata_of(entry)
        if entry.isdir():
            self._dir(parent, name, at, meta)
        elif entry.isreg():
            self._file(entry, parent, name, meta, archive)
        elif entry.issym():
            self._symlink(entry, parent, name, at, meta)
        elif entry.islnk():
            self._hardlink(entry, parent, name, at)
        elif entry.ischr() or entry.isblk() or entry.isfifo():
            self._special(entry, parent, name, at, meta)
        else:
            raise self.hostile(entry, f"unsupported entry type {entry.type!r}")

    def _dir(self, parent: Node, name: str, at: Path, meta: metadata.Metadata) -> None:
        existing = parent.children.get(name)
        if existing is not None and existing.kind is not Kind.WHITEOUT:
            self.writer.clear(parent, name, keep_dir=True)
        # A directory over this layer's whiteout becomes opaque in ensure_dir.
        node = self.writer.ensure_dir(at)
        node.declared = True
        self._own_dir(node, self.writer.fs_path(at), meta)
        node.meta = DirMeta(meta.mode, meta.mtime_ns)

    def _own_dir(self, node: Node, fs_path: str, meta: metadata.Metadata) -> None:
        if self.policy.ownership:
            os.chown(fs_path, meta.uid, meta.gid, follow_symlinks=False)
        metadata.set_xattrs(fs_path, meta.xattrs)

    def _file(
        self,
        entry: tarfile.TarInfo,
        parent: Node,
        name: str,
        meta: metadata.Metadata,
        archive: TarReader,
    ) -> None:
        self.writer.clear(parent, name, keep_dir=False)
        fd = os.open(name, _NEW_FILE, 0o600, dir_fd=parent.fd)
        try:
            parent.children[name] = Node(Kind.OTHER, declared=True)
            if entry.sparse is not None:
                self._write_sparse(entry, fd, archive)
            else:
                self._write(entry, fd, archive, entry.size)
            metadata.set_file(fd, meta, ownership=self.policy.ownership)
        finally:
            os.close(fd)

    def _write(
        self, entry: tarfile.TarInfo, fd: int, archive: TarReader, size: int
    ) -> None:
        source = archive
        remaining = size
        unflushed = 0
        while remaining:
            data = source.read(min(remaining, CHUNK))
            if not data:
                raise VerificationError(
                    f"apply layer {self.layer.short} entry {entry.name[:256]!r}: "
                    f"data ends {remaining} bytes early"
                )
            remaining -= len(data)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            unflushed += len(data)
            if unflushed >= _WRITEBACK_BYTES or (not remaining and size >= CHUNK):
                self.writer.start_writeback(fd)
                unflushed = 0

    def _write_sparse(
        self, entry: tarfile.TarInfo, fd: int, archive: TarReader
    ) -> None:
        sparse = cast(list[tuple[int, int]], entry.sparse)
        for offset, length in sparse:
            if offset < 0 or length < 0 or offset + length > entry.size:
                raise self.hostile(entry, "sparse map outside the file")
            os.lseek(fd, offset, os.SEEK_SET)
            self._write(entry, fd, archive, length)
        os.ftruncate(fd, entry.size)

    def _symlink(
        self,
        entry: tarfile.TarInfo,
        parent: Node,
        name: str,
        at: Path,
        meta: metadata.Metadata,
    ) -> None:
        link = entry.linkname
        if not link or "\0" in link:
            raise self.hostile(entry, "symlink target is empty or holds a NUL byte")
        self.writer.clear(parent, name, keep_dir=False)
        os.symlink(link, name, dir_fd=parent.fd)
        parent.children[name] = Node(Kind.SYMLINK, link=link, declared=True)
        metadata.set_node(
            parent.fd,
            name,
            self.writer.fs_path(at),
            meta,
            ownership=self.policy.ownership,
            mode=False,
        )
        metadata.set_times(parent.fd, name, meta.mtime_ns)

    def _special(
        self,
        entry: tarfile.TarInfo,
        parent: Node,
        name: str,
        at: Path,
        meta: metadata.Metadata,
    ) -> None:
        if entry.isfifo():
            kind, device = stat.S_IFIFO, 0
        else:
            kind = stat.S_IFCHR if entry.ischr() else stat.S_IFBLK
            device = self._device_number(entry)
            if not self.policy.devices:
                self.policy.skipped_devices.append(show(at))
                return
        self.writer.clear(parent, name, keep_dir=False)
        try:
            os.mknod(name, kind | 0o600, device, dir_fd=parent.fd)
        except PermissionError:
            if kind == stat.S_IFIFO:
                raise
            self.policy.skipped_devices.append(show(at))
            return
        whiteout = kind == stat.S_IFCHR and device == 0
        parent.children[name] = Node(Kind.WHITEOUT if whiteout else Kind.OTHER)
        metadata.set_node(
            parent.fd,
            name,
            self.writer.fs_path(at),
            meta,
            ownership=self.policy.ownership,
            mode=True,
        )
        metadata.set_times(parent.fd, name, meta.mtime_ns)

    def _device_number(self, entry: tarfile.TarInfo) -> int:
        try:
            return os.makedev(entry.devmajor, entry.devminor)
        except (OverflowError, ValueError):
            raise self.hostile(entry, "device number out of range") from None

    # Hardlinks ---------------------------------------------------------------

    def _hardlink(
        self, entry: tarfile.TarInfo, parent: Node, name: str, at: Path
    ) -> None:
        source_parent, source_name = self._link_source(entry)
        source = (*source_parent.path, source_name)
        if source == at:
            return  # a link to itself changes nothing
        if source[: len(at)] == at:
            raise self.hostile(entry, "hardlink target lies inside the entry itself")
        holder = self.writer.ensure_dir(source_parent.path)
        node = holder.children.get(source_name)
        if node is None:
            node = self._copy_up_source(entry, source, holder)
        self.writer.clear(parent, name, keep_dir=False)
        os.link(
            source_name,
            name,
            src_dir_fd=holder.fd,
            dst_dir_fd=parent.fd,
            follow_symlinks=False,
        )
        parent.children[name] = Node(node.kind, link=node.link, declared=True)

    def _link_source(self, entry: tarfile.TarInfo) -> tuple[Resolved, str]:
        try:
            source = clean_name(entry.linkname)
        except EscapingName as exc:
            raise self.hostile(entry, f"hardlink target {exc}") from None
        if not source:
            raise self.hostile(entry, "hardlink to the root")
        resolved = self.view.resolve(source[:-1])
        found = self.view.lookup((*resolved.path, source[-1]))
        if not resolved.exists or found.kind is Kind.MISSING:
            raise self.hostile(
                entry, f"hardlink target {entry.linkname[:256]!r} is not extracted"
            )
        if found.kind is Kind.DIR:
            raise self.hostile(entry, "hardlink to a directory")
        return resolved, source[-1]

    def _copy_up_source(
        self, entry: tarfile.TarInfo, source: Path, holder: Node
    ) -> Node:
        found = self.view.lookup(source)
        if found.layer < 0:
            raise self.hostile(entry, "hardlink target is not extracted")
        return self.writer.copy_up(found.layer, source, holder)


def _holds_entries(node: Node) -> bool:
    """Whether ``node``'s subtree holds anything this layer declared."""
    if node.declared:
        return True
    return any(
        child.kind is not Kind.WHITEOUT
        and (child.kind is not Kind.DIR or _holds_entries(child))
        for child in node.children.values()
    )
