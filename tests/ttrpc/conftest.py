"""A ttrpc server on a short unix socket path, with a small test service."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from sandpull import errors
from sandpull.api.ttrpc_pb2 import KeyValue
from sandpull.ttrpc import Context, Method, Server

SERVICE = "sandpull.test.Echo"


@dataclass
class EchoService:
    """Echo replies with the request; Fail raises the error class named by key;
    Hold blocks until the test releases the key (or the call is cancelled)."""

    gates: dict[str, asyncio.Event] = field(default_factory=dict)
    cancelled: list[str] = field(default_factory=list)
    contexts: list[Context] = field(default_factory=list)

    async def echo(self, request: KeyValue, ctx: Context) -> KeyValue:
        self.contexts.append(ctx)
        return KeyValue(key=request.key, value=request.value)

    async def fail(self, request: KeyValue, ctx: Context) -> KeyValue:
        if request.key == "ValueError":
            raise ValueError(request.value)
        raise getattr(errors, request.key)(request.value)

    async def hold(self, request: KeyValue, ctx: Context) -> KeyValue:
        gate = self.gates.setdefault(request.key, asyncio.Event())
        try:
            await gate.wait()
        except asyncio.CancelledError:
            self.cancelled.append(request.key)
            raise
        return KeyValue(key=request.key, value="released")

    def methods(self) -> dict[str, Method]:
        return {
            "Echo": Method(KeyValue, self.echo),
            "Fail": Method(KeyValue, self.fail),
            "Hold": Method(KeyValue, self.hold),
        }


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # pytest's tmp_path can exceed the 107-byte limit of a unix socket path.
    path = Path(tempfile.mkdtemp(prefix="sp-tt-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def service() -> EchoService:
    return EchoService()


@pytest.fixture
async def server_path(socket_dir: Path, service: EchoService) -> AsyncIterator[str]:
    server = Server()
    server.register(SERVICE, service.methods())
    path = str(socket_dir / "ttrpc.sock")
    await server.listen_unix(path)
    yield path
    await server.close()
