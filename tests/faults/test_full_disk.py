"""A store on a small ext4 loop device, filled by a gzip bomb.

A layer of a few hundred kilobytes that expands to 256 MiB of zeros cannot fit
in a 48 MiB store: the pull must fail with a clear "no space" error, show no
image, leave no partial snapshot or ingest, give its temporary space back, and
a later pull of a small image must succeed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import tarfile
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpull.oci import Digest, mediatype
from tests.cli.conftest import Cli
from tests.images.bigimage import big_image
from tests.support.images import build_image, push_image
from tests.support.layers import Layer
from tests.support.registry_server import RegistryServer

pytestmark = [pytest.mark.registry, pytest.mark.root]

BOMB_BYTES = 256 << 20
STORE_MB = 48
NO_SPACE = 8


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    image, mount = tmp_path / "disk.img", tmp_path / "store"
    mount.mkdir()
    subprocess.run(["truncate", "-s", f"{STORE_MB}M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    subprocess.run(["mount", "-o", "loop", str(image), str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def gzip_bomb(size: int) -> Layer:
    """One file of ``size`` zero bytes in a gzip layer, compressed in pieces."""
    header = tarfile.TarInfo("zeros")
    header.size, header.mtime = size, 1_700_000_000
    head = header.tobuf(tarfile.PAX_FORMAT)
    tail = bytes(-size % 512) + bytes(1024)
    gzip = zlib.compressobj(9, zlib.DEFLATED, 31)
    diff = hashlib.sha256()
    out = io.BytesIO()
    chunk = bytes(1 << 20)
    for piece in [head, *([chunk] * (size >> 20)), tail]:
        diff.update(piece)
        out.write(gzip.compress(piece))
    out.write(gzip.flush())
    return Layer(
        out.getvalue(),
        mediatype.OCI_LAYER_GZIP,
        Digest.parse(f"sha256:{diff.hexdigest()}"),
    )


def _used(path: Path) -> int:
    st = os.statvfs(path)
    return (st.f_blocks - st.f_bfree) * st.f_frsize


def test_gzip_bomb_fails_with_no_space_and_frees_what_it_took(
    tmp_path: Path, small_disk: Path, registry_plain: RegistryServer
) -> None:
    bomb = push_image(
        registry_plain, "disk/bomb", "v1", build_image([gzip_bomb(BOMB_BYTES)])
    )
    fits = push_image(registry_plain, "disk/fits", "v1", big_image(1, 1 << 20, seed=9))
    cli = Cli(small_disk, registry_plain, tmp_path)
    cli.ok("images")  # creates the store's database
    used_before = _used(small_disk)

    failed = cli.run(*cli.pull_args(bomb.ref))

    error = failed.stderr.strip().splitlines()[-1]
    assert failed.returncode == NO_SPACE, failed.stderr
    assert error.startswith("error: ") and "no space" in error, failed.stderr
    assert json.loads(cli.ok("images", "--json")) == []
    assert list((small_disk / "snapshots").glob("*")) == []
    assert list((small_disk / "ingest").iterdir()) == []
    assert _used(small_disk) - used_before < 2 << 20

    cli.pull(fits.ref)

    assert [i["name"] for i in json.loads(cli.ok("images", "--json"))] == [fits.ref]
    assert "problem" not in cli.ok("check")
