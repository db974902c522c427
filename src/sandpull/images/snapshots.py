"""Snapshots: one unpacked layer per directory, ``<root>/snapshots/<id>/fs``.

A snapshot is written into ``<id>.partial/fs`` and renamed to ``<id>`` once its
layer is applied. Applied snapshots are committed in groups: one ``syncfs``
flushes them all, then one transaction marks their rows committed, so a
committed row always names a complete, durable directory (C42). Start-up
clean-up removes partial rows, ``*.partial`` directories and directories that
no committed row names (an applied snapshot a crash caught before its commit).
"""

from __future__ import annotations

import concurrent.futures
import ctypes
import dataclasses
import hashlib
import os
import shutil
import sqlite3
import stat
from dataclasses import dataclass
from pathlib import Path

from isal import isal_zlib

from sandpull.errors import FailedPrecondition, NotFound, VerificationError
from sandpull.images.db import now, transaction
from sandpull.oci import Digest

_libc = ctypes.CDLL(None, use_errno=True)
_READ_CHUNK = 1 << 20


@dataclass(frozen=True)
class Snapshot:
    id: int
    chain_id: Digest
    parent: Digest | None
    size: int
    tree_digest: Digest | None


@dataclass(frozen=True)
class PreparedSnapshot:
    """A snapshot being written; ``fs`` is the empty directory to apply into."""

    id: int
    chain_id: Digest
    parent: Digest | None
    fs: Path


class Snapshots:
    def __init__(self, root: Path, db: sqlite3.Connection) -> None:
        self.dir = root / "snapshots"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._db = db
        #: Snapshots this process prepared and has not committed or dropped yet.
        self._active: dict[int, PreparedSnapshot] = {}
        #: Applied (renamed) snapshots awaiting their group commit, by chain id.
        self._applied: dict[Digest, PreparedSnapshot] = {}

    def fs(self, snapshot_id: int) -> Path:
        return self.dir / str(snapshot_id) / "fs"

    def get(self, chain_id: Digest) -> Snapshot | None:
        row = self._db.execute(
            "SELECT * FROM snapshots WHERE chain_id = ? AND status = 'committed'",
            (str(chain_id),),
        ).fetchone()
        return _snapshot(row) if row else None

    def require(self, chain_id: Digest) -> Snapshot:
        snapshot = self.get(chain_id)
        if snapshot is None:
            raise NotFound(f"find snapshot {chain_id.short}: not committed")
        return snapshot

    def stack(self, top: Digest) -> list[Snapshot]:
        """The snapshot ``top`` and its parents, nearest (top) first."""
        out: list[Snapshot] = []
        chain: Digest | None = top
        while chain is not None:
            snapshot = self.require(chain)
            out.append(snapshot)
            chain = snapshot.parent
        return out

    def lower_dirs(self, top: Digest) -> list[Path]:
        """The ``fs`` directories of ``top`` and its parents, nearest first.

        Applied snapshots still waiting for their commit count: a layer is
        applied over its parent as soon as the parent is applied.
        """
        out: list[Path] = []
        chain: Digest | None = top
        while chain is not None:
            applied = self._applied.get(chain)
            found = applied if applied is not None else self.require(chain)
            out.append(self.fs(found.id))
            chain = found.parent
        return out

    def committed(self) -> list[Snapshot]:
        rows = self._db.execute(
            "SELECT * FROM snapshots WHERE status = 'committed' ORDER BY id"
        )
        return [_snapshot(row) for row in rows]

    def prepare(self, chain_id: Digest, parent: Digest | None) -> PreparedSnapshot:
        """Record a partial snapshot and create its empty ``fs`` directory.

        The row only reserves the id: losing it in a crash loses nothing, so
        its transaction does not wait for the disk.
        """
        with transaction(self._db, durable=False) as db:
            cursor = db.execute(
                "INSERT INTO snapshots (chain_id, parent, status, created) "
                "VALUES (?, ?, 'partial', ?)",
                (str(chain_id), str(parent) if parent else None, now()),
            )
        snapshot_id = int(cursor.lastrowid or 0)
        fs = self.dir / f"{snapshot_id}.partial" / "fs"
        prepared = PreparedSnapshot(snapshot_id, chain_id, parent, fs)
        self._active[snapshot_id] = prepared
        fs.mkdir(parents=True)
        return prepared

    def applied(self, prepared: PreparedSnapshot) -> PreparedSnapshot:
        """Rename a fully applied snapshot into place; :meth:`commit_all` next.

        Nothing is flushed here: until its row is committed the directory is
        an orphan that start-up clean-up would remove.
        """
        final = self.fs(prepared.id)
        os.rename(prepared.fs.parent, final.parent)
        renamed = dataclasses.replace(prepared, fs=final)
        self._active[prepared.id] = renamed
        self._applied[prepared.chain_id] = renamed
        return renamed

    def commit_all(
        self, batch: list[PreparedSnapshot]
    ) -> list[Snapshot | FailedPrecondition]:
        """Flush applied snapshots with one ``syncfs``, then commit their rows in
        one transaction; parents must come before their children in ``batch``.

        A snapshot whose parent is not committed (its own commit failed) is
        dropped and reported as a :class:`FailedPrecondition`. If the flush
        fails, every snapshot of the batch is dropped and the error raised.
        """
        try:
            digests = _digest_while_flushing(self.dir, [p.fs for p in batch])
        except BaseException:
            for prepared in batch:
                self.delete(prepared.id)
            raise
        with transaction(self._db) as db:
            results = [
                _commit_row(db, prepared, size, tree)
                for prepared, (size, tree) in zip(batch, digests, strict=True)
            ]
        return [self._settle(p, r) for p, r in zip(batch, results, strict=True)]

    def _settle(
        self, prepared: PreparedSnapshot, result: Snapshot | FailedPrecondition | None
    ) -> Snapshot | FailedPrecondition:
        if isinstance(result, Snapshot):
            self._forget(prepared)
            return result
        self.delete(prepared.id)
        if result is None:
            # Another process committed the same chain id first; keep theirs.
            return self.require(prepared.chain_id)
        return result

    def _forget(self, prepared: PreparedSnapshot) -> None:
        self._active.pop(prepared.id, None)
        if self._applied.get(prepared.chain_id) == prepared:
            del self._applied[prepared.chain_id]

    def abort(self, prepared: PreparedSnapshot) -> None:
        self.delete(prepared.id)

    def delete(self, snapshot_id: int) -> None:
        """Drop the row first, then the directory (an orphan is cleaned later)."""
        with transaction(self._db) as db:
            db.execute("DELETE FROM snapshots WHERE id = ?", (snapshot_id,))
        prepared = self._active.get(snapshot_id)
        if prepared is not None:
            self._forget(prepared)
        for name in (f"{snapshot_id}.partial", str(snapshot_id)):
            shutil.rmtree(self.dir / name, ignore_errors=True)

    def verify(self, snapshot: Snapshot) -> None:
        _, tree = tree_digest(self.fs(snapshot.id))
        if tree != snapshot.tree_digest:
            raise VerificationError(
                f"verify snapshot {snapshot.id} ({snapshot.chain_id.short}): "
                f"tree digest {tree.short}, want "
                f"{snapshot.tree_digest.short if snapshot.tree_digest else 'none'}"
            )

    def clean(self) -> list[str]:
        """Remove partial rows, partial and orphan directories; return their names.

        What this process is still writing or committing is left alone.
        """
        active = sorted(self._active)
        with transaction(self._db, durable=False) as db:
            db.execute(
                "DELETE FROM snapshots WHERE status = 'partial' AND id NOT IN "
                f"({', '.join('?' * len(active))})",
                active,
            )
        known = {str(s.id) for s in self.committed()}
        known.update(str(i) for i in active)
        known.update(f"{i}.partial" for i in active)
        removed = [p.name for p in self.dir.iterdir() if p.name not in known]
        for name in removed:
            shutil.rmtree(self.dir / name, ignore_errors=True)
        return sorted(removed)


def tree_digest(root: Path) -> tuple[int, Digest]:
    """Bytes of regular files under ``root`` and a digest of the whole tree.

    The digest covers every entry's path, type, mode, owner, content (or link
    target, or device numbers) and extended attributes, in sorted path order.
    A file's content enters as its size and CRC-32: the digest detects damage to
    the snapshot, and whoever could forge content could rewrite the database
    row too, so a cryptographic hash per file would only cost a second full
    hashing pass over every layer.
    """
    hasher = hashlib.sha256()
    total = 0
    buffer = bytearray(_READ_CHUNK)
    for relative, path, info in sorted(_walk(os.fspath(root))):
        hasher.update(
            f"{relative}\0{info.st_mode:o}\0{info.st_uid}\0{info.st_gid}\0".encode()
        )
        hasher.update(_entry_payload(path, info, buffer).encode())
        hasher.update(_xattrs(path))
        if stat.S_ISREG(info.st_mode):
            total += info.st_size
    return total, Digest("sha256", hasher.hexdigest())


def _walk(root: str) -> list[tuple[str, str, os.stat_result]]:
    """Entries below ``root``, symlinks not followed: relative path, path, lstat."""
    found: list[tuple[str, str, os.stat_result]] = []
    pending = [("", root)]
    while pending:
        prefix, directory = pending.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                relative = prefix + entry.name
                info = entry.stat(follow_symlinks=False)
                found.append((relative, entry.path, info))
                if stat.S_ISDIR(info.st_mode):
                    pending.append((relative + "/", entry.path))
    return found


def _entry_payload(path: str, info: os.stat_result, buffer: bytearray) -> str:
    if stat.S_ISREG(info.st_mode):
        return _content_checksum(path, buffer)
    if stat.S_ISLNK(info.st_mode):
        return os.readlink(path)
    if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode):
        return f"{os.major(info.st_rdev)},{os.minor(info.st_rdev)}"
    return ""


def _content_checksum(path: str, buffer: bytearray) -> str:
    crc = 0
    size = 0
    view = memoryview(buffer)
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        while n := os.readv(fd, (buffer,)):
            crc = isal_zlib.crc32(view[:n], crc)
            size += n
    finally:
        os.close(fd)
    return f"crc32:{crc:08x}:{size}"


def _xattrs(path: str) -> bytes:
    try:
        names = sorted(os.listxattr(path, follow_symlinks=False))
    except OSError:
        return b""
    out = b""
    for name in names:
        value = os.getxattr(path, name, follow_symlinks=False)
        out += name.encode() + b"=" + value + b"\0"
    return out


def _commit_row(
    db: sqlite3.Connection, prepared: PreparedSnapshot, size: int, tree: Digest
) -> Snapshot | FailedPrecondition | None:
    """Mark one row committed; ``None`` when another process won its chain id."""
    if prepared.parent is not None and not _is_committed(db, prepared.parent):
        return FailedPrecondition(
            f"commit snapshot {prepared.id} ({prepared.chain_id.short}): parent "
            f"{prepared.parent.short} is not committed"
        )
    try:
        cursor = db.execute(
            "UPDATE snapshots SET status = 'committed', size = ?, tree_digest = ? "
            "WHERE id = ? AND status = 'partial'",
            (size, str(tree), prepared.id),
        )
    except sqlite3.IntegrityError:
        return None
    if cursor.rowcount != 1:
        return FailedPrecondition(
            f"commit snapshot {prepared.id} ({prepared.chain_id.short}): its "
            "partial row is gone"
        )
    return Snapshot(prepared.id, prepared.chain_id, prepared.parent, size, tree)


def _is_committed(db: sqlite3.Connection, chain_id: Digest) -> bool:
    row = db.execute(
        "SELECT 1 FROM snapshots WHERE chain_id = ? AND status = 'committed'",
        (str(chain_id),),
    ).fetchone()
    return row is not None


def _digest_while_flushing(
    directory: Path, roots: list[Path]
) -> list[tuple[int, Digest]]:
    """``tree_digest`` of each root while the file system is flushed in another
    thread: one reads the snapshots' pages, the other waits for the disk."""
    with concurrent.futures.ThreadPoolExecutor(1, "syncfs") as flusher:
        flushed = flusher.submit(_syncfs, directory)
        digests = [tree_digest(root) for root in roots]
        flushed.result()
    return digests


def _syncfs(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        if _libc.syncfs(fd) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno), str(path))
    finally:
        os.close(fd)


def _snapshot(row: sqlite3.Row) -> Snapshot:
    parent = row["parent"]
    tree = row["tree_digest"]
    return Snapshot(
        id=int(row["id"]),
        chain_id=Digest.parse(row["chain_id"]),
        parent=Digest.parse(parent) if parent else None,
        size=int(row["size"]),
        tree_digest=Digest.parse(tree) if tree else None,
    )
