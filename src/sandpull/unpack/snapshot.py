"""Writing one layer's changes into a fresh snapshot directory, overlay style.

:class:`SnapshotWriter` owns the snapshot directory while a layer is applied. It
works through directory fds of directories it created itself, replaces an existing
name by unlinking it and creating a new inode, and keeps the in-memory tree of
:mod:`sandpull.unpack.view` in step with the disk.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import stat
from collections.abc import Sequence
from pathlib import Path as FsPath

from sandpull.unpack import metadata
from sandpull.unpack.names import Path
from sandpull.unpack.view import DirMeta, Kind, Lowers, Node, View

_libc = ctypes.CDLL(None, use_errno=True)
_SYNC_FILE_RANGE_WRITE = 2

_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
#: Directory fds kept open between entries.
MAX_OPEN_DIRS = 256


class SnapshotWriter:
    """Creates entries in ``target`` over ``lowers`` (nearest first)."""

    def __init__(self, target: FsPath, lowers: Sequence[FsPath]) -> None:
        self.target = os.fspath(target)
        self.view = View(Lowers(lowers))
        self.view.root.declared = True
        self.view.root.fd = os.open(self.target, _DIR_FLAGS)
        self._open: list[Node] = []

    def close(self) -> None:
        self.release_fds(keep=0)
        os.close(self.view.root.fd)
        self.view.root.fd = -1

    def release_fds(self, keep: int = MAX_OPEN_DIRS) -> None:
        """Close the cached directory fds once more than ``keep`` are open; call
        between entries only (an entry's fds must stay valid while it is applied)."""
        if len(self._open) <= keep:
            return
        for node in self._open:
            if node.fd >= 0:
                os.close(node.fd)
                node.fd = -1
        self._open.clear()

    def fs_path(self, path: Path) -> str:
        return os.path.join(self.target, *path)

    # Directories -------------------------------------------------------------

    def ensure_dir(self, path: Path) -> Node:
        """The snapshot directory at canonical ``path``, with an open ``fd``.

        Missing parts are created: as a copy of the lower directory's metadata
        when a lower one shows through there (a copy-up of the directory only),
        otherwise as an implicit 0755 directory.
        """
        node = self.view.root
        for depth, part in enumerate(path):
            child = node.children.get(part)
            if child is None or child.kind is not Kind.DIR:
                child = self._make_dir(node, part, path[: depth + 1])
            elif child.fd < 0:
                self._open_dir(node, part, child)
            node = child
        return node

    def _make_dir(self, parent: Node, name: str, path: Path) -> Node:
        replaced = parent.children.get(name)
        if replaced is not None:
            # Only a whiteout of this layer can stand where a directory is wanted.
            os.unlink(name, dir_fd=parent.fd)
        found = self.view.lookup(path) if replaced is None else None
        os.mkdir(name, 0o700, dir_fd=parent.fd)
        node = Node(Kind.DIR, opaque=replaced is not None)
        parent.children[name] = node
        self._open_dir(parent, name, node)
        if node.opaque:
            self.set_opaque(path, node)
        if found is not None and found.kind is Kind.DIR and found.layer >= 0:
            self._copy_dir_metadata(found.layer, path, parent, name, node)
        else:
            node.meta = DirMeta(0o755, None)
        return node

    def _copy_dir_metadata(
        self, layer: int, path: Path, parent: Node, name: str, node: Node
    ) -> None:
        lower = self.view.lowers.fs_path(layer, path)
        st = os.lstat(lower)
        os.chown(name, st.st_uid, st.st_gid, dir_fd=parent.fd, follow_symlinks=False)
        metadata.copy_xattrs(lower, self.fs_path(path))
        node.meta = DirMeta(stat.S_IMODE(st.st_mode), st.st_mtime_ns)

    def _open_dir(self, parent: Node, name: str, node: Node) -> None:
        node.fd = os.open(name, _DIR_FLAGS, dir_fd=parent.fd)
        self._open.append(node)

    def set_opaque(self, path: Path, node: Node) -> None:
        os.setxattr(
            self.fs_path(path), "trusted.overlay.opaque", b"y", follow_symlinks=False
        )
        node.opaque = True

    # Replacing ---------------------------------------------------------------

    def clear(self, parent: Node, name: str, *, keep_dir: bool) -> None:
        """Remove ``name`` from ``parent`` unless it is a directory and ``keep_dir``."""
        node = parent.children.get(name)
        if node is None:
            return
        if node.kind is Kind.DIR:
            if keep_dir:
                return
            shutil.rmtree(name, dir_fd=parent.fd)
            self._forget(node)
        else:
            os.unlink(name, dir_fd=parent.fd)
        del parent.children[name]

    def _forget(self, node: Node) -> None:
        stack = [node]
        while stack:
            current = stack.pop()
            if current.fd >= 0:
                os.close(current.fd)
                current.fd = -1
            stack.extend(current.children.values())

    def make_whiteout(self, parent: Node, name: str) -> None:
        os.mknod(name, stat.S_IFCHR | 0o000, 0, dir_fd=parent.fd)
        parent.children[name] = Node(Kind.WHITEOUT)

    # Copy-up of a lower non-directory (the source of a hardlink) -------------

    def copy_up(self, layer: int, path: Path, parent: Node) -> Node:
        """Copy the lower entry at ``path`` into ``parent`` as a new inode."""
        source = self.view.lowers.fs_path(layer, path)
        name = path[-1]
        st = os.lstat(source)
        if stat.S_ISREG(st.st_mode):
            self._copy_file(source, name, parent)
            node = Node(Kind.OTHER)
        elif stat.S_ISLNK(st.st_mode):
            node = Node(Kind.SYMLINK, link=os.readlink(source))
            os.symlink(node.link, name, dir_fd=parent.fd)
        else:
            # Devices and FIFOs are recreated from their mode; never opened.
            os.mknod(name, st.st_mode, st.st_rdev, dir_fd=parent.fd)
            node = Node(Kind.OTHER)
        # Owner first: chown clears setuid bits and file capabilities.
        os.chown(name, st.st_uid, st.st_gid, dir_fd=parent.fd, follow_symlinks=False)
        if not stat.S_ISLNK(st.st_mode):
            os.chmod(name, stat.S_IMODE(st.st_mode), dir_fd=parent.fd)
        metadata.copy_xattrs(source, self.fs_path(path))
        metadata.set_times(parent.fd, name, st.st_mtime_ns)
        parent.children[name] = node
        return node

    def _copy_file(self, source: str, name: str, parent: Node) -> None:
        src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            dst = os.open(name, _NEW_FILE, 0o600, dir_fd=parent.fd)
            try:
                while os.copy_file_range(src, dst, 1 << 30):
                    pass
            finally:
                os.close(dst)
        finally:
            os.close(src)

    # Finishing ---------------------------------------------------------------

    @staticmethod
    def start_writeback(fd: int) -> None:
        """Start writing ``fd``'s dirty pages to disk without waiting for them.

        The snapshot is flushed as a whole before it is committed; starting the
        writeback of large files early lets the disk work while later entries
        are decompressed, so that flush finds little left to do. Best effort:
        a failure here shows up in the flush.
        """
        _libc.sync_file_range(
            ctypes.c_int(fd),
            ctypes.c_longlong(0),
            ctypes.c_longlong(0),
            ctypes.c_uint(_SYNC_FILE_RANGE_WRITE),
        )

    def finish(self) -> None:
        """Apply deferred directory modes and times, children before parents."""
        self._finish_dir(self.view.root, self.view.root.fd, ".")

    def _finish_dir(self, node: Node, parent_fd: int, name: str) -> None:
        fd = os.open(
            name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent_fd
        )
        try:
            for child_name, child in node.children.items():
                if child.kind is Kind.DIR:
                    self._finish_dir(child, fd, child_name)
            if node.meta is not None:
                os.fchmod(fd, node.meta.mode)
                if node.meta.mtime_ns is not None:
                    os.utime(fd, ns=(node.meta.mtime_ns, node.meta.mtime_ns))
        finally:
            os.close(fd)
