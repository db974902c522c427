"""An in-process image store for agent tests, built from real directories.

It stands in for ``sandpull.images.ImageService`` (tested on its own against a
real registry): images are "remote" until pulled, pulling reports bytes to the
accounting hook, and snapshots are real directories that overlay mounts use.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sandpull.errors import NotFound
from sandpull.oci import Digest, ImageConfig, Platform, Reference
from sandpull.registry.credentials import Credential

BUSYBOX = Path("/bin/busybox")
APPLETS = ("sh", "id", "env", "pwd", "cat", "echo", "sleep", "ls", "kill", "true")


@dataclass(frozen=True)
class StoredImage:
    reference: Reference
    image_id: Digest
    manifest_digest: Digest
    repo_digest: Reference
    platform: Platform
    config: ImageConfig
    size: int
    layers: tuple[Path, ...]
    bytes_fetched: int = 0


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    inodes_used: int


@dataclass
class FakeImageStore:
    root: Path
    on_bytes: Callable[[str, str, int], None]
    remote: dict[str, StoredImage] = field(default_factory=dict)
    present: dict[str, StoredImage] = field(default_factory=dict)
    pulls: list[tuple[str, Credential | None]] = field(default_factory=list)

    async def pull(
        self,
        ref: Reference,
        platform: Platform | None = None,
        credentials: Credential | None = None,
    ) -> StoredImage:
        self.pulls.append((str(ref), credentials))
        image = self.remote.get(str(ref))
        if image is None:
            raise NotFound(f"get manifest {ref}: manifest unknown")
        self.on_bytes(ref.registry, ref.name, image.size)
        self.present[str(ref)] = image
        return StoredImage(**{**image.__dict__, "bytes_fetched": image.size})

    async def list_images(self) -> Sequence[StoredImage]:
        return list(self.present.values())

    async def get(self, ref: Reference) -> StoredImage:
        image = self.present.get(str(ref))
        if image is None:
            raise NotFound(f"get image {ref}: not in store")
        return image

    async def remove(self, ref: Reference) -> None:
        if self.present.pop(str(ref), None) is None:
            raise NotFound(f"remove image {ref}: not in store")

    async def fs_usage(self) -> Usage:
        return Usage(used_bytes=4096, inodes_used=7)

    async def snapshot_dirs(self, image: StoredImage) -> Sequence[Path]:
        return image.layers


def busybox_layer(fs: Path) -> None:
    """A layer with static busybox, a few applets and users ``app`` and ``nobody``."""
    (fs / "bin").mkdir(parents=True)
    shutil.copy2(BUSYBOX, fs / "bin" / "busybox")
    for applet in APPLETS:
        os.symlink("busybox", fs / "bin" / applet)
    (fs / "etc").mkdir()
    (fs / "etc" / "passwd").write_text(
        "root:x:0:0:root:/root:/bin/sh\n"
        "app:x:1000:1000:app:/home/app:/bin/sh\n"
        "nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    )
    (fs / "etc" / "group").write_text(
        "root:x:0:\napp:x:1000:\nextra:x:2000:app\nnogroup:x:65534:\n"
    )
    for path in ("home/app", "tmp", "proc", "dev", "sys", "root"):
        (fs / path).mkdir(parents=True)
    os.chown(fs / "home" / "app", 1000, 1000)


def motd_layer(fs: Path) -> None:
    (fs / "etc").mkdir(parents=True)
    (fs / "etc" / "motd").write_text("second layer\n")


def make_image(
    name: str, layers: Sequence[Path], run: dict[str, object]
) -> StoredImage:
    doc = {
        "architecture": "amd64",
        "os": "linux",
        "config": run,
        "rootfs": {
            "type": "layers",
            "diff_ids": [str(Digest.of(str(p).encode())) for p in layers],
        },
    }
    config_bytes = json.dumps(doc).encode()
    ref = Reference.parse(name)
    manifest = Digest.of(b"manifest " + config_bytes)
    return StoredImage(
        reference=ref,
        image_id=Digest.of(config_bytes),
        manifest_digest=manifest,
        repo_digest=ref.with_digest(manifest),
        platform=Platform("linux", "amd64"),
        config=ImageConfig.parse(config_bytes),
        size=1000 + len(config_bytes),
        layers=tuple(layers),
    )
