"""Merged views of a stack of snapshots, written in the spec notation of tarbuild.

``overlay_tree`` mounts the snapshots as a real overlayfs and reads the result;
``python_tree`` merges them in Python with an algorithm independent of the
unpacker's. Both give a set of strings: ``a/`` a directory, ``a/b=text`` a file,
``a -> t`` a symlink, ``dev c 1,3`` a device, ``run/fifo |`` a FIFO.
"""

from __future__ import annotations

import contextlib
import os
import stat
import subprocess
from collections.abc import Iterator, Sequence
from pathlib import Path

OPAQUE = "trusted.overlay.opaque"


def describe(path: Path, rel: str) -> str:
    st = os.lstat(path)
    if stat.S_ISDIR(st.st_mode):
        return rel + "/"
    if stat.S_ISLNK(st.st_mode):
        return f"{rel} -> {os.readlink(path)}"
    if stat.S_ISREG(st.st_mode):
        return f"{rel}={path.read_bytes().decode(errors='replace')}"
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        kind = "c" if stat.S_ISCHR(st.st_mode) else "b"
        return f"{rel} {kind} {os.major(st.st_rdev)},{os.minor(st.st_rdev)}"
    if stat.S_ISFIFO(st.st_mode):
        return f"{rel} |"
    return f"{rel} ?"


def walk(root: Path) -> Iterator[tuple[Path, str]]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            full = Path(dirpath, name)
            yield full, str(full.relative_to(root))


def tree(root: Path) -> set[str]:
    """The entries under ``root`` in spec notation."""
    return {describe(full, rel) for full, rel in walk(root)}


def expand(specs: Sequence[str]) -> set[str]:
    """Spec strings with the default file content (its own name) written out."""
    out = set()
    for spec in specs:
        plain = " -> " not in spec and not spec.endswith(("/", "|")) and "=" not in spec
        out.add(f"{spec}={spec}" if plain and " c " not in spec else spec)
    return out


@contextlib.contextmanager
def mounted(snapshots: Sequence[Path], where: Path) -> Iterator[Path]:
    """``snapshots`` (base first) mounted read-only as one overlay at ``where``."""
    where.mkdir(parents=True, exist_ok=True)
    empty = where.parent / (where.name + ".empty")
    empty.mkdir(exist_ok=True)
    layers = [str(s) for s in reversed(snapshots)] + [str(empty)]
    subprocess.run(
        [
            "mount",
            "-t",
            "overlay",
            "overlay",
            "-o",
            "lowerdir=" + ":".join(layers),
            str(where),
        ],
        check=True,
    )
    try:
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


def overlay_tree(snapshots: Sequence[Path], where: Path) -> set[str]:
    with mounted(snapshots, where) as root:
        return tree(root)


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _opaque(path: Path) -> bool:
    try:
        return os.getxattr(path, OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def python_tree(snapshots: Sequence[Path]) -> set[str]:
    """Merge ``snapshots`` (base first) by replaying each one over the result."""
    merged: dict[str, str] = {}
    for snapshot in snapshots:
        entries = sorted(walk(snapshot), key=lambda item: item[1].count("/"))
        for full, rel in entries:
            st = os.lstat(full)
            if stat.S_ISDIR(st.st_mode) and _opaque(full):
                _drop_below(merged, rel)
        for full, rel in entries:
            st = os.lstat(full)
            if _is_whiteout(st):
                _drop(merged, rel)
                continue
            below_is_dir = merged.get(rel, rel + "/") == rel + "/"
            if not stat.S_ISDIR(st.st_mode) or not below_is_dir:
                _drop(merged, rel)
            merged[rel] = describe(full, rel)
    return set(merged.values())


def _drop_below(merged: dict[str, str], rel: str) -> None:
    for key in [k for k in merged if k.startswith(rel + "/")]:
        del merged[key]


def _drop(merged: dict[str, str], rel: str) -> None:
    merged.pop(rel, None)
    _drop_below(merged, rel)
