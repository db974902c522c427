"""Metadata of a tar entry: owner, mode, times and extended attributes.

Nothing here follows a symlink or opens a device node: names are changed through
their parent directory's fd with ``follow_symlinks=False``, and only regular files
and directories sandpull itself created are changed through an fd of their own.
"""

from __future__ import annotations

import errno
import logging
import os
import tarfile
from collections.abc import Iterator
from dataclasses import dataclass

_log = logging.getLogger(__name__)

_XATTR_PAX_PREFIX = "SCHILY.xattr."
#: Linux's XATTR_NAME_MAX and XATTR_SIZE_MAX.
MAX_XATTR_NAME = 255
MAX_XATTR_VALUE = 65536
_MAX_ID = 2**32 - 2  # (uid_t)-1 means "leave unchanged"


class BadMetadata(ValueError):
    """Metadata that cannot be applied faithfully: bad ids, times or xattrs."""


@dataclass(frozen=True)
class Metadata:
    """What sandpull applies from one entry's header."""

    uid: int
    gid: int
    mode: int
    mtime_ns: int
    xattrs: tuple[tuple[str, bytes], ...]


def metadata_of(entry: tarfile.TarInfo) -> Metadata:
    """The metadata of ``entry``; raises ``BadMetadata`` for values out of range."""
    for value, what in ((entry.uid, "uid"), (entry.gid, "gid")):
        if not 0 <= value <= _MAX_ID:
            raise BadMetadata(f"{what} {value} out of range")
    try:
        mtime_ns = int(entry.mtime * 1_000_000_000)
    except (OverflowError, ValueError) as exc:
        raise BadMetadata(f"mtime {entry.mtime!r} out of range") from exc
    if not -(2**62) < mtime_ns < 2**62:
        raise BadMetadata(f"mtime {entry.mtime!r} out of range")
    return Metadata(
        entry.uid, entry.gid, entry.mode & 0o7777, mtime_ns, tuple(_xattrs(entry))
    )


def _xattrs(entry: tarfile.TarInfo) -> Iterator[tuple[str, bytes]]:
    for key, text in entry.pax_headers.items():
        if not key.startswith(_XATTR_PAX_PREFIX):
            continue
        name = key[len(_XATTR_PAX_PREFIX) :]
        if name.startswith("trusted.overlay."):
            # The overlay's own attributes would let a layer forge whiteouts.
            _log.debug("skip xattr %s of %s", name, entry.name)
            continue
        value = text.encode("utf-8", "surrogateescape")
        if not name or "\0" in name or len(name.encode()) > MAX_XATTR_NAME:
            raise BadMetadata(f"xattr name {name[:64]!r} is not usable")
        if len(value) > MAX_XATTR_VALUE:
            raise BadMetadata(
                f"xattr {name} is {len(value)} bytes, want at most {MAX_XATTR_VALUE}"
            )
        yield name, value


def set_xattrs(target: int | str, xattrs: tuple[tuple[str, bytes], ...]) -> None:
    """Set ``xattrs`` on an fd or a path (never following a last symlink)."""
    for name, value in xattrs:
        try:
            if isinstance(target, int):
                os.setxattr(target, name, value)
            else:
                os.setxattr(target, name, value, follow_symlinks=False)
        except OSError as exc:
            if exc.errno not in (errno.ENOTSUP, errno.EPERM):
                raise BadMetadata(f"set xattr {name}: {exc.strerror}") from exc
            # Symlinks refuse user.* attributes, some filesystems refuse a namespace.
            _log.debug("skip xattr %s: %s", name, exc.strerror)


def set_file(fd: int, meta: Metadata, *, ownership: bool) -> None:
    """Apply ``meta`` to a regular file sandpull opened (owner before mode: chown
    clears setuid bits and file capabilities)."""
    if ownership:
        os.fchown(fd, meta.uid, meta.gid)
    os.fchmod(fd, meta.mode)
    set_xattrs(fd, meta.xattrs)
    os.utime(fd, ns=(meta.mtime_ns, meta.mtime_ns))


def set_node(
    dir_fd: int, name: str, path: str, meta: Metadata, *, ownership: bool, mode: bool
) -> None:
    """Apply ``meta`` to a symlink, device, FIFO (or a directory, without its mode
    and times) named ``name`` in ``dir_fd``; ``path`` is its full path for xattrs.

    ``mode`` is False for symlinks; for the rest the node was just created by
    sandpull, so changing its mode by name cannot reach through a symlink.
    """
    if ownership:
        os.chown(name, meta.uid, meta.gid, dir_fd=dir_fd, follow_symlinks=False)
    if mode:
        os.chmod(name, meta.mode, dir_fd=dir_fd)
    set_xattrs(path, meta.xattrs)


def set_times(dir_fd: int, name: str, mtime_ns: int) -> None:
    os.utime(name, ns=(mtime_ns, mtime_ns), dir_fd=dir_fd, follow_symlinks=False)


def copy_xattrs(source: str, target: str) -> None:
    """Copy the xattrs of ``source`` to ``target`` (both never followed), except
    the overlay's own."""
    for name in os.listxattr(source, follow_symlinks=False):
        if name.startswith("trusted.overlay."):
            continue
        value = os.getxattr(source, name, follow_symlinks=False)
        set_xattrs(target, ((name, value),))
