"""What the agent needs of the image store (``sandpull.images.ImageService``).

Written as a protocol so the agent depends on behaviour, not on one class.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from sandpull.oci import ImageConfig, Platform, Reference
from sandpull.registry.credentials import Credential


class ImageRecord(Protocol):
    """An image in the store; ``str()`` of the digest-like fields is their text."""

    @property
    def reference(self) -> Reference: ...
    @property
    def image_id(self) -> object: ...
    @property
    def manifest_digest(self) -> object: ...
    @property
    def repo_digest(self) -> object: ...
    @property
    def platform(self) -> Platform: ...
    @property
    def config(self) -> ImageConfig: ...
    @property
    def size(self) -> int: ...


class PulledImage(ImageRecord, Protocol):
    @property
    def bytes_fetched(self) -> int: ...


class FsUsage(Protocol):
    @property
    def used_bytes(self) -> int: ...
    @property
    def inodes_used(self) -> int: ...


class ImageStore(Protocol):
    """The image store of one root.

    ``get`` raises NotFound for an image that is not there; ``remove`` of an
    absent image raises NotFound too (the agent makes RemoveImage idempotent).
    ``snapshot_dirs`` lists the image's unpacked layer directories, base first.
    """

    root: Path

    async def pull(
        self,
        ref: Reference,
        platform: Platform | None = None,
        credentials: Credential | None = None,
    ) -> PulledImage: ...

    async def list_images(self) -> Sequence[ImageRecord]: ...

    async def get(self, ref: Reference) -> ImageRecord: ...

    async def remove(self, ref: Reference) -> None: ...

    async def fs_usage(self) -> FsUsage: ...

    async def snapshot_dirs(self, image: ImageRecord) -> Sequence[Path]: ...
