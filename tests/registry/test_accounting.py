"""Bytes reported to ``on_bytes`` equal the bytes the registry sent on the wire."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from sandpull.oci import Descriptor, Reference
from sandpull.registry import RegistriesConfig, RegistryClient
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.registry


class CountingProxy:
    """A TCP proxy that counts bytes sent to the client on plain-HTTP connections.

    Connections that open with a TLS handshake (the client probing https first on a
    loopback registry) are passed through but not counted: no HTTP answer comes of
    them, so the client has nothing to report.
    """

    def __init__(self, upstream: str) -> None:
        self.upstream_host, port = upstream.rsplit(":", 1)
        self.upstream_port = int(port)
        self.http_bytes = 0
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        up_reader, up_writer = await asyncio.open_connection(
            self.upstream_host, self.upstream_port
        )
        first = await reader.read(1)
        counted = first != b"\x16"
        up_writer.write(first)
        await asyncio.gather(
            _pipe(reader, up_writer, None),
            _pipe(up_reader, writer, self if counted else None),
            return_exceptions=True,
        )


async def _pipe(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    proxy: CountingProxy | None,
) -> None:
    try:
        while data := await reader.read(65536):
            if proxy is not None:
                proxy.http_bytes += len(data)
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture
async def proxy(
    registry_plain: RegistryServer,
) -> AsyncIterator[tuple[CountingProxy, str]]:
    counting = CountingProxy(registry_plain.host)
    host = await counting.start()
    yield counting, host
    assert counting.server is not None
    counting.server.close()


async def test_counted_bytes_equal_bytes_on_the_wire(
    registry_plain: RegistryServer, proxy: tuple[CountingProxy, str]
) -> None:
    counting, host = proxy
    layers = [bytes(range(256)) * 1000, b"small layer"]
    registry_plain.push_image("accounting/app", "v1", layers, config=b'{"os":"linux"}')
    ref = Reference.parse(f"{host}/accounting/app:v1")
    reported: list[int] = []

    async with RegistryClient(
        config=RegistriesConfig(), on_bytes=lambda h, r, n: reported.append(n)
    ) as client:
        fetched = await client.resolve(ref)
        manifest = json.loads(fetched.data)
        await client.get_blob_bytes(ref, Descriptor.from_json(manifest["config"]), 4096)
        for layer in manifest["layers"]:
            async with client.open_blob(ref, Descriptor.from_json(layer), 7) as stream:
                async for _ in stream:
                    pass

    assert sum(reported) == counting.http_bytes
    assert sum(reported) > sum(len(layer) for layer in layers)
