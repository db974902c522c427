"""Resolve a reference to the one manifest to pull, following indexes.

An index is followed to the entry for the platform (attestations and
``unknown/unknown`` entries are never chosen); when no entry matches, nested
indexes without a platform are searched, at most :data:`MAX_INDEX_DEPTH` deep.
"""

from __future__ import annotations

from dataclasses import dataclass

from sandpull.errors import InvalidArgument, NotFound, UnsupportedError
from sandpull.images.remote import Registry
from sandpull.oci import Descriptor, Index, Manifest, Platform, Reference, mediatype
from sandpull.oci.manifest import parse_document

MAX_INDEX_DEPTH = 2


@dataclass(frozen=True)
class Resolved:
    """The chosen manifest and every document read on the way (top first)."""

    descriptor: Descriptor
    manifest: Manifest
    documents: tuple[tuple[Descriptor, bytes], ...]

    @property
    def top(self) -> Descriptor:
        return self.documents[0][0]


async def resolve(registry: Registry, ref: Reference, platform: Platform) -> Resolved:
    fetched = await registry.resolve(ref)
    documents = [(fetched.descriptor, fetched.data)]
    document = parse_document(fetched.data, fetched.descriptor.media_type)
    if isinstance(document, Index):
        documents += await _follow(registry, ref, document, platform, depth=1)
        document = parse_document(documents[-1][1], documents[-1][0].media_type)
    if not isinstance(document, Manifest):
        raise InvalidArgument(f"resolve {ref}: no manifest under the index")
    check_layers(ref, document)
    return Resolved(documents[-1][0], document, tuple(documents))


async def _follow(
    registry: Registry, ref: Reference, index: Index, platform: Platform, depth: int
) -> list[tuple[Descriptor, bytes]]:
    """The documents from ``index`` down to the platform's manifest."""
    try:
        entry = index.select(platform)
    except NotFound:
        found = await _search_nested(registry, ref, index, platform, depth)
        if found is None:
            raise
        return found
    data = await registry.get_manifest(ref, entry)
    if isinstance(parse_document(data, entry.media_type), Index):
        raise InvalidArgument(
            f"resolve {ref}: index entry {entry.digest.short} for {platform} "
            "is an index, want a manifest"
        )
    return [(entry, data)]


async def _search_nested(
    registry: Registry, ref: Reference, index: Index, platform: Platform, depth: int
) -> list[tuple[Descriptor, bytes]] | None:
    nested = index.nested_indexes()
    if nested and depth >= MAX_INDEX_DEPTH:
        raise InvalidArgument(
            f"resolve {ref}: indexes nested deeper than {MAX_INDEX_DEPTH}"
        )
    for entry in nested:
        data = await registry.get_manifest(ref, entry)
        child = parse_document(data, entry.media_type)
        if not isinstance(child, Index):
            continue
        try:
            below = await _follow(registry, ref, child, platform, depth + 1)
        except NotFound:
            continue
        return [(entry, data), *below]
    return None


def check_layers(ref: Reference, manifest: Manifest) -> None:
    """Refuse foreign and non-layer media types before anything is downloaded."""
    for position, layer in enumerate(manifest.layers):
        if mediatype.is_foreign_layer(layer.media_type):
            raise UnsupportedError(
                f"resolve {ref}: layer {position} ({layer.digest.short}) is a "
                f"foreign layer ({layer.media_type}); foreign layers are not supported"
            )
        if mediatype.layer_compression(layer.media_type) is None:
            raise UnsupportedError(
                f"resolve {ref}: layer {position} ({layer.digest.short}) has media "
                f"type {layer.media_type!r}, want a tar layer"
            )
