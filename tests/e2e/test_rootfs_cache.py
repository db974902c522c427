"""The Debian rootfs cache: a clean clone builds it; an existing one is reused."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest

from tests.support.rootfs import TARBALL_NAME, debian_rootfs_tar


@pytest.mark.slow
def test_empty_cache_builds_a_debian_rootfs_once(tmp_path: Path) -> None:
    first = debian_rootfs_tar(tmp_path)
    mtime = first.stat().st_mtime_ns

    again = debian_rootfs_tar(tmp_path)

    assert again == first == tmp_path / TARBALL_NAME
    assert again.stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob("build-*"))
    with tarfile.open(first) as archive:
        names = set(archive.getnames())
    assert {"./usr/bin/bash", "./etc/debian_version", "./var/lib/dpkg/status"} <= names
    assert len(names) > 3000


def test_cached_rootfs_holds_a_debian_system() -> None:
    with tarfile.open(debian_rootfs_tar()) as archive:
        member = archive.getmember("./etc/debian_version")
        version = archive.extractfile(member).read()  # type: ignore[union-attr]
    assert version.startswith(b"12.")
