"""Read-only overlay mounts of an image's snapshots."""

from __future__ import annotations

import ctypes
import os
from collections.abc import Sequence
from pathlib import Path

from sandpull.errors import FailedPrecondition, InvalidArgument, from_os_error

_libc = ctypes.CDLL(None, use_errno=True)
_MS_RDONLY = 1
#: The kernel copies mount options into one page.
_MAX_OPTIONS = 4095


def mount_overlay(lowers: Sequence[Path], target: Path) -> None:
    """Mount ``lowers`` (nearest first) read-only on ``target``."""
    if not lowers:
        raise FailedPrecondition(f"mount {target}: the image has no layers")
    for lower in lowers:
        if ":" in str(lower) or "," in str(lower):
            raise InvalidArgument(f"mount {target}: path {lower} has ':' or ','")
    options = "lowerdir=" + ":".join(str(p) for p in lowers)
    if len(options) > _MAX_OPTIONS:
        raise FailedPrecondition(
            f"mount {target}: {len(lowers)} layers make mount options longer "
            f"than {_MAX_OPTIONS} bytes"
        )
    result = _libc.mount(
        b"overlay", os.fsencode(target), b"overlay", _MS_RDONLY, options.encode()
    )
    if result != 0:
        errno = ctypes.get_errno()
        raise from_os_error(
            f"mount overlay on {target}", OSError(errno, os.strerror(errno))
        )


def mounted_lowers(mountinfo: Path = Path("/proc/self/mountinfo")) -> set[Path]:
    """Lower directories of the overlay mounts this mount namespace has.

    A snapshot listed here is in use (``sandpull mount``, a container's rootfs)
    even when no image names it any more.
    """
    try:
        lines = mountinfo.read_text().splitlines()
    except OSError as exc:
        raise from_os_error(f"read {mountinfo}", exc) from exc
    lowers: set[Path] = set()
    for line in lines:
        _, _, after = line.partition(" - ")
        fields = after.split(" ")
        if len(fields) < 3 or fields[0] != "overlay":
            continue
        for option in fields[2].split(","):
            if option.startswith("lowerdir="):
                lowers.update(Path(_unescape(p)) for p in option[9:].split(":"))
    return lowers


def _unescape(field: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n")):
        field = field.replace(code, char)
    return field.replace("\\134", "\\")
