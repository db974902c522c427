"""Deterministic layer tarballs for tests, from a table of entries or a directory.

A layer is described by a tuple of :class:`Entry` values written in table order, so
a test controls the exact tar stream (entry order, whiteouts before or after their
siblings, hardlinks to lower layers). The constructors (:func:`file`, :func:`dir_`,
:func:`symlink`, :func:`hardlink`, :func:`char`, :func:`block`, :func:`fifo`,
:func:`whiteout`, :func:`opaque`, :func:`sparse`) keep tables short. Output is
byte-for-byte reproducible: PAX format, fixed owners and mtimes, gzip with mtime 0.
"""

from __future__ import annotations

import gzip
import io
import os
import stat
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import isal.igzip
import zstandard

from sandpull.oci import Compression, Digest

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
DEFAULT_MTIME = 1_700_000_000
_BLOCK = 512


@dataclass(frozen=True)
class Entry:
    """One tar entry. ``target`` is a symlink target or a hardlink's linkname."""

    path: str
    kind: str
    content: bytes = b""
    target: str = ""
    mode: int = 0o644
    uid: int = 0
    gid: int = 0
    mtime: int = DEFAULT_MTIME
    device: tuple[int, int] = (0, 0)
    xattrs: tuple[tuple[str, bytes], ...] = ()
    #: For ``sparse``: (offset, data) segments of a file of ``size`` bytes.
    segments: tuple[tuple[int, bytes], ...] = ()
    size: int = 0


def file(path: str, content: bytes | str = b"", mode: int = 0o644, **kw: Any) -> Entry:
    data = content.encode() if isinstance(content, str) else content
    return Entry(path, "file", content=data, mode=mode, **kw)


def dir_(path: str, mode: int = 0o755, **kw: Any) -> Entry:
    return Entry(path.rstrip("/") + "/", "dir", mode=mode, **kw)


def symlink(path: str, target: str, **kw: Any) -> Entry:
    return Entry(path, "symlink", target=target, mode=0o777, **kw)


def hardlink(path: str, target: str, **kw: Any) -> Entry:
    return Entry(path, "hardlink", target=target, **kw)


def char(path: str, major: int, minor: int, mode: int = 0o666) -> Entry:
    return Entry(path, "char", mode=mode, device=(major, minor))


def block(path: str, major: int, minor: int, mode: int = 0o660) -> Entry:
    return Entry(path, "block", mode=mode, device=(major, minor))


def fifo(path: str, mode: int = 0o644) -> Entry:
    return Entry(path, "fifo", mode=mode)


def whiteout(path: str) -> Entry:
    """The marker that deletes ``path`` from the layers below."""
    parent, name = os.path.split(path.rstrip("/"))
    return Entry(os.path.join(parent, WHITEOUT_PREFIX + name), "file", mode=0o644)


def opaque(directory: str) -> Entry:
    """The marker that hides everything below ``directory`` in lower layers."""
    return Entry(os.path.join(directory.rstrip("/"), OPAQUE_MARKER), "file")


def sparse(path: str, size: int, segments: list[tuple[int, bytes]]) -> Entry:
    """A PAX 1.0 sparse file: holes everywhere except ``segments``."""
    return Entry(path, "sparse", segments=tuple(segments), size=size)


@dataclass(frozen=True)
class Layer:
    """A layer blob: compressed bytes, their media type and the uncompressed digest."""

    blob: bytes
    media_type: str
    diff_id: Digest
    compression: Compression = Compression.GZIP
    annotations: dict[str, str] = field(default_factory=dict, compare=False)

    @property
    def digest(self) -> Digest:
        return Digest.of(self.blob)

    @property
    def size(self) -> int:
        return len(self.blob)


def tar_entries(entries: tuple[Entry, ...] | list[Entry]) -> bytes:
    """The uncompressed PAX tar stream of ``entries``, in order."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for entry in entries:
            if entry.kind == "sparse":
                _add_sparse(archive, out, entry)
            else:
                info, data = _tarinfo(entry)
                archive.addfile(info, io.BytesIO(data) if data else None)
    return out.getvalue()


def _tarinfo(entry: Entry) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(entry.path)
    info.type = _TYPES[entry.kind]
    info.mode = entry.mode
    info.uid, info.gid = entry.uid, entry.gid
    info.uname = info.gname = ""
    info.mtime = entry.mtime
    info.linkname = entry.target
    info.devmajor, info.devminor = entry.device
    info.size = len(entry.content) if entry.kind == "file" else 0
    info.pax_headers = _xattr_headers(entry.xattrs)
    return info, entry.content


_TYPES = {
    "file": tarfile.REGTYPE,
    "dir": tarfile.DIRTYPE,
    "symlink": tarfile.SYMTYPE,
    "hardlink": tarfile.LNKTYPE,
    "char": tarfile.CHRTYPE,
    "block": tarfile.BLKTYPE,
    "fifo": tarfile.FIFOTYPE,
}


def _xattr_headers(xattrs: tuple[tuple[str, bytes], ...]) -> dict[str, str]:
    # tarfile writes str values back as their original bytes when they were
    # decoded with surrogateescape, which keeps binary xattrs (capabilities) intact.
    return {
        f"SCHILY.xattr.{name}": value.decode("utf-8", "surrogateescape")
        for name, value in xattrs
    }


def _add_sparse(archive: tarfile.TarFile, out: io.BytesIO, entry: Entry) -> None:
    # tarfile reads sparse files but cannot write them: write the PAX 1.0 form
    # by hand (map block, then the data of each segment) as a plain member.
    segments = list(entry.segments)
    numbers = [len(segments)] + [n for off, d in segments for n in (off, len(d))]
    sparse_map = "".join(f"{n}\n" for n in numbers).encode()
    sparse_map += b"\0" * (-len(sparse_map) % _BLOCK)
    payload = sparse_map + b"".join(data for _, data in segments)
    parent, name = os.path.split(entry.path)
    info = tarfile.TarInfo(os.path.join(parent, "GNUSparseFile.0", name))
    info.mode, info.mtime, info.size = entry.mode, entry.mtime, len(payload)
    info.pax_headers = {
        "GNU.sparse.major": "1",
        "GNU.sparse.minor": "0",
        "GNU.sparse.name": entry.path,
        "GNU.sparse.realsize": str(entry.size),
    }
    archive.addfile(info, io.BytesIO(payload))


def tar_directory(root: Path) -> bytes:
    """A layer holding everything below ``root``, names sorted, owners numeric."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for path in sorted(_walk(root)):
            info = archive.gettarinfo(str(path), arcname=_arcname(root, path))
            info.uname = info.gname = ""
            if info.isreg():
                with path.open("rb") as handle:
                    archive.addfile(info, handle)
            else:
                archive.addfile(info)
    return out.getvalue()


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for parent, dirs, files in os.walk(root):
        found.extend(Path(parent, name) for name in dirs + files)
    return found


def _arcname(root: Path, path: Path) -> str:
    name = str(PurePosixPath(path.relative_to(root)))
    return name + "/" if stat.S_ISDIR(path.lstat().st_mode) else name


def compress(tar: bytes, compression: Compression) -> bytes:
    if compression is Compression.GZIP:
        return bytes(isal.igzip.compress(tar, 3, mtime=0))
    if compression is Compression.ZSTD:
        return bytes(zstandard.ZstdCompressor(level=3).compress(tar))
    return tar


def decompress(blob: bytes, compression: Compression) -> bytes:
    if compression is Compression.GZIP:
        return gzip.decompress(blob)
    if compression is Compression.ZSTD:
        return bytes(zstandard.ZstdDecompressor().decompress(blob))
    return blob


def make_layer(tar: bytes, media_type: str, compression: Compression) -> Layer:
    """A layer from an uncompressed tar stream."""
    return Layer(compress(tar, compression), media_type, Digest.of(tar), compression)
