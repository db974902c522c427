"""The named test images, each built once per session and pushed once per registry.

Use the ``image_catalogue`` fixture: ``image_catalogue.image(name)`` builds (once) and
``image_catalogue.push(server, name)`` pushes (once per registry) and returns where
it went. :data:`NAMES` lists every image; :data:`SMALL_NAMES` the ones that take
well under a second to pull. What each image holds is described next to its builder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from sandpull.oci import Compression, Platform, mediatype
from tests.support import debian, whiteouts
from tests.support.images import (
    Image,
    ImageIndex,
    IndexEntry,
    Pushed,
    PushTarget,
    RunConfig,
    attestation_for,
    build_image,
    build_index,
    gzip_twin,
    push_image,
)
from tests.support.layers import Layer, dir_, file, make_layer, symlink, tar_entries

AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64")  # no variant, as many indexes have it (C24)
ARMV7 = Platform("linux", "arm", "v7")

Built = Image | ImageIndex


def _base_layer(media_type: str, compression: Compression) -> Layer:
    entries = [
        dir_("etc/"),
        file("etc/hostname", "sandpull-test\n"),
        file("etc/os-release", 'ID=sandpull\nPRETTY_NAME="sandpull test"\n'),
        dir_("bin/"),
        file("bin/hello", "#!/bin/sh\necho hello\n", mode=0o755),
        dir_("usr/"),
        symlink("usr/bin", "../bin"),
        dir_("home/app/", mode=0o750, uid=1000, gid=1000),
        file("home/app/notes.txt", "owned by app\n", mode=0o600, uid=1000, gid=1000),
    ]
    return make_layer(tar_entries(entries), media_type, compression)


def _second_layer(media_type: str, compression: Compression, tag: str) -> Layer:
    entries = [
        dir_("etc/"),
        file("etc/hostname", f"sandpull-{tag}\n"),
        file("etc/image", f"{tag}\n"),
        dir_("srv/data/"),
        file("srv/data/blob.bin", bytes(range(256)) * 64),
    ]
    return make_layer(tar_entries(entries), media_type, compression)


def small() -> Image:
    """One gzip layer: a few files, a symlink, a non-root owned directory."""
    return build_image([_base_layer(mediatype.OCI_LAYER_GZIP, Compression.GZIP)])


def multiarch() -> ImageIndex:
    """OCI index: amd64, arm64 (no variant, C24), arm/v7, each with its own top
    layer, and an attestation (``unknown/unknown``) for amd64 listed first (C25)."""
    base = _base_layer(mediatype.OCI_LAYER_GZIP, Compression.GZIP)
    entries = []
    for platform in (AMD64, ARM64, ARMV7):
        top = _second_layer(mediatype.OCI_LAYER_GZIP, Compression.GZIP, str(platform))
        entries.append(
            IndexEntry(build_image([base, top], platform=platform), platform)
        )
    statement = b'{"_type":"https://in-toto.io/Statement/v0.1","subject":[]}'
    return build_index([attestation_for(entries[0].image, statement), *entries])


def docker_v2s2() -> Image:
    """Docker schema 2 manifest, Docker config and gzip layer media types."""
    layers = [
        _base_layer(mediatype.DOCKER_LAYER_GZIP, Compression.GZIP),
        _second_layer(mediatype.DOCKER_LAYER_GZIP, Compression.GZIP, "docker"),
    ]
    return build_image(layers, media_type=mediatype.DOCKER_MANIFEST)


def zstd() -> Image:
    """OCI manifest with zstd layers (C23, the standard half)."""
    layers = [
        _base_layer(mediatype.OCI_LAYER_ZSTD, Compression.ZSTD),
        _second_layer(mediatype.OCI_LAYER_ZSTD, Compression.ZSTD, "zstd"),
    ]
    return build_image(layers, run=RunConfig(entrypoint=("/bin/hello",), cmd=()))


def docker_zstd() -> Image:
    """Docker schema 2 manifest with the non-standard Docker zstd layer type (C23)."""
    layers = [
        _base_layer(mediatype.DOCKER_LAYER_ZSTD, Compression.ZSTD),
        _second_layer(mediatype.DOCKER_LAYER_ZSTD, Compression.ZSTD, "docker-zstd"),
    ]
    return build_image(layers, media_type=mediatype.DOCKER_MANIFEST)


BUILDERS: dict[str, Callable[[], Built]] = {
    "small": small,
    "multiarch": multiarch,
    "docker-v2s2": docker_v2s2,
    "zstd": zstd,
    "docker-zstd": docker_zstd,
    "whiteouts": whiteouts.image,
    "repeated-layer": whiteouts.repeated_layer_image,
    "debian": debian.image,
    "debian-zstd": debian.zstd_image,
}
NAMES = tuple(BUILDERS)
SMALL_NAMES = tuple(n for n in NAMES if not n.startswith("debian"))


@dataclass
class Catalogue:
    """Builds each named image at most once and pushes it at most once per registry."""

    images: dict[str, Built] = field(default_factory=dict)
    pushed: dict[tuple[str, str], Pushed] = field(default_factory=dict)

    def image(self, name: str) -> Built:
        if name not in self.images:
            self.images[name] = BUILDERS[name]()
        return self.images[name]

    def push(self, server: PushTarget, name: str, repo: str = "") -> Pushed:
        """Push ``name`` to ``server`` as ``test/<name>:v1`` (or ``repo``)."""
        repo = repo or f"test/{name}"
        key = (server.host, repo)
        if key not in self.pushed:
            self.pushed[key] = push_image(server, repo, "v1", self.image(name))
        return self.pushed[key]

    def push_reference(self, server: PushTarget, name: str) -> Pushed:
        """Push what umoci should unpack for ``name``: the image itself, or its
        gzip twin when a layer is zstd (umoci 0.4 and skopeo 1.9 cannot read it)."""
        image = self.platform_image(name)
        if all(x.compression is not Compression.ZSTD for x in image.layers):
            return self.push(server, name)
        twin_name = f"{name}-gzip-twin"
        if twin_name not in self.images:
            self.images[twin_name] = gzip_twin(image)
        return self.push(server, twin_name)

    def platform_image(self, name: str, platform: Platform | None = None) -> Image:
        """The single-platform image that a pull of ``name`` resolves to on
        ``platform`` (the host's by default)."""
        built = self.image(name)
        if isinstance(built, ImageIndex):
            return built.for_platform(platform or Platform.host())
        return built


@pytest.fixture(scope="session")
def image_catalogue() -> Catalogue:
    return Catalogue()
