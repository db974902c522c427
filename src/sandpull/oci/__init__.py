"""Values of the OCI and Docker image formats; no I/O."""

from sandpull.oci import mediatype
from sandpull.oci.config import ImageConfig
from sandpull.oci.descriptor import Descriptor
from sandpull.oci.digest import EMPTY_LAYER_DIFF_ID, Digest, chain_ids
from sandpull.oci.manifest import Index, Manifest, parse_document
from sandpull.oci.mediatype import Compression
from sandpull.oci.platform import Platform
from sandpull.oci.reference import Reference, is_docker_hub

__all__ = [
    "EMPTY_LAYER_DIFF_ID",
    "Compression",
    "Descriptor",
    "Digest",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "Reference",
    "chain_ids",
    "is_docker_hub",
    "mediatype",
    "parse_document",
]
