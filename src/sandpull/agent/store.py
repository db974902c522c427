"""The agent's image store: :class:`sandpull.images.ImageService` seen as an ImageStore.

Pulls use only the credentials the caller gave (never a Docker config file:
in a sandbox, credentials belong to the tenant that sent them), and every byte
received is also reported to the agent's :class:`PullAccounting`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandpull.agent.accounting import PullAccounting
from sandpull.agent.images import ImageRecord
from sandpull.errors import InvalidArgument
from sandpull.images import ImageRecord as StoreRecord
from sandpull.images import ImageService
from sandpull.oci import Digest, ImageConfig, Platform, Reference
from sandpull.registry.credentials import Credential, CredentialStore


@dataclass(frozen=True)
class Record:
    reference: Reference
    image_id: Digest
    manifest_digest: Digest
    repo_digest: str
    platform: Platform
    config: ImageConfig
    size: int
    top: StoreRecord


@dataclass(frozen=True)
class Usage:
    used_bytes: int
    inodes_used: int


@dataclass(frozen=True)
class Pulled(Record):
    bytes_fetched: int = 0


class ServiceImageStore:
    def __init__(
        self,
        root: Path,
        accounting: PullAccounting,
        *,
        registry_config: Any = None,
        certs_dir: Path | None = None,
    ) -> None:
        self.root = root
        self._accounting = accounting
        self._registry_config = registry_config
        self._certs_dir = certs_dir
        self.service = ImageService(root, registry_factory=self._registry)

    async def pull(
        self,
        ref: Reference,
        platform: Platform | None = None,
        credentials: Credential | None = None,
    ) -> Pulled:
        explicit = {ref.registry: credentials} if credentials else {}
        store = CredentialStore(explicit, use_docker_config=False)
        pulled = await self.service.pull(ref, platform, store)
        record = self._record(self.service.get(ref))
        return Pulled(**vars(record), bytes_fetched=pulled.bytes_fetched)

    async def list_images(self) -> Sequence[Record]:
        return [self._record(r) for r in self.service.list_images()]

    async def get(self, ref: Reference) -> Record:
        return self._record(self.service.get(ref))

    async def remove(self, ref: Reference) -> None:
        self.service.remove(ref)

    async def fs_usage(self) -> Usage:
        usage = await asyncio.to_thread(self.service.fs_usage)
        # TODO: the image service counts bytes, not inodes; ImageFsInfo reports 0
        # inodes until it does, which understates use on inode-bound disks.
        return Usage(used_bytes=usage.used_bytes, inodes_used=0)

    async def snapshot_dirs(self, image: ImageRecord) -> Sequence[Path]:
        if not isinstance(image, Record):
            raise InvalidArgument(f"list snapshots of {image.reference}: not from here")
        # The image service lists the top layer first; overlay code wants base first.
        return list(reversed(self.service.snapshot_dirs(image.top)))

    def close(self) -> None:
        self.service.close()

    def _record(self, record: StoreRecord) -> Record:
        return Record(
            reference=Reference.parse(record.name),
            image_id=record.image_id,
            manifest_digest=record.manifest_digest,
            repo_digest=record.repo_digest,
            platform=record.platform,
            config=self.service.config(record),
            size=record.size,
            top=record,
        )

    def _registry(self, credentials: Any, on_bytes: Any) -> Any:
        from sandpull.registry import RegistryClient

        def tee(registry: str, image: str, n: int) -> None:
            on_bytes(registry, image, n)
            self._accounting.on_bytes(registry, image, n)

        return RegistryClient(
            config=self._registry_config,
            credentials=credentials,
            certs_dir=self._certs_dir,
            on_bytes=tee,
        )
