"""The image store and its pull pipeline: :class:`ImageService`.

The store lives in one root (see design.md, "Storage"). Processes sharing a
root take a shared ``flock`` on ``<root>/lock``; whichever finds no other
process on start-up cleans what a crash left (partial snapshots, orphan
directories, expired leases).
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
import sqlite3
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sandpull.content import LocalStore
from sandpull.errors import (
    InvalidArgument,
    NotFound,
    ResourceExhausted,
    SandpullError,
    from_os_error,
)
from sandpull.images import db as meta
from sandpull.images.claims import Claims
from sandpull.images.commits import SnapshotCommitter
from sandpull.images.downloads import DEFAULT_CONCURRENCY, Downloads
from sandpull.images.layers import SnapshotFlights
from sandpull.images.leases import Leases
from sandpull.images.model import (
    CheckReport,
    FsUsage,
    GcReport,
    ImageRecord,
    ProgressCallback,
    PulledImage,
)
from sandpull.images.mount import mount_overlay, mounted_lowers
from sandpull.images.pull import (
    ByteCounter,
    LayerPipeline,
    fetch_config,
    layer_jobs,
    log_pull,
    pull_layers,
)
from sandpull.images.remote import ApplyLayer, OnBytes, Registry, RegistryFactory
from sandpull.images.resolve import Resolved, resolve
from sandpull.images.snapshots import Snapshot, Snapshots
from sandpull.oci import Digest, ImageConfig, Platform, Reference

log = logging.getLogger(__name__)

#: Seconds a pull may go without receiving data before it fails, like
#: containerd's image_pull_progress_timeout.
DEFAULT_PROGRESS_TIMEOUT = 60.0


class ImageService:
    """Images by name, their blobs and snapshots, and pulling them.

    ``registry_factory(credentials, on_bytes)`` makes the registry client for a
    pull; by default a :class:`sandpull.registry.RegistryClient` with
    ``registry_config`` and ``certs_dir``. ``keep_layers`` commits layer blobs
    to the content store instead of dropping them once applied.
    """

    def __init__(
        self,
        root: Path,
        *,
        registry_config: Any = None,
        certs_dir: Path | None = None,
        registry_factory: RegistryFactory | None = None,
        apply_layer: ApplyLayer | None = None,
        keep_layers: bool = False,
        concurrency: int = DEFAULT_CONCURRENCY,
        progress_timeout: float = DEFAULT_PROGRESS_TIMEOUT,
    ) -> None:
        self.root = root
        self._progress_timeout = progress_timeout
        self._registry_config = registry_config
        self._certs_dir = certs_dir
        self._registry_factory = registry_factory or self._default_registry
        self._lock_fd = _open_lock(root)
        self._db = meta.connect(root / "meta.db")
        self.store = LocalStore(root)
        self.snapshots = Snapshots(root, self._db)
        self.leases = Leases(self._db)
        self._pipeline = LayerPipeline(
            self.store,
            self.snapshots,
            self.leases,
            Downloads(self.store, concurrency),
            SnapshotFlights(),
            SnapshotCommitter(self.snapshots),
            apply_layer or _default_apply(),
            keep_layers,
            Claims(root / "claims"),
        )
        self._recover()

    def close(self) -> None:
        self._db.close()
        os.close(self._lock_fd)

    # --- pulling -------------------------------------------------------------

    async def pull(
        self,
        reference: str | Reference,
        platform: Platform | None = None,
        credentials: Any = None,
        progress: ProgressCallback | None = None,
    ) -> PulledImage:
        """Pull ``reference`` for ``platform`` (default: this host) into the store."""
        ref = _reference(reference)
        platform = platform or Platform.host()
        started = time.monotonic()
        counter = ByteCounter()
        registry = self._registry_factory(credentials, counter.add)
        try:
            resolved, config = await self._pull(registry, ref, platform, progress)
        except OSError as exc:
            raise from_os_error(f"pull {ref}", exc) from exc
        finally:
            await _close(registry)
            self._record_bytes(counter)
        seconds = time.monotonic() - started
        log_pull(ref, resolved.top.digest, seconds, counter.total)
        return PulledImage(
            reference=ref,
            image_id=resolved.manifest.config.digest,
            manifest_digest=resolved.descriptor.digest,
            repo_digest=f"{ref.name}@{resolved.top.digest}",
            platform=config.platform,
            bytes_fetched=counter.total,
            seconds=seconds,
            layers=resolved.manifest.layers,
        )

    async def _pull(
        self,
        registry: Registry,
        ref: Reference,
        platform: Platform,
        progress: ProgressCallback | None,
    ) -> tuple[Resolved, ImageConfig]:
        resolved = await resolve(registry, ref, platform)
        config_data, config = await fetch_config(registry, ref, resolved, self.store)
        jobs = layer_jobs(resolved.manifest.layers, config)
        lease = self.leases.create()
        try:
            blobs = [d for d, _ in resolved.documents] + [resolved.manifest.config]
            self.leases.add_all(lease, (("blob", str(d.digest)) for d in blobs))
            top = await pull_layers(
                self._pipeline, registry, ref, jobs, lease, progress
            )
            await asyncio.to_thread(self._commit_image, ref, resolved, config_data, top)
        except ResourceExhausted:
            self._drop_ingests(resolved)
            raise
        finally:
            self.leases.release(lease)
        return resolved, config

    def _commit_image(
        self, ref: Reference, resolved: Resolved, config: bytes, top: Snapshot | None
    ) -> None:
        """Commit the documents and the config as blobs, then the image record."""
        blobs = [(d, data) for d, data in resolved.documents]
        blobs.append((resolved.manifest.config, config))
        for descriptor, data in blobs:
            self.store.write_blob(descriptor, data)
        size = sum(s.size for s in self.snapshots.stack(top.chain_id)) if top else 0
        with meta.transaction(self._db) as db:
            for descriptor, data in blobs:
                db.execute(
                    "INSERT OR IGNORE INTO blobs VALUES (?, ?, ?, ?)",
                    (
                        str(descriptor.digest),
                        descriptor.media_type,
                        len(data),
                        meta.now(),
                    ),
                )
            db.execute(
                "INSERT OR REPLACE INTO images VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    str(ref),
                    str(resolved.descriptor.digest),
                    resolved.descriptor.media_type,
                    str(resolved.manifest.config.digest),
                    str(_platform_of(config)),
                    f"{ref.name}@{resolved.top.digest}",
                    str(top.chain_id) if top else None,
                    size,
                    meta.now(),
                ),
            )
            db.executemany(
                "INSERT OR IGNORE INTO image_blobs VALUES (?, ?)",
                [(str(ref), str(d.digest)) for d, _ in blobs]
                + self._kept_layers(ref, resolved),
            )

    def _kept_layers(self, ref: Reference, resolved: Resolved) -> list[tuple[str, str]]:
        if not self._pipeline.keep_layers:
            return []
        return [(str(ref), str(layer.digest)) for layer in resolved.manifest.layers]

    def _drop_ingests(self, resolved: Resolved) -> None:
        for layer in resolved.manifest.layers:
            self.store.remove_ingest(layer.digest)

    def _record_bytes(self, counter: ByteCounter) -> None:
        if not counter.by_source:
            return
        with meta.transaction(self._db) as db:
            db.executemany(
                "INSERT INTO pulls VALUES (?, ?, ?) ON CONFLICT (registry, image) "
                "DO UPDATE SET bytes = bytes + excluded.bytes",
                [(r, i, n) for (r, i), n in counter.by_source.items()],
            )

    def _default_registry(self, credentials: Any, on_bytes: OnBytes) -> Registry:
        from sandpull.registry import RegistryClient

        client: Registry = RegistryClient(
            config=self._registry_config,
            credentials=credentials,
            certs_dir=self._certs_dir,
            on_bytes=on_bytes,
            progress_timeout=self._progress_timeout,
        )
        return client

    # --- reading -------------------------------------------------------------

    def list_images(self) -> list[ImageRecord]:
        rows = self._db.execute("SELECT * FROM images ORDER BY name")
        return [_record(row) for row in rows]

    def get(self, reference: str | Reference) -> ImageRecord:
        """An image by name, by ``name@digest`` or by image id (config digest)."""
        text = str(reference)
        for query, key in self._lookups(text):
            row = self._db.execute(
                f"SELECT * FROM images WHERE {query}", key
            ).fetchone()
            if row is not None:
                return _record(row)
        raise NotFound(f"find image {text}: not in the store")

    def _lookups(self, text: str) -> list[tuple[str, tuple[str, ...]]]:
        if text.startswith(("sha256:", "sha512:")):
            return [("config_digest = ?", (str(Digest.parse(text)),))]
        ref = _reference(text)
        out: list[tuple[str, tuple[str, ...]]] = [("name = ?", (str(ref),))]
        if ref.digest is not None:
            digest = f"{ref.name}@{ref.digest}"
            out.append(
                (
                    "repo_digest = ? OR name || '@' || manifest_digest = ?",
                    (digest, digest),
                )
            )
        return out

    def config(self, record: ImageRecord) -> ImageConfig:
        from sandpull.oci.config import MAX_CONFIG_BYTES

        return ImageConfig.parse(self.store.read(record.image_id, MAX_CONFIG_BYTES))

    def snapshot_dirs(self, image: ImageRecord | str | Reference) -> list[Path]:
        """The image's snapshot ``fs`` directories, nearest (top) first."""
        record = image if isinstance(image, ImageRecord) else self.get(image)
        if record.top_chain_id is None:
            return []
        return [
            self.snapshots.fs(s.id) for s in self.snapshots.stack(record.top_chain_id)
        ]

    def mount(self, reference: str | Reference, target: Path) -> None:
        lowers = self.snapshot_dirs(reference)
        if len(lowers) == 1:
            # Overlayfs wants two lowers when there is no upper directory; an
            # empty one at the bottom changes nothing.
            empty = self.root / "empty"
            empty.mkdir(mode=0o755, exist_ok=True)
            lowers.append(empty)
        mount_overlay(lowers, target)

    def pull_stats(self) -> dict[tuple[str, str], int]:
        rows = self._db.execute("SELECT * FROM pulls ORDER BY registry, image")
        return {(row["registry"], row["image"]): int(row["bytes"]) for row in rows}

    def fs_usage(self) -> FsUsage:
        snapshots = self.snapshots.committed()
        blobs = list(self.store.walk())
        ingest = sum(p.stat().st_size for p in self.store.ingests.rglob("data"))
        return FsUsage(
            snapshot_bytes=sum(s.size for s in snapshots),
            snapshots=len(snapshots),
            blob_bytes=sum(self.store.size(d) for d in blobs),
            blobs=len(blobs),
            ingest_bytes=ingest,
        )

    # --- removing and checking -------------------------------------------------

    def remove(self, reference: str | Reference) -> ImageRecord:
        """Forget an image; its blobs and snapshots go at the next :meth:`gc`."""
        record = self.get(reference)
        with meta.transaction(self._db) as db:
            db.execute("DELETE FROM images WHERE name = ?", (record.name,))
        return record

    def gc(self) -> GcReport:
        """Delete blobs and snapshots that no image and no live lease uses."""
        self.leases.expire()
        before = self.fs_usage()
        live_snapshots = self._live_snapshots()
        mounted = mounted_lowers()
        dead = [
            s
            for s in self.snapshots.committed()
            if str(s.chain_id) not in live_snapshots
            and self.snapshots.fs(s.id) not in mounted
        ]
        for snapshot in reversed(dead):
            self.snapshots.delete(snapshot.id)
        live_blobs = self._live_blobs()
        dead_blobs = [d for d in self.store.walk() if str(d) not in live_blobs]
        for digest in dead_blobs:
            self.store.delete(digest)
        with meta.transaction(self._db) as db:
            db.executemany(
                "DELETE FROM blobs WHERE digest = ?", [(str(d),) for d in dead_blobs]
            )
        self._clean_if_alone(drop_ingests=True)
        freed = before.used_bytes - self.fs_usage().used_bytes
        log.info(
            "gc removed %d blobs, %d snapshots, %d bytes",
            len(dead_blobs),
            len(dead),
            freed,
        )
        return GcReport(len(dead_blobs), len(dead), freed)

    def _live_snapshots(self) -> set[str]:
        tops = {
            row[0]
            for row in self._db.execute("SELECT top_chain_id FROM images")
            if row[0]
        }
        live: set[str] = set()
        for chain in tops | self.leases.held("snapshot"):
            while chain and chain not in live:
                snapshot = self.snapshots.get(Digest.parse(chain))
                if snapshot is None:
                    break
                live.add(chain)
                chain = str(snapshot.parent) if snapshot.parent else ""
        return live

    def _live_blobs(self) -> set[str]:
        used = {row[0] for row in self._db.execute("SELECT digest FROM image_blobs")}
        return used | self.leases.held("blob")

    def check(self) -> CheckReport:
        """Re-verify every blob, every snapshot and every image's references."""
        problems: list[str] = []
        blobs = list(self.store.walk())
        snapshots = self.snapshots.committed()
        for digest in blobs:
            _collect(problems, self.store.verify, digest)
        for snapshot in snapshots:
            _collect(problems, self.snapshots.verify, snapshot)
        for record in self.list_images():
            _collect(problems, self._check_image, record)
        partials = sorted(p.name for p in self.snapshots.dir.glob("*.partial"))
        problems += [
            f"check snapshots: partial directory {name} left" for name in partials
        ]
        return CheckReport(len(blobs), len(snapshots), tuple(problems))

    def _check_image(self, record: ImageRecord) -> None:
        for digest in (record.manifest_digest, record.image_id):
            if not self.store.has(digest):
                raise NotFound(
                    f"check image {record.name}: blob {digest.short} missing"
                )
        self.snapshot_dirs(record)

    # --- start-up ---------------------------------------------------------------

    def _recover(self) -> None:
        removed = self._clean_if_alone(drop_ingests=False)
        if removed:
            log.warning(
                "removed %d snapshot directories left by an interrupted run", removed
            )

    def _clean_if_alone(self, drop_ingests: bool) -> int:
        """Clean crash debris when no other process uses the store."""
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return 0
        try:
            self.leases.expire()
            removed = len(self.snapshots.clean())
            if drop_ingests:
                for key in self.store.ingest_keys():
                    self.store.remove_ingest(Digest.parse(key.replace("-", ":", 1)))
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH)
        return removed


def _open_lock(root: Path) -> int:
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise from_os_error(f"open image store {root}", exc) from exc
    fcntl.flock(fd, fcntl.LOCK_SH)
    return fd


def _default_apply() -> ApplyLayer:
    from sandpull.unpack import apply_layer

    return apply_layer


async def _close(registry: Registry) -> None:
    close = getattr(registry, "close", None)
    if close is not None:
        await close()


def _reference(reference: str | Reference) -> Reference:
    return reference if isinstance(reference, Reference) else Reference.parse(reference)


def _platform_of(config: bytes) -> Platform:
    try:
        return ImageConfig.parse(config).platform
    except InvalidArgument:
        return Platform("unknown", "unknown")


def _collect(problems: list[str], check: Any, subject: Any) -> None:
    try:
        check(subject)
    except SandpullError as exc:
        problems.append(str(exc))


def _record(row: sqlite3.Row) -> ImageRecord:
    top = row["top_chain_id"]
    return ImageRecord(
        name=row["name"],
        image_id=Digest.parse(row["config_digest"]),
        manifest_digest=Digest.parse(row["manifest_digest"]),
        media_type=row["media_type"],
        repo_digest=row["repo_digest"],
        platform=Platform.parse(row["platform"]),
        top_chain_id=Digest.parse(top) if top else None,
        size=int(row["size"]),
        created=datetime.fromtimestamp(row["created"], UTC),
    )
