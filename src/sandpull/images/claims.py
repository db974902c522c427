"""Claims on layers being pulled, shared by every process using one store.

A pull claims the chain id of each layer it is about to fetch and apply, by an
``flock`` on ``<root>/claims/<algorithm>-<hex>``. A second process pulling the
same layer waits for the claim instead of failing, then finds the snapshot the
first one committed and fetches nothing. Pulls in one process share a claim:
their downloads and snapshots are already single-flight.

Chain ids are claimed in layer order, and a chain id fixes every layer below
it, so two pulls never hold claims the other waits for.
"""

from __future__ import annotations

import asyncio
import fcntl
import logging
import os
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from sandpull.errors import from_os_error
from sandpull.oci import Digest

log = logging.getLogger(__name__)

#: Polling bounds while another process holds a claim; polling (rather than a
#: blocking ``flock`` in a thread) keeps a waiting pull cancellable.
_FIRST_POLL = 0.02
_LAST_POLL = 0.5


@dataclass
class _Held:
    fd: int
    users: int


class Claims:
    """Cross-process claims on chain ids under ``directory``."""

    def __init__(self, directory: Path) -> None:
        self._dir = directory
        self._held: dict[Digest, _Held] = {}
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise from_os_error(f"open claims {directory}", exc) from exc

    @asynccontextmanager
    async def hold(self, chain_ids: Iterable[Digest]) -> AsyncIterator[None]:
        """Claim ``chain_ids`` in order, waiting for other processes' claims."""
        taken: list[Digest] = []
        try:
            for chain_id in chain_ids:
                await self._take(chain_id)
                taken.append(chain_id)
            yield
        finally:
            for chain_id in reversed(taken):
                self._drop(chain_id)

    async def _take(self, chain_id: Digest) -> None:
        held = self._held.get(chain_id)
        if held is not None:
            held.users += 1
            return
        fd = await self._lock(chain_id)
        self._held[chain_id] = _Held(fd, 1)

    def _drop(self, chain_id: Digest) -> None:
        held = self._held[chain_id]
        held.users -= 1
        if held.users:
            return
        del self._held[chain_id]
        # Unlinked while locked: a waiter that then locks the old file sees
        # that it is gone and opens the path again.
        self._path(chain_id).unlink(missing_ok=True)
        os.close(held.fd)

    async def _lock(self, chain_id: Digest) -> int:
        delay = _FIRST_POLL
        waited = False
        while True:
            fd = self._try_lock(chain_id)
            if fd is not None:
                if waited:
                    log.debug("claim on layer %s released", chain_id.short)
                return fd
            if not waited:
                log.info("waiting for another pull of layer %s", chain_id.short)
                waited = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, _LAST_POLL)

    def _try_lock(self, chain_id: Digest) -> int | None:
        path = self._path(chain_id)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise from_os_error(f"claim layer {chain_id.short}", exc) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if _same_file(fd, path):
                return fd
        except BlockingIOError:
            pass
        os.close(fd)
        return None

    def _path(self, chain_id: Digest) -> Path:
        return self._dir / f"{chain_id.algorithm}-{chain_id.hex}"


def _same_file(fd: int, path: Path) -> bool:
    try:
        current = path.stat()
    except FileNotFoundError:
        return False
    opened = os.fstat(fd)
    return (opened.st_dev, opened.st_ino) == (current.st_dev, current.st_ino)
