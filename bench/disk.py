"""The file systems the tools write to: a loop-mounted ext4 image, or the root disk."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Target:
    """A directory on the file system under test; ``fs`` is ``loop`` or ``root``."""

    fs: str
    root: Path
    mounted: bool


def loop_ext4(work: Path, size_gib: int) -> Target:
    """A fresh sparse ext4 image under ``work``, loop-mounted at ``work/loop``.

    Inode tables and the journal are initialised by ``mkfs`` itself, so no
    background ``ext4lazyinit`` writes run during the measurements.
    """
    image, mountpoint = work / "disk.ext4", work / "loop"
    unmount(mountpoint)
    image.unlink(missing_ok=True)
    with image.open("wb") as handle:
        handle.truncate(size_gib << 30)
    _run(["mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0",
          str(image)])  # fmt: skip
    mountpoint.mkdir(parents=True, exist_ok=True)
    _run(["mount", "-o", "loop", str(image), str(mountpoint)])
    return Target("loop", mountpoint, True)


def root_disk(work: Path) -> Target:
    directory = work / "rootdisk"
    directory.mkdir(parents=True, exist_ok=True)
    return Target("root", directory, False)


def release(target: Target) -> None:
    """Unmount the loop image (the loop device detaches with it)."""
    if target.mounted:
        unmount(target.root)


def unmount(mountpoint: Path) -> None:
    if os.path.ismount(mountpoint):
        _run(["umount", str(mountpoint)])


def mounts_under(directory: Path) -> list[Path]:
    """Mount points at or below ``directory``, deepest first."""
    prefix = str(directory.resolve())
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == prefix or point.startswith(prefix + "/"):
            found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def wipe(directory: Path) -> None:
    """Remove a tool's store: unmount anything it left mounted, then delete it."""
    if not directory.exists():
        return
    for point in mounts_under(directory):
        subprocess.run(["umount", "-l", str(point)], check=False, capture_output=True)
    shutil.rmtree(directory)


def _run(argv: list[str]) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]}: exit {done.returncode}: {done.stderr.strip()}")
