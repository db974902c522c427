"""What the pull pipeline needs from a registry client and a layer applier.

The real implementations are :class:`sandpull.registry.RegistryClient` and
:func:`sandpull.unpack.apply_layer`; the pipeline takes factories so that unit
tests can use in-process fakes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from sandpull.oci import Compression, Descriptor, Digest, Reference

#: ``on_bytes(registry_host, image, n)``, called for every byte received.
OnBytes = Callable[[str, str, int], None]


class Fetched(Protocol):
    """A manifest fetched and verified against its digest."""

    @property
    def descriptor(self) -> Descriptor: ...

    @property
    def data(self) -> bytes: ...


class BlobStream(AbstractAsyncContextManager[Any], Protocol):
    def __aiter__(self) -> AsyncIterator[bytes]: ...


class Registry(Protocol):
    """Contract of the registry client as the pipeline uses it.

    ``resolve``, ``get_manifest`` and ``get_blob_bytes`` return verified bytes;
    ``open_blob`` streams a blob from ``offset`` and is NOT verified: the caller
    hashes. Errors are sandpull errors.
    """

    async def resolve(self, ref: Reference) -> Fetched: ...

    async def get_manifest(self, ref: Reference, desc: Descriptor) -> bytes: ...

    async def get_blob_bytes(
        self, ref: Reference, desc: Descriptor, max_size: int
    ) -> bytes: ...

    def open_blob(
        self, ref: Reference, desc: Descriptor, offset: int = 0
    ) -> BlobStream: ...

    async def close(self) -> None: ...


#: ``factory(credentials, on_bytes)`` -> a registry client for one pull.
RegistryFactory = Callable[[Any, OnBytes], Registry]


class AppliedLayer(Protocol):
    @property
    def diff_id(self) -> Digest: ...


class ApplyLayer(Protocol):
    """Applies one compressed layer stream into ``target`` (synchronous)."""

    def __call__(
        self,
        source: BinaryIO,
        *,
        compression: Compression,
        target: Path,
        lowers: Sequence[Path],
        layer: Digest,
        diff_id: Digest | None,
    ) -> AppliedLayer: ...
