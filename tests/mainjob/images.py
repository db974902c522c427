"""Images for the main job's proofs, built from tables of tar entries."""

from __future__ import annotations

import functools
import random
from pathlib import Path

from sandpull.oci import Compression, mediatype
from tests.support.images import Image, RunConfig, build_image
from tests.support.layers import Layer, dir_, file, make_layer, symlink, tar_entries

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "echo", "cat", "env", "id", "pwd", "sleep", "ls")
ENTRY = b"""#!/bin/sh
echo "pwd=$(pwd) uid=$(id -u) gid=$(id -g) greeting=$GREETING"
if [ $# -gt 0 ]; then exec "$@"; fi
"""


def _gzip(entries: list) -> Layer:  # type: ignore[type-arg]
    return make_layer(tar_entries(entries), mediatype.OCI_LAYER_GZIP, Compression.GZIP)


@functools.cache
def busybox_layer() -> Layer:
    """Static busybox with a few applet links, and users root and app (1000)."""
    entries = [dir_("bin/"), dir_("etc/"), dir_("tmp/", mode=0o1777)]
    entries.append(file("bin/busybox", BUSYBOX.read_bytes(), mode=0o755))
    entries += [symlink(f"bin/{name}", "busybox") for name in APPLETS]
    entries.append(
        file("etc/passwd", "root:x:0:0::/root:/bin/sh\napp:x:1000:1001::/app:/bin/sh\n")
    )
    entries.append(file("etc/group", "root:x:0:\napp:x:1001:\n"))
    return _gzip(entries)


def app_image() -> Image:
    """Two layers: busybox, then /app/entry.sh run as user app in /app."""
    app = _gzip(
        [dir_("app/", uid=1000, gid=1001), file("app/entry.sh", ENTRY, mode=0o755)]
    )
    run = RunConfig(
        entrypoint=("/app/entry.sh",),
        cmd=(),
        env=("PATH=/bin", "GREETING=hello-from-the-image"),
        working_dir="/app",
        user="app",
    )
    return build_image([busybox_layer(), app], run=run)


def marker_image(marker: bytes) -> Image:
    """Busybox plus ``/secret/marker`` holding ``marker``."""
    secret = _gzip([dir_("secret/"), file("secret/marker", marker)])
    return build_image([busybox_layer(), secret])


@functools.cache
def big_image(total: int = 100 << 20, layers: int = 4, seed: int = 7) -> Image:
    """``total`` bytes of random (incompressible) data in ``layers`` gzip layers."""
    built = []
    for i in range(layers):
        content = random.Random(seed * 100 + i).randbytes(total // layers)
        built.append(_gzip([dir_("data/"), file(f"data/{i}", content)]))
    return build_image([busybox_layer(), *built])
