"""Group commits of applied snapshots: durability paid per group, not per layer.

Each applied snapshot waits in a queue. The queue is committed as one group
(one ``syncfs``, one transaction, see :meth:`Snapshots.commit_all`) once its
oldest snapshot has waited :data:`GROUP_DELAY`, or at once when a pull ends and
calls :meth:`SnapshotCommitter.flush`. Groups commit one after another, in the
order their snapshots were applied, so a parent never commits after its child.
A crash loses at most the applied snapshots of the group not yet committed;
their directories are then orphans that start-up clean-up removes.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from sandpull.images.snapshots import PreparedSnapshot, Snapshot, Snapshots
from sandpull.oci import Digest

log = logging.getLogger(__name__)

#: How long an applied snapshot may wait for companions before its group commits.
GROUP_DELAY = 0.4


@dataclass(frozen=True)
class Applied:
    """A snapshot that is applied; ``committed`` resolves once it is durable."""

    chain_id: Digest
    committed: asyncio.Future[Snapshot]


class SnapshotCommitter:
    """The queue of applied snapshots of one store, committed in groups."""

    def __init__(self, snapshots: Snapshots, delay: float = GROUP_DELAY) -> None:
        self._snapshots = snapshots
        self._delay = delay
        self._queue: list[tuple[PreparedSnapshot, asyncio.Future[Snapshot]]] = []
        self._waiting: dict[Digest, Applied] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._last: asyncio.Task[None] | None = None

    def pending(self, chain_id: Digest) -> Applied | None:
        """The applied snapshot of ``chain_id`` that waits for its commit, if any."""
        return self._waiting.get(chain_id)

    @staticmethod
    def done(snapshot: Snapshot) -> Applied:
        """An :class:`Applied` for a snapshot that is already committed."""
        future = asyncio.get_running_loop().create_future()
        future.set_result(snapshot)
        return Applied(snapshot.chain_id, future)

    def add(self, prepared: PreparedSnapshot) -> Applied:
        """Queue an applied snapshot (see :meth:`Snapshots.applied`)."""
        loop = asyncio.get_running_loop()
        applied = Applied(prepared.chain_id, loop.create_future())
        self._queue.append((prepared, applied.committed))
        self._waiting[prepared.chain_id] = applied
        if self._timer is None:
            self._timer = loop.call_later(self._delay, self._start_group)
        return applied

    async def flush(self) -> None:
        """Commit everything queued so far; return once it is committed or failed.

        Failures reach each snapshot's ``committed`` future, not the caller.
        """
        self._start_group()
        if self._last is not None and not self._last.done():
            await asyncio.wait([self._last])

    def _start_group(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._queue:
            return
        group, self._queue = self._queue, []
        self._last = asyncio.ensure_future(self._commit(group, self._last))

    async def _commit(
        self,
        group: list[tuple[PreparedSnapshot, asyncio.Future[Snapshot]]],
        previous: asyncio.Task[None] | None,
    ) -> None:
        if previous is not None and not previous.done():
            await asyncio.wait([previous])
        batch = [prepared for prepared, _ in group]
        try:
            results = await asyncio.to_thread(self._snapshots.commit_all, batch)
        except BaseException as exc:
            for prepared, future in group:
                self._resolve(prepared, future, exc)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return
        for (prepared, future), result in zip(group, results, strict=True):
            self._resolve(prepared, future, result)
        log.debug("committed %d snapshots in one group", len(group))

    def _resolve(
        self,
        prepared: PreparedSnapshot,
        future: asyncio.Future[Snapshot],
        result: Snapshot | BaseException,
    ) -> None:
        waiting = self._waiting.get(prepared.chain_id)
        if waiting is not None and waiting.committed is future:
            del self._waiting[prepared.chain_id]
        if future.done():
            return
        if isinstance(result, Snapshot):
            future.set_result(result)
            return
        future.set_exception(result)
        future.exception()  # consumed here; whoever awaits it re-raises it
