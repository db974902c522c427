"""In-process stand-ins for the registry client and the layer applier (unit tests).

The real components are exercised by the registry tests; these let the pipeline's
own logic (single-flight, ordering, resume, clean-up) be tested fast and exactly.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from sandpull.errors import NotFound
from sandpull.images.remote import OnBytes
from sandpull.oci import Compression, Descriptor, Digest, Reference
from tests.support.images import Image, ImageIndex
from tests.support.layers import decompress


@dataclass(frozen=True)
class FakeFetched:
    descriptor: Descriptor
    data: bytes


@dataclass
class FakeRegistryData:
    """What a fake registry serves, and how many bytes of each blob it sent."""

    manifests: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    blobs: dict[Digest, bytes] = field(default_factory=dict)
    sent: Counter[Digest] = field(default_factory=Counter)
    chunk: int = 4096
    #: Set to make blob streams wait before each chunk (for interleaving tests).
    gate: asyncio.Event | None = None

    def add(self, tag: str, image: Image | ImageIndex) -> None:
        images = (
            [e.image for e in image.entries]
            if isinstance(image, ImageIndex)
            else [image]
        )
        for child in images:
            self.blobs[Digest.of(child.config)] = child.config
            for layer in child.layers:
                self.blobs[layer.digest] = layer.blob
            self.manifests[str(child.digest)] = (child.manifest, child.media_type)
        top = (
            (image.data, image.media_type)
            if isinstance(image, ImageIndex)
            else (
                image.manifest,
                image.media_type,
            )
        )
        self.manifests[tag] = top
        self.manifests[str(Digest.of(top[0]))] = top


class FakeRegistry:
    def __init__(self, data: FakeRegistryData, on_bytes: OnBytes) -> None:
        self._data = data
        self._on_bytes = on_bytes

    async def resolve(self, ref: Reference) -> FakeFetched:
        body, media_type = self._manifest(ref.object)
        self._on_bytes(ref.registry, ref.repository, len(body))
        return FakeFetched(Descriptor(media_type, Digest.of(body), len(body)), body)

    async def get_manifest(self, ref: Reference, desc: Descriptor) -> bytes:
        body, _ = self._manifest(str(desc.digest))
        self._on_bytes(ref.registry, ref.repository, len(body))
        return body

    async def get_blob_bytes(
        self, ref: Reference, desc: Descriptor, max_size: int
    ) -> bytes:
        body = self._data.blobs[desc.digest]
        self._on_bytes(ref.registry, ref.repository, len(body))
        return body

    def open_blob(
        self, ref: Reference, desc: Descriptor, offset: int = 0
    ) -> FakeStream:
        return FakeStream(self._data, ref, desc.digest, offset, self._on_bytes)

    async def close(self) -> None:
        return None

    def _manifest(self, key: str) -> tuple[bytes, str]:
        try:
            return self._data.manifests[key]
        except KeyError:
            raise NotFound(f"get manifest {key}: unknown") from None


class FakeStream:
    def __init__(
        self,
        data: FakeRegistryData,
        ref: Reference,
        digest: Digest,
        offset: int,
        on_bytes: OnBytes,
    ) -> None:
        self._data, self._ref, self._digest = data, ref, digest
        self._offset, self._on_bytes = offset, on_bytes

    async def __aenter__(self) -> FakeStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def __aiter__(self) -> AsyncIterator[bytes]:  # type: ignore[misc]
        body = self._data.blobs[self._digest]
        for start in range(self._offset, len(body), self._data.chunk):
            if self._data.gate is not None:
                await self._data.gate.wait()
            await asyncio.sleep(0)
            piece = body[start : start + self._data.chunk]
            self._data.sent[self._digest] += len(piece)
            self._on_bytes(self._ref.registry, self._ref.repository, len(piece))
            yield piece


@dataclass(frozen=True)
class FakeApplied:
    diff_id: Digest
    size: int
    entries: int


@dataclass
class FakeApplier:
    """Extracts regular files and directories with tarfile; records the order."""

    applied: list[Digest] = field(default_factory=list)
    fail_at: Digest | None = None
    error: Exception | None = None

    def __call__(
        self,
        source: BinaryIO,
        *,
        compression: Compression,
        target: Path,
        lowers: Sequence[Path],
        layer: Digest,
        diff_id: Digest | None,
        **_: Any,
    ) -> FakeApplied:
        blob = source.read()
        if self.fail_at == layer and self.error is not None:
            raise self.error
        tar = decompress(blob, compression)
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            members = [m for m in archive.getmembers() if m.isfile() or m.isdir()]
            archive.extractall(target, members=members, filter="fully_trusted")
        self.applied.append(layer)
        return FakeApplied(
            Digest("sha256", hashlib.sha256(tar).hexdigest()), len(tar), len(members)
        )
