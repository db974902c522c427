"""The container rootfs: one overlay mount of the image's snapshots.

The snapshots stay read-only lower layers shared by every container of the
image; each container writes to its own upper directory.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Sequence
from pathlib import Path

from sandpull.errors import InvalidArgument, from_os_error

_libc = ctypes.CDLL(None, use_errno=True)
_MNT_DETACH = 2
#: The kernel copies mount options into one page.
_MAX_OPTIONS = 4095


def mount_overlay(
    target: Path, lower_base_first: Sequence[Path], scratch: Path
) -> None:
    """Mount the overlay at ``target``; ``scratch`` gets ``upper/`` and ``work/``."""
    if not lower_base_first:
        raise InvalidArgument(f"mount rootfs {target}: image has no layers")
    upper, work = scratch / "upper", scratch / "work"
    for path in (upper, work, target):
        path.mkdir(parents=True, exist_ok=True)
    lower = ":".join(str(p) for p in reversed(lower_base_first))
    options = f"lowerdir={lower},upperdir={upper},workdir={work}"
    # TODO: images with very many layers overflow one page of mount options;
    # mounting with short relative paths (fsconfig or a chdir) would lift that.
    if len(options) > _MAX_OPTIONS:
        raise InvalidArgument(
            f"mount rootfs {target}: {len(lower_base_first)} layers exceed the "
            f"overlay option limit"
        )
    _mount(b"overlay", str(target).encode(), b"overlay", options.encode())


def unmount(target: Path) -> None:
    """Unmount ``target`` if it is mounted; lazily if it is busy."""
    if not os.path.ismount(target):
        return
    path = str(target).encode()
    if _libc.umount2(path, 0) == 0:
        return
    err = ctypes.get_errno()
    if err == errno.EBUSY and _libc.umount2(path, _MNT_DETACH) == 0:
        return
    raise from_os_error(f"unmount {target}", OSError(err, os.strerror(err)))


def _mount(source: bytes, target: bytes, fstype: bytes, options: bytes) -> None:
    if _libc.mount(source, target, fstype, 0, options) != 0:
        err = ctypes.get_errno()
        raise from_os_error(
            f"mount overlay at {target.decode()}", OSError(err, os.strerror(err))
        )
