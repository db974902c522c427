"""A real Debian root filesystem for the ``debian`` test images, built once per machine.

``debian_rootfs_tar()`` returns a tarball of ``debootstrap --variant=minbase
bookworm``. The tarball is cached under ``<repo>/.cache/rootfs/`` (gitignored), so
the download happens at most once per cache directory; a clean clone builds it on
the first test run that needs it. An exclusive file lock makes concurrent test runs
wait for one build instead of racing. The tarball is written with GNU tar
(numeric owners, xattrs, hardlinks kept) and renamed into place only when complete,
so a killed build leaves no half-written cache behind.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CACHE_DIR = REPO / ".cache" / "rootfs"
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
TARBALL_NAME = f"debian-{SUITE}-minbase.tar"

#: debootstrap downloads and installs about 90 packages; give it room.
BUILD_TIMEOUT_SECONDS = 1800


def debian_rootfs_tar(cache_dir: Path = CACHE_DIR) -> Path:
    """The cached minbase rootfs tarball, built first if missing."""
    tarball = cache_dir / TARBALL_NAME
    if tarball.is_file():
        return tarball
    cache_dir.mkdir(parents=True, exist_ok=True)
    with _locked(cache_dir / ".lock"):
        if not tarball.is_file():
            _build(tarball)
    return tarball


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _build(tarball: Path) -> None:
    for debris in tarball.parent.glob("build-*"):
        # Left by a build that was killed; we hold the lock, so nobody uses it.
        shutil.rmtree(debris, ignore_errors=True)
    if shutil.which("debootstrap") is None:
        raise RuntimeError("build debian rootfs: debootstrap is not installed")
    work = Path(tempfile.mkdtemp(prefix="build-", dir=tarball.parent))
    try:
        target = work / "rootfs"
        _debootstrap(target)
        partial = work / "rootfs.tar"
        _tar(target, partial)
        partial.rename(tarball)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _debootstrap(target: Path) -> None:
    command = ["debootstrap", "--variant=minbase", SUITE, str(target), MIRROR]
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=BUILD_TIMEOUT_SECONDS
    )
    if result.returncode != 0:
        tail = (result.stdout + result.stderr)[-2000:]
        raise RuntimeError(f"debootstrap {SUITE}: exit {result.returncode}\n{tail}")


def _tar(source: Path, out: Path) -> None:
    command = [
        "tar",
        "--create",
        "--file",
        str(out),
        "--numeric-owner",
        "--xattrs",
        "--xattrs-include=*",
        "--sort=name",
        "--directory",
        str(source),
        ".",
    ]
    subprocess.run(command, check=True, capture_output=True)


if __name__ == "__main__":
    print(debian_rootfs_tar())
