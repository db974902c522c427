"""Media types of OCI and Docker image documents and layers."""

from __future__ import annotations

from enum import Enum

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_LAYER_ZSTD = "application/vnd.docker.image.rootfs.diff.tar.zstd"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER_NONDIST = "application/vnd.oci.image.layer.nondistributable.v1.tar"
OCI_LAYER_NONDIST_GZIP = "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
OCI_LAYER_NONDIST_ZSTD = "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"

MANIFEST_TYPES = (DOCKER_MANIFEST, OCI_MANIFEST)
INDEX_TYPES = (DOCKER_MANIFEST_LIST, OCI_INDEX)
SCHEMA1_TYPES = (DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED)

#: The ``Accept`` list sent when resolving a reference, best first.
MANIFEST_ACCEPT = (
    OCI_INDEX,
    DOCKER_MANIFEST_LIST,
    OCI_MANIFEST,
    DOCKER_MANIFEST,
)


class Compression(Enum):
    NONE = "none"
    GZIP = "gzip"
    ZSTD = "zstd"


_LAYER_COMPRESSION = {
    OCI_LAYER: Compression.NONE,
    OCI_LAYER_GZIP: Compression.GZIP,
    OCI_LAYER_ZSTD: Compression.ZSTD,
    DOCKER_LAYER_GZIP: Compression.GZIP,
    DOCKER_LAYER_ZSTD: Compression.ZSTD,
    # Docker's own uncompressed layer type, seen from some older builders.
    "application/vnd.docker.image.rootfs.diff.tar": Compression.NONE,
}

_FOREIGN = (
    DOCKER_FOREIGN_LAYER,
    OCI_LAYER_NONDIST,
    OCI_LAYER_NONDIST_GZIP,
    OCI_LAYER_NONDIST_ZSTD,
)


def layer_compression(media_type: str) -> Compression | None:
    """The compression of a layer media type, or None if it is not a layer we apply."""
    return _LAYER_COMPRESSION.get(media_type)


def is_foreign_layer(media_type: str) -> bool:
    return media_type in _FOREIGN
