"""Layer downloads into the content store's ingest, shared by concurrent pulls.

One :class:`Download` per blob digest at a time: a second pull needing the same
blob joins it instead of fetching again. Downloads run concurrently up to a
limit, resume from what an earlier (killed) run left in the ingest, and verify
the digest at the end. Readers follow the ingest while it grows.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sandpull.content import Ingest, LocalStore
from sandpull.errors import (
    FailedPrecondition,
    ResourceExhausted,
    SandpullError,
    VerificationError,
    from_os_error,
)
from sandpull.images.remote import Registry
from sandpull.oci import Descriptor, Digest, Reference

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 3

#: Called with the bytes present after each chunk.
Listener = Callable[[int], None]


@dataclass
class Download:
    ingest: Ingest
    task: asyncio.Task[None] | None = None
    users: int = 0
    listeners: list[Listener] = field(default_factory=list)

    @property
    def descriptor(self) -> Descriptor:
        return self.ingest.descriptor

    async def wait(self) -> None:
        """Until the blob is verified; raises the download's error."""
        assert self.task is not None
        await asyncio.shield(self.task)


class Downloads:
    def __init__(
        self, store: LocalStore, concurrency: int = DEFAULT_CONCURRENCY
    ) -> None:
        self._store = store
        self._limit = asyncio.Semaphore(concurrency)
        self._active: dict[Digest, Download] = {}

    def active(self, digest: Digest) -> bool:
        return digest in self._active

    async def acquire(
        self, registry: Registry, ref: Reference, descriptor: Descriptor
    ) -> Download:
        """Start the download of ``descriptor`` or join the one running."""
        download = self._active.get(descriptor.digest)
        if download is None:
            # Opened without awaiting so that no second pull can slip in between
            # the lookup and the registration; a resume re-hashes the data here.
            download = Download(self._store.open_ingest(descriptor))
            self._active[descriptor.digest] = download
            download.task = asyncio.create_task(
                self._fetch(registry, ref, download),
                name=f"download {descriptor.digest.short}",
            )
        download.users += 1
        return download

    async def release(self, download: Download, keep: bool = False) -> None:
        """Drop one user; the last one stops the download and settles the ingest.

        A verified blob is committed to the store with ``keep`` and removed
        otherwise; bad or space-starved data is removed; anything else stays for
        a later pull to resume.
        """
        download.users -= 1
        if download.users > 0:
            return
        del self._active[download.descriptor.digest]
        assert download.task is not None
        if not download.task.done():
            download.task.cancel()
        await asyncio.gather(download.task, return_exceptions=True)
        ingest = download.ingest
        if keep and ingest.finished:
            await asyncio.to_thread(self._store.commit, ingest)
        elif ingest.finished or _is_unresumable(download.task):
            await asyncio.to_thread(ingest.remove)
        else:
            ingest.close()

    async def _fetch(
        self, registry: Registry, ref: Reference, download: Download
    ) -> None:
        ingest = download.ingest
        name = ingest.descriptor.digest.short
        try:
            async with self._limit:
                if ingest.offset < ingest.descriptor.size:
                    await self._stream(registry, ref, download)
                await _finish(ingest, ref)
        except SandpullError as exc:
            ingest.fail(exc)
            raise
        except OSError as exc:
            error = from_os_error(f"download blob {name}", exc)
            ingest.fail(error)
            raise error from exc
        except asyncio.CancelledError:
            ingest.fail(FailedPrecondition(f"download blob {name}: cancelled"))
            raise

    async def _stream(
        self, registry: Registry, ref: Reference, download: Download
    ) -> None:
        ingest = download.ingest
        if ingest.offset:
            log.debug(
                "resume blob %s at %d", ingest.descriptor.digest.short, ingest.offset
            )
        async with registry.open_blob(ref, ingest.descriptor, ingest.offset) as stream:
            async for chunk in stream:
                ingest.write(chunk)
                for listener in download.listeners:
                    listener(ingest.offset)


async def _finish(ingest: Ingest, ref: Reference) -> None:
    try:
        await asyncio.to_thread(ingest.finish)
    except VerificationError as exc:
        # The ingest knows the digest, not where the bytes came from.
        raise VerificationError(f"{exc} (fetched from {ref.name})") from exc


def _is_unresumable(task: asyncio.Task[None]) -> bool:
    if task.cancelled():
        return False
    return isinstance(task.exception(), VerificationError | ResourceExhausted)
