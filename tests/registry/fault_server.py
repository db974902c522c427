"""A scripted in-process HTTP server for faults the real registry cannot produce."""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class FaultServer:
    """Answers every request with ``handler``; records what it was asked."""

    handler: Handler
    hostname: str = "127.0.0.1"
    ssl_context: ssl.SSLContext | None = None
    seen: list[web.Request] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def host(self) -> str:
        return f"{self.hostname}:{self.port}"

    def headers(self, name: str) -> list[str | None]:
        return [r.headers.get(name) for r in self.seen]

    async def start(self) -> FaultServer:
        async def record(request: web.Request) -> web.StreamResponse:
            self.seen.append(request)
            return await self.handler(request)

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", record)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


StartServer = Callable[..., Awaitable[FaultServer]]


@pytest.fixture
async def fault_server() -> AsyncIterator[StartServer]:
    """``await fault_server(handler, hostname=..., ssl_context=...)`` starts one."""
    started: list[FaultServer] = []

    async def start(handler: Handler, **kwargs: object) -> FaultServer:
        server = await FaultServer(handler, **kwargs).start()  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop()
