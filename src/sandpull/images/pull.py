"""One pull: resolve, fetch the config, download and apply layers, commit."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sandpull.content import LocalStore
from sandpull.errors import InvalidArgument, SandpullError
from sandpull.images.claims import Claims
from sandpull.images.commits import Applied, SnapshotCommitter
from sandpull.images.downloads import Download, Downloads
from sandpull.images.layers import LayerJob, SnapshotFlights, apply_job
from sandpull.images.leases import Leases
from sandpull.images.model import LayerProgress, ProgressCallback
from sandpull.images.remote import ApplyLayer, Registry
from sandpull.images.resolve import Resolved
from sandpull.images.snapshots import Snapshot, Snapshots
from sandpull.oci import Descriptor, Digest, ImageConfig, Reference
from sandpull.oci.config import MAX_CONFIG_BYTES

log = logging.getLogger(__name__)


@dataclass
class ByteCounter:
    """Bytes received during one pull, per registry host and image."""

    by_source: Counter[tuple[str, str]] = field(default_factory=Counter)

    def add(self, registry: str, image: str, n: int) -> None:
        self.by_source[(registry, image)] += n

    @property
    def total(self) -> int:
        return sum(self.by_source.values())


@dataclass
class LayerPipeline:
    """The shared machinery a pull's layers go through."""

    store: LocalStore
    snapshots: Snapshots
    leases: Leases
    downloads: Downloads
    flights: SnapshotFlights[Applied]
    committer: SnapshotCommitter
    apply_layer: ApplyLayer
    keep_layers: bool = False
    claims: Claims | None = None


async def fetch_config(
    registry: Registry, ref: Reference, resolved: Resolved, store: LocalStore
) -> tuple[bytes, ImageConfig]:
    """The image config: from the store when an earlier pull committed it."""
    manifest = resolved.manifest
    data = _local_config(store, manifest.config)
    if data is None:
        data = await registry.get_blob_bytes(ref, manifest.config, MAX_CONFIG_BYTES)
    config = ImageConfig.parse(data)
    if len(config.diff_ids) != len(manifest.layers):
        raise InvalidArgument(
            f"pull {ref}: manifest has {len(manifest.layers)} layers, config "
            f"has {len(config.diff_ids)} diff_ids"
        )
    return data, config


def _local_config(store: LocalStore, descriptor: Descriptor) -> bytes | None:
    """The config an earlier pull committed, unless it was damaged since."""
    try:
        data = store.read(descriptor.digest, MAX_CONFIG_BYTES)
    except SandpullError:
        return None
    return data if descriptor.digest.matches(data) else None


def layer_jobs(
    manifest_layers: tuple[Descriptor, ...], config: ImageConfig
) -> list[LayerJob]:
    chain = config.chain_ids
    return [
        LayerJob(i, layer, config.diff_ids[i], chain[i], chain[i - 1] if i else None)
        for i, layer in enumerate(manifest_layers)
    ]


async def pull_layers(
    pipeline: LayerPipeline,
    registry: Registry,
    ref: Reference,
    jobs: list[LayerJob],
    lease: str,
    progress: ProgressCallback | None,
) -> Snapshot | None:
    """Make sure every layer's snapshot exists; return the top one.

    Another process pulling the same layers into this store is waited for, and
    what it committed is used instead of being fetched again.
    """
    if pipeline.claims is None:
        return await _pull_layers(pipeline, registry, ref, jobs, lease, progress)
    missing = [j.chain_id for j in jobs if not _present(pipeline, j)]
    async with pipeline.claims.hold(missing):
        return await _pull_layers(pipeline, registry, ref, jobs, lease, progress)


async def _pull_layers(
    pipeline: LayerPipeline,
    registry: Registry,
    ref: Reference,
    jobs: list[LayerJob],
    lease: str,
    progress: ProgressCallback | None,
) -> Snapshot | None:
    pipeline.leases.add_all(lease, (("snapshot", str(job.chain_id)) for job in jobs))
    pending = _pending(pipeline, jobs, progress)
    _drop_stale_ingests(pipeline, jobs, pending)
    downloads = await _start_downloads(pipeline, registry, ref, pending, progress)
    last_use = {job.descriptor.digest: job.index for job in pending}

    async def settle(job: LayerJob) -> None:
        # The blob's last layer in this pull is applied: drop this pull's use.
        digest = job.descriptor.digest
        if last_use[digest] == job.index and digest in downloads:
            await pipeline.downloads.release(
                downloads.pop(digest), pipeline.keep_layers
            )

    try:
        applied = await _apply_pending(pipeline, pending, downloads, progress, settle)
    finally:
        await asyncio.gather(
            *(
                pipeline.downloads.release(d, pipeline.keep_layers)
                for d in downloads.values()
            )
        )
        # Commit what was applied even when the pull fails: a retry resumes.
        await asyncio.shield(pipeline.committer.flush())
    return await _committed_top(pipeline, jobs, applied)


async def _apply_pending(
    pipeline: LayerPipeline,
    pending: list[LayerJob],
    downloads: dict[Digest, Download],
    progress: ProgressCallback | None,
    settle: Callable[[LayerJob], Awaitable[None]],
) -> dict[Digest, Applied]:
    """Apply the pending layers in order; their commits are only queued."""
    applied: dict[Digest, Applied] = {}
    for job in pending:
        applied[job.chain_id] = await pipeline.flights.run(
            job.chain_id,
            functools.partial(
                _apply_one,
                pipeline,
                job,
                downloads[job.descriptor.digest],
                progress,
                functools.partial(settle, job),
            ),
        )
    return applied


async def _committed_top(
    pipeline: LayerPipeline, jobs: list[LayerJob], applied: dict[Digest, Applied]
) -> Snapshot | None:
    """Wait for every layer's commit (possibly another pull's); the top snapshot.

    A failed commit raises its own error here.
    """
    top: Snapshot | None = None
    for job in jobs:
        waiting = applied.get(job.chain_id) or pipeline.committer.pending(job.chain_id)
        if waiting is None:
            top = pipeline.snapshots.require(job.chain_id)
            continue
        if not waiting.committed.done():
            await pipeline.committer.flush()
        top = await asyncio.shield(waiting.committed)
    return top


def _present(pipeline: LayerPipeline, job: LayerJob) -> bool:
    """Committed, or applied and waiting for its commit in this process."""
    return (
        pipeline.snapshots.get(job.chain_id) is not None
        or pipeline.committer.pending(job.chain_id) is not None
    )


def _pending(
    pipeline: LayerPipeline, jobs: list[LayerJob], progress: ProgressCallback | None
) -> list[LayerJob]:
    """Jobs from the first layer not present yet (parents are kept)."""
    for job in jobs:
        if not _present(pipeline, job):
            return jobs[job.index :]
        if progress:
            size = job.descriptor.size
            progress(
                LayerProgress(job.index, job.descriptor.digest, size, size, "exists")
            )
    return []


def _drop_stale_ingests(
    pipeline: LayerPipeline, jobs: list[LayerJob], pending: list[LayerJob]
) -> None:
    """Ingests of layers already committed (left by a killed run) are useless."""
    needed = {job.descriptor.digest for job in pending}
    for job in jobs:
        digest = job.descriptor.digest
        if digest not in needed and not pipeline.downloads.active(digest):
            pipeline.store.remove_idle_ingest(digest)


async def _start_downloads(
    pipeline: LayerPipeline,
    registry: Registry,
    ref: Reference,
    pending: list[LayerJob],
    progress: ProgressCallback | None,
) -> dict[Digest, Download]:
    """One download per distinct blob (C22), started in layer order."""
    downloads: dict[Digest, Download] = {}
    try:
        for job in pending:
            digest = job.descriptor.digest
            if digest not in downloads:
                downloads[digest] = await pipeline.downloads.acquire(
                    registry, ref, job.descriptor
                )
            if progress:
                downloads[digest].listeners.append(_reporter(job, progress))
    except BaseException:
        for download in downloads.values():
            await pipeline.downloads.release(download)
        raise
    return downloads


def _reporter(job: LayerJob, progress: ProgressCallback) -> Callable[[int], None]:
    def report(done: int) -> None:
        progress(
            LayerProgress(
                job.index, job.descriptor.digest, done, job.descriptor.size, "download"
            )
        )

    return report


async def _apply_one(
    pipeline: LayerPipeline,
    job: LayerJob,
    download: Download,
    progress: ProgressCallback | None,
    settle: Callable[[], Awaitable[None]],
) -> Applied:
    size = job.descriptor.size
    if progress:
        progress(
            LayerProgress(
                job.index, job.descriptor.digest, download.ingest.offset, size, "apply"
            )
        )
    applied = await apply_job(
        pipeline.snapshots,
        pipeline.committer,
        pipeline.apply_layer,
        job,
        download,
        settle,
    )
    if progress:
        progress(LayerProgress(job.index, job.descriptor.digest, size, size, "done"))
    return applied


def log_pull(ref: Reference, digest: Digest, seconds: float, fetched: int) -> None:
    # A reference by digest already names what it resolved to.
    pulled = str(ref) if ref.digest is not None else f"{ref}@{digest}"
    log.info("pulled %s in %.1fs, %.1f MB fetched", pulled, seconds, fetched / 1e6)


def elapsed(started: float) -> float:
    return time.monotonic() - started
