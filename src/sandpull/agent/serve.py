"""Run the agent: a ttrpc server on a unix socket in front of :class:`AgentService`."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from sandpull.agent.accounting import PullAccounting
from sandpull.agent.images import ImageStore
from sandpull.agent.service import AgentService
from sandpull.ttrpc import Server

log = logging.getLogger(__name__)


async def serve(
    store: ImageStore,
    accounting: PullAccounting,
    socket_path: Path,
    stop: asyncio.Event,
) -> None:
    """Serve until ``stop`` is set, then close the socket and the service."""
    service = AgentService(store, accounting)
    server = Server()
    service.register(server)
    await server.listen_unix(str(socket_path))
    log.info("agent serving %s on %s", store.root, socket_path)
    try:
        await stop.wait()
    finally:
        await server.close()
        await service.close()
