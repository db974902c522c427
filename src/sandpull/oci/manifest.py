"""Image manifests and indexes, Docker and OCI, parsed from untrusted bytes.

The kind of a document is decided by, in order: its ``mediaType`` field, the media
type of the descriptor that pointed at it, the HTTP ``Content-Type``, and finally
its shape (``manifests`` is an index; ``config`` + ``layers`` is a manifest). A
document with both shapes is refused. Schema 1 gets a clear "unsupported" error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from sandpull.errors import InvalidArgument, NotFound, UnsupportedError
from sandpull.oci import mediatype as mt
from sandpull.oci.descriptor import Descriptor
from sandpull.oci.platform import Platform

#: Manifests and indexes larger than this are refused before parsing.
MAX_MANIFEST_BYTES = 4 * 1024 * 1024

ATTESTATION_ANNOTATION = "vnd.docker.reference.type"


@dataclass(frozen=True)
class Manifest:
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, compare=False)


@dataclass(frozen=True)
class Index:
    media_type: str
    manifests: tuple[Descriptor, ...]
    annotations: dict[str, str] = field(default_factory=dict, compare=False)

    def select(self, platform: Platform) -> Descriptor:
        """The entry that best runs on ``platform``; never an attestation."""
        best: tuple[int, int, Descriptor] | None = None
        for position, entry in enumerate(self.manifests):
            if entry.platform is None or _is_attestation(entry):
                continue
            rank = platform.rank(entry.platform)
            if rank is not None and (best is None or (rank, position) < best[:2]):
                best = (rank, position, entry)
        if best is None:
            offered = ", ".join(
                sorted(
                    {str(m.platform.normalized()) for m in self.manifests if m.platform}
                )
            )
            raise NotFound(
                f"select platform {platform}: index offers {offered or 'none'}"
            )
        return best[2]

    def nested_indexes(self) -> list[Descriptor]:
        """Entries without a platform that are themselves indexes."""
        return [
            m
            for m in self.manifests
            if m.platform is None and m.media_type in mt.INDEX_TYPES
        ]


def _is_attestation(entry: Descriptor) -> bool:
    return entry.annotations.get(ATTESTATION_ANNOTATION) == "attestation-manifest"


def parse_document(
    data: bytes, content_type: str = "", descriptor_type: str = ""
) -> Manifest | Index:
    """Parse a manifest or index; see the module docstring for how its kind is found."""
    if len(data) > MAX_MANIFEST_BYTES:
        raise InvalidArgument(
            f"parse manifest: {len(data)} bytes, limit {MAX_MANIFEST_BYTES}"
        )
    try:
        doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidArgument(f"parse manifest: not JSON ({exc})") from exc
    if not isinstance(doc, dict):
        raise InvalidArgument("parse manifest: want a JSON object")

    kind = _document_kind(doc, content_type.split(";")[0].strip(), descriptor_type)
    if kind in mt.INDEX_TYPES:
        return _parse_index(doc, kind)
    return _parse_manifest(doc, kind)


def _document_kind(doc: dict[str, Any], content_type: str, descriptor_type: str) -> str:
    if doc.get("schemaVersion") == 1 or any(
        t in mt.SCHEMA1_TYPES
        for t in (doc.get("mediaType"), content_type, descriptor_type)
    ):
        raise UnsupportedError(
            "parse manifest: Docker schema 1 manifests are not supported; "
            "push the image again with a current client"
        )
    has_index_shape = "manifests" in doc
    has_manifest_shape = "config" in doc or "layers" in doc
    if has_index_shape and has_manifest_shape:
        raise InvalidArgument("parse manifest: document has both manifests and layers")

    known = mt.INDEX_TYPES + mt.MANIFEST_TYPES
    for candidate in (doc.get("mediaType"), descriptor_type, content_type):
        if candidate in known:
            declared = str(candidate)
            if (declared in mt.INDEX_TYPES and has_manifest_shape) or (
                declared in mt.MANIFEST_TYPES and has_index_shape
            ):
                raise InvalidArgument(
                    f"parse manifest: media type {declared} does not match its content"
                )
            return declared
    if has_index_shape:
        return mt.OCI_INDEX
    if has_manifest_shape:
        return mt.OCI_MANIFEST
    raise InvalidArgument("parse manifest: neither a manifest nor an index")


def _parse_index(doc: dict[str, Any], kind: str) -> Index:
    entries = doc.get("manifests")
    if not isinstance(entries, list):
        raise InvalidArgument("parse index: manifests must be a list")
    manifests = tuple(
        Descriptor.from_json(e, f"index entry {i}") for i, e in enumerate(entries)
    )
    return Index(kind, manifests, _annotations(doc))


def _parse_manifest(doc: dict[str, Any], kind: str) -> Manifest:
    layers = doc.get("layers")
    if not isinstance(layers, list):
        raise InvalidArgument("parse manifest: layers must be a list")
    config = Descriptor.from_json(doc.get("config"), "manifest config")
    return Manifest(
        kind,
        config,
        tuple(
            Descriptor.from_json(layer, f"layer {i}") for i, layer in enumerate(layers)
        ),
        _annotations(doc),
    )


def _annotations(doc: dict[str, Any]) -> dict[str, str]:
    value = doc.get("annotations") or {}
    if not isinstance(value, dict):
        raise InvalidArgument("parse manifest: annotations must be an object")
    return {str(k): str(v) for k, v in value.items()}
