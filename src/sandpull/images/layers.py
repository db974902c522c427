"""Applying a pull's layers in order, each into a fresh snapshot.

Layer ``i`` is applied once layers ``< i`` are applied (whiteouts need the
full lower stack), reading its blob from the ingest while the download is
still running. A snapshot is queued for its group commit only after the blob
digest and the ``diff_id`` are verified. Concurrent pulls needing the same
chain id share one application.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from sandpull.content import TailReader
from sandpull.errors import VerificationError
from sandpull.images.commits import Applied, SnapshotCommitter
from sandpull.images.downloads import Download
from sandpull.images.remote import ApplyLayer
from sandpull.images.snapshots import PreparedSnapshot, Snapshots
from sandpull.oci import Descriptor, Digest, mediatype

log = logging.getLogger(__name__)

_R = TypeVar("_R")


@dataclass(frozen=True)
class LayerJob:
    index: int
    descriptor: Descriptor
    diff_id: Digest
    chain_id: Digest
    parent: Digest | None


class SnapshotFlights(Generic[_R]):
    """Single-flight by chain id: one application, any number of waiters."""

    def __init__(self) -> None:
        self._flights: dict[Digest, asyncio.Future[_R]] = {}

    async def run(self, chain_id: Digest, make: Callable[[], Awaitable[_R]]) -> _R:
        flight = self._flights.get(chain_id)
        if flight is not None:
            return await asyncio.shield(flight)
        flight = asyncio.get_running_loop().create_future()
        self._flights[chain_id] = flight
        try:
            snapshot = await make()
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # consumed here; waiters re-raise it
            raise
        finally:
            del self._flights[chain_id]
        flight.set_result(snapshot)
        return snapshot


async def apply_job(
    snapshots: Snapshots,
    committer: SnapshotCommitter,
    apply_layer: ApplyLayer,
    job: LayerJob,
    download: Download,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> Applied:
    """Apply one layer into a new snapshot and queue its commit; clean up on failure.

    ``settle`` runs once the layer is applied and its blob verified, before the
    snapshot is queued: a caller done with the blob drops its ingest there, so
    the group's flush does not write a file that is about to be deleted.
    """
    existing = snapshots.get(job.chain_id)
    if existing is not None:
        return committer.done(existing)
    waiting = committer.pending(job.chain_id)
    if waiting is not None:
        return waiting
    lowers = snapshots.lower_dirs(job.parent) if job.parent else []
    prepared = snapshots.prepare(job.chain_id, job.parent)
    try:
        await _apply_verified(apply_layer, job, download, prepared, lowers)
        if settle is not None:
            await settle()
        prepared = snapshots.applied(prepared)
    except BaseException:
        await asyncio.to_thread(snapshots.abort, prepared)
        raise
    log.debug(
        "applied snapshot %d for layer %d (%s)",
        prepared.id,
        job.index,
        job.chain_id.short,
    )
    return committer.add(prepared)


async def _apply_verified(
    apply_layer: ApplyLayer,
    job: LayerJob,
    download: Download,
    prepared: PreparedSnapshot,
    lowers: list[Path],
) -> None:
    """Apply the layer and wait for its blob's verification.

    When both fail, the download's error is the cause: a tar reader fed bytes
    that do not match the digest can only report their symptoms.
    """
    try:
        await _apply(apply_layer, job, download, prepared, lowers)
    except Exception as apply_error:
        try:
            await download.wait()
        except Exception as download_error:
            raise download_error from apply_error
        raise
    await download.wait()


async def _apply(
    apply_layer: ApplyLayer,
    job: LayerJob,
    download: Download,
    prepared: PreparedSnapshot,
    lowers: list[Path],
) -> None:
    compression = mediatype.layer_compression(job.descriptor.media_type)
    assert compression is not None  # refused at resolve time otherwise
    reader = TailReader(download.ingest)
    worker = asyncio.ensure_future(
        asyncio.to_thread(
            apply_layer,
            reader,  # type: ignore[arg-type]
            compression=compression,
            target=prepared.fs,
            lowers=lowers,
            layer=job.descriptor.digest,
            diff_id=job.diff_id,
        )
    )
    try:
        applied = await asyncio.shield(worker)
    finally:
        # A cancelled pull must not leave the worker writing into a snapshot
        # that is about to be removed: stop its reads and wait for it.
        reader.stop()
        await asyncio.gather(worker, return_exceptions=True)
        reader.close()
    if applied.diff_id != job.diff_id:
        raise VerificationError(
            f"verify layer {job.descriptor.digest.short}: diff_id "
            f"{applied.diff_id.short}, want {job.diff_id.short}"
        )
