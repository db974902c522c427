"""``debian`` test images: a real Debian bookworm minbase rootfs split into layers.

The rootfs tarball (see :mod:`tests.support.rootfs`) is split by top-level
directory into three layers, ``/usr``; ``/etc`` and ``/var``; everything else,
and a fourth change layer adds, replaces and whites out files the way a
``RUN apt-get ...`` step would. A hardlink always goes to the layer that holds
its target, so no layer links to a file that a later layer brings.
"""

from __future__ import annotations

import functools
import io
import tarfile
from pathlib import Path

from sandpull.oci import Compression, mediatype
from tests.support.images import Image, RunConfig, build_image
from tests.support.layers import (
    Entry,
    Layer,
    dir_,
    file,
    hardlink,
    make_layer,
    opaque,
    tar_entries,
    whiteout,
)
from tests.support.rootfs import debian_rootfs_tar

_PAX = tarfile.PAX_FORMAT
_GROUPS = (("usr",), ("etc", "var"))
_RUN = RunConfig(cmd=("/bin/bash",), env=("PATH=/usr/sbin:/usr/bin:/sbin:/bin",))


def split_rootfs(tarball: Path) -> list[bytes]:
    """Uncompressed tar streams of the rootfs, one per group plus the rest."""
    outputs = [io.BytesIO() for _ in range(len(_GROUPS) + 1)]
    writers = [tarfile.TarFile(fileobj=o, mode="w", format=_PAX) for o in outputs]
    placed: dict[str, int] = {}
    with tarfile.open(tarball) as source:
        for member in source:
            index = _group_of(member, placed)
            placed[member.name] = index
            data = source.extractfile(member) if member.isreg() else None
            writers[index].addfile(member, data)
    for writer in writers:
        writer.close()
    return [o.getvalue() for o in outputs]


def _group_of(member: tarfile.TarInfo, placed: dict[str, int]) -> int:
    if member.islnk() and member.linkname in placed:
        return placed[member.linkname]
    top = member.name.removeprefix("./").split("/", 1)[0]
    for index, names in enumerate(_GROUPS):
        if top in names:
            return index
    return len(_GROUPS)


def change_layer() -> bytes:
    """What an image build step on top of the rootfs changes."""
    entries: list[Entry] = [
        dir_("etc/"),
        file("etc/hostname", "sandpull-debian\n"),
        file("etc/sandpull-release", "debian test image\n"),
        whiteout("etc/motd"),
        dir_("usr/share/doc/"),
        whiteout("usr/share/doc/bash"),
        dir_("var/log/"),
        opaque("var/log/"),
        file("var/log/build.log", "rebuilt by sandpull tests\n"),
        hardlink("usr/bin/sandpull-gzip", "usr/bin/gzip"),
        whiteout("var/cache/debconf/templates.dat-old"),
    ]
    return tar_entries(entries)


@functools.cache
def _layer_tars() -> tuple[bytes, ...]:
    # Both debian images share these; splitting the rootfs takes a few seconds.
    return (*split_rootfs(debian_rootfs_tar()), change_layer())


def _image(media_type: str, compression: Compression) -> Image:
    tars = _layer_tars()
    layers: list[Layer] = [make_layer(t, media_type, compression) for t in tars]
    return build_image(layers, run=_RUN)


def image() -> Image:
    """The rootfs in four gzip layers under an OCI manifest."""
    return _image(mediatype.OCI_LAYER_GZIP, Compression.GZIP)


def zstd_image() -> Image:
    """The same layers compressed with zstd."""
    return _image(mediatype.OCI_LAYER_ZSTD, Compression.ZSTD)
