"""Values the image store hands out: pulled images, records, progress, usage."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sandpull.oci import Descriptor, Digest, Platform, Reference


@dataclass(frozen=True)
class PulledImage:
    """The result of one pull.

    ``manifest_digest`` is the platform's manifest; ``repo_digest`` names what
    the reference resolved to (an index when there was one), so pulling it again
    gives the same image on any platform.
    """

    reference: Reference
    image_id: Digest
    manifest_digest: Digest
    repo_digest: str
    platform: Platform
    bytes_fetched: int
    seconds: float
    layers: tuple[Descriptor, ...]


@dataclass(frozen=True)
class ImageRecord:
    name: str
    image_id: Digest
    manifest_digest: Digest
    media_type: str
    repo_digest: str
    platform: Platform
    top_chain_id: Digest | None
    size: int
    created: datetime


@dataclass(frozen=True)
class LayerProgress:
    """Where one layer of a pull is; ``phase`` is download, apply, exists or done."""

    index: int
    digest: Digest
    done: int
    total: int
    phase: str


ProgressCallback = Callable[[LayerProgress], None]


@dataclass(frozen=True)
class FsUsage:
    """Bytes used by the store: unpacked snapshots and committed blobs."""

    snapshot_bytes: int
    snapshots: int
    blob_bytes: int
    blobs: int
    ingest_bytes: int

    @property
    def used_bytes(self) -> int:
        return self.snapshot_bytes + self.blob_bytes + self.ingest_bytes


@dataclass(frozen=True)
class GcReport:
    blobs_removed: int
    snapshots_removed: int
    bytes_freed: int


@dataclass(frozen=True)
class CheckReport:
    """What ``check`` verified and every problem found (empty when clean)."""

    blobs: int
    snapshots: int
    problems: tuple[str, ...]

    @property
    def clean(self) -> bool:
        return not self.problems
