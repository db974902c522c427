"""Test images: config, manifest and index documents built from layers, and pushing.

:func:`build_image` turns layers into an :class:`Image` (config JSON and an OCI or
Docker schema 2 manifest); :func:`build_index` puts several images under an OCI
index or a Docker manifest list, attestation entries included. Documents are
serialised with sorted keys, so the same inputs always give the same digests.
:func:`push_image` uploads everything through a registry fixture's push helpers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Protocol

from sandpull.oci import Compression, Digest, Platform, mediatype
from tests.support.layers import Layer, decompress, make_layer

LINUX_AMD64 = Platform("linux", "amd64")
ATTESTATION_LAYER = "application/vnd.in-toto+json"
_CONFIG_TYPE = {
    mediatype.OCI_MANIFEST: mediatype.OCI_CONFIG,
    mediatype.DOCKER_MANIFEST: mediatype.DOCKER_CONFIG,
}


class PushTarget(Protocol):
    """What :func:`push_image` needs of a registry fixture (``RegistryServer``)."""

    host: str

    def push_blob(self, repo: str, data: bytes) -> Digest: ...

    def push_manifest(
        self, repo: str, tag_or_digest: str, data: bytes, media_type: str
    ) -> Digest: ...


@dataclass(frozen=True)
class RunConfig:
    """The ``config`` part of an image config: how a container from it starts."""

    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ("/bin/sh",)
    env: tuple[str, ...] = (
        "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    )
    working_dir: str = "/"
    user: str = ""

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"Cmd": list(self.cmd), "Env": list(self.env)}
        if self.entrypoint:
            out["Entrypoint"] = list(self.entrypoint)
        if self.working_dir:
            out["WorkingDir"] = self.working_dir
        if self.user:
            out["User"] = self.user
        return out


@dataclass(frozen=True)
class Image:
    """One single-platform image: its layers, config and manifest bytes."""

    layers: tuple[Layer, ...]
    config: bytes
    manifest: bytes
    media_type: str
    platform: Platform

    @property
    def digest(self) -> Digest:
        return Digest.of(self.manifest)

    @property
    def config_digest(self) -> Digest:
        return Digest.of(self.config)

    @property
    def diff_ids(self) -> tuple[Digest, ...]:
        return tuple(layer.diff_id for layer in self.layers)


@dataclass(frozen=True)
class IndexEntry:
    image: Image
    platform: Platform
    annotations: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class ImageIndex:
    """An OCI index or Docker manifest list over several images."""

    entries: tuple[IndexEntry, ...]
    data: bytes
    media_type: str

    @property
    def digest(self) -> Digest:
        return Digest.of(self.data)

    def for_platform(self, platform: Platform) -> Image:
        for entry in self.entries:
            if entry.platform.normalized() == platform.normalized():
                return entry.image
        raise LookupError(f"index has no entry for {platform}")


def _dumps(doc: dict[str, Any]) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()


def image_config(
    layers: tuple[Layer, ...], platform: Platform, run: RunConfig
) -> bytes:
    doc: dict[str, Any] = {
        **platform.to_json(),
        "created": "2024-01-01T00:00:00Z",
        "config": run.to_json(),
        "rootfs": {"type": "layers", "diff_ids": [str(x.diff_id) for x in layers]},
        "history": [{"created_by": f"layer {i}"} for i in range(len(layers))],
    }
    return _dumps(doc)


def build_image(
    layers: list[Layer] | tuple[Layer, ...],
    *,
    platform: Platform = LINUX_AMD64,
    run: RunConfig = RunConfig(),
    media_type: str = mediatype.OCI_MANIFEST,
    config: bytes | None = None,
) -> Image:
    """An image over ``layers``; ``config`` overrides the generated config JSON."""
    layers = tuple(layers)
    config = config if config is not None else image_config(layers, platform, run)
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": _descriptor(_CONFIG_TYPE[media_type], Digest.of(config), len(config)),
        "layers": [_descriptor(x.media_type, x.digest, x.size) for x in layers],
    }
    return Image(layers, config, _dumps(doc), media_type, platform)


def build_index(
    entries: list[IndexEntry], media_type: str = mediatype.OCI_INDEX
) -> ImageIndex:
    manifests = []
    for entry in entries:
        image = entry.image
        item = _descriptor(image.media_type, image.digest, len(image.manifest))
        item["platform"] = entry.platform.to_json()
        if entry.annotations:
            item["annotations"] = dict(entry.annotations)
        manifests.append(item)
    doc = {"schemaVersion": 2, "mediaType": media_type, "manifests": manifests}
    return ImageIndex(tuple(entries), _dumps(doc), media_type)


def attestation_for(image: Image, statement: bytes) -> IndexEntry:
    """A buildkit-style attestation entry (``unknown/unknown``) describing ``image``."""
    layer = Layer(statement, ATTESTATION_LAYER, Digest.of(statement))
    attestation = build_image([layer], platform=Platform("unknown", "unknown"))
    annotations = {
        "vnd.docker.reference.type": "attestation-manifest",
        "vnd.docker.reference.digest": str(image.digest),
    }
    return IndexEntry(attestation, Platform("unknown", "unknown"), annotations)


def gzip_twin(image: Image) -> Image:
    """The same image with every layer re-compressed as OCI gzip.

    The uncompressed layers, and so the config and the unpacked rootfs, are the
    same; tools that cannot read zstd or Docker's zstd layer type (umoci 0.4,
    skopeo 1.9) unpack the twin instead.
    """
    layers = [
        make_layer(
            decompress(x.blob, x.compression),
            mediatype.OCI_LAYER_GZIP,
            Compression.GZIP,
        )
        for x in image.layers
    ]
    return build_image(layers, platform=image.platform, config=image.config)


def _descriptor(media_type: str, digest: Digest, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": str(digest), "size": size}


@dataclass(frozen=True)
class Pushed:
    """Where a pushed image lives: ``ref`` is ``host/repo:tag``."""

    host: str
    repo: str
    tag: str
    digest: Digest

    @property
    def ref(self) -> str:
        return f"{self.host}/{self.repo}:{self.tag}"

    @property
    def ref_by_digest(self) -> str:
        return f"{self.host}/{self.repo}@{self.digest}"


def push_image(
    server: PushTarget, repo: str, tag: str, image: Image | ImageIndex
) -> Pushed:
    """Upload blobs, then child manifests by digest, then the top document by tag."""
    images = (
        [e.image for e in image.entries] if isinstance(image, ImageIndex) else [image]
    )
    seen: set[Digest] = set()
    for child in images:
        for blob in [child.config, *(x.blob for x in child.layers)]:
            if Digest.of(blob) not in seen:
                seen.add(server.push_blob(repo, blob))
        if isinstance(image, ImageIndex):
            server.push_manifest(
                repo, str(child.digest), child.manifest, child.media_type
            )
    top, media_type = (
        (image.data, image.media_type)
        if isinstance(image, ImageIndex)
        else (image.manifest, image.media_type)
    )
    digest = server.push_manifest(repo, tag, top, media_type)
    return Pushed(server.host, repo, tag, digest)
