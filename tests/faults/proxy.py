"""A fault-injecting reverse proxy between sandpull and the real registry.

:class:`FaultProxy` forwards every request to a running distribution registry and
answers with what came back, unless a :class:`Rule` of the test's fault script
matches the request: then the rule's :data:`Fault` answers instead, from the
registry's real response (reset the connection at a byte, trickle, corrupt, lie
in a header, redirect, ...). Rules fire a limited number of times, so a script
can say "the first two blob requests get a 503".

The proxy counts the body bytes it sent per request path, so tests can prove
that a resumed or shared download did not fetch a blob twice.
"""

from __future__ import annotations

import asyncio
import re
import socket
import ssl
import struct
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

_HOP_BY_HOP = frozenset(
    {"connection", "content-length", "transfer-encoding", "keep-alive", "date",
     "server"}
)  # fmt: skip


@dataclass(frozen=True)
class Upstream:
    """The registry's answer to a forwarded request, body read whole."""

    status: int
    headers: CIMultiDict[str]
    body: bytes


Fault = Callable[["FaultProxy", web.Request, Upstream], Awaitable[web.StreamResponse]]


@dataclass
class Rule:
    """Answer requests matching ``method`` and ``path`` (a regex) with ``fault``.

    ``times`` is how often the rule fires (``None``: always); ``range_only``
    restricts it to requests carrying a ``Range`` header.
    """

    path: str
    fault: Fault
    times: int | None = None
    method: str = "GET"
    range_only: bool = False
    fired: int = 0

    def take(self, request: web.Request) -> bool:
        if request.method != self.method or not re.search(self.path, request.path):
            return False
        if self.range_only and "Range" not in request.headers:
            return False
        if self.times is not None and self.fired >= self.times:
            return False
        self.fired += 1
        return True


@dataclass
class Seen:
    """One request the proxy answered."""

    method: str
    path: str
    range: str | None
    authorization: str | None


@dataclass
class FaultProxy:
    upstream: str
    rules: list[Rule] = field(default_factory=list)
    ssl_context: ssl.SSLContext | None = None
    upstream_ssl: ssl.SSLContext | bool = True
    sent: Counter[str] = field(default_factory=Counter)
    seen: list[Seen] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _session: aiohttp.ClientSession | None = None

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.port}"

    def blob_bytes(self, digest: object) -> int:
        """Body bytes sent for ``/v2/.../blobs/<digest>`` over every request."""
        return sum(n for path, n in self.sent.items() if path.endswith(f"/{digest}"))

    async def start(self) -> FaultProxy:
        self._session = aiohttp.ClientSession(auto_decompress=False)
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.2)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self.ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                request.method,
                request.path,
                request.headers.get("Range"),
                request.headers.get("Authorization"),
            )
        )
        upstream = await self.fetch(request)
        for rule in self.rules:
            if rule.take(request):
                return await rule.fault(self, request, upstream)
        return await self.answer(request, upstream)

    async def fetch(self, request: web.Request) -> Upstream:
        """Forward ``request`` to the registry as it is."""
        assert self._session is not None
        headers = {
            k: v
            for k, v in request.headers.items()
            if k.lower() in ("authorization", "accept", "range", "user-agent")
        }
        async with self._session.request(
            request.method,
            f"{self.upstream}{request.path_qs}",
            headers=headers,
            allow_redirects=False,
            ssl=self.upstream_ssl,
        ) as response:
            body = await response.read()
            return Upstream(response.status, CIMultiDict(response.headers), body)

    async def answer(
        self,
        request: web.Request,
        upstream: Upstream,
        body: bytes | None = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> web.Response:
        """The registry's answer, with any part replaced."""
        out = CIMultiDict(
            (k, v) for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
        )
        out.update(headers or {})
        data = upstream.body if body is None else body
        self.sent[request.path] += len(data)
        return web.Response(status=status or upstream.status, headers=out, body=data)

    async def start_stream(
        self, request: web.Request, upstream: Upstream, length: int
    ) -> web.StreamResponse:
        """Headers of the registry's answer, sent, with ``length`` announced."""
        response = web.StreamResponse(status=upstream.status)
        for key, value in upstream.headers.items():
            if key.lower() not in _HOP_BY_HOP:
                response.headers.add(key, value)
        response.content_length = length
        await response.prepare(request)
        return response

    async def write(
        self, request: web.Request, response: web.StreamResponse, data: bytes
    ) -> None:
        await response.write(data)
        self.sent[request.path] += len(data)


def reset(request: web.Request) -> None:
    """Drop the connection with a TCP reset (no orderly close)."""
    transport = request.transport
    assert transport is not None
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


# --- the faults ------------------------------------------------------------------


def reset_at(byte: int) -> Fault:
    """Send the headers and ``byte`` bytes of the body, then reset the connection."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        response = await proxy.start_stream(request, upstream, len(upstream.body))
        await proxy.write(request, response, upstream.body[:byte])
        await asyncio.sleep(0.05)  # let the bytes leave before the reset
        reset(request)
        return response

    return fault


def status(code: int, retry_after: str | None = None) -> Fault:
    """Answer ``code`` with a distribution error body, and ``Retry-After``."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        headers = {"Retry-After": retry_after} if retry_after else {}
        name = "TOOMANYREQUESTS" if code == 429 else "UNAVAILABLE"
        body = f'{{"errors":[{{"code":"{name}","message":"injected"}}]}}'.encode()
        return web.Response(status=code, headers=headers, body=body)

    return fault


def trickle(bytes_per_second: int = 1) -> Fault:
    """Send the body at ``bytes_per_second`` until the client hangs up."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        response = await proxy.start_stream(request, upstream, len(upstream.body))
        body = upstream.body
        try:
            for at in range(0, len(body), bytes_per_second):
                await proxy.write(request, response, body[at : at + bytes_per_second])
                await asyncio.sleep(1)
        except (ConnectionError, RuntimeError):
            pass
        return response

    return fault


def corrupt(at: int = 100) -> Fault:
    """The right length, one byte wrong."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        body = bytearray(upstream.body)
        body[at % len(body)] ^= 0xFF
        return await proxy.answer(request, upstream, bytes(body))

    return fault


def short_body(keep: int) -> Fault:
    """A complete-looking response whose ``Content-Length`` is only ``keep`` bytes."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        return await proxy.answer(request, upstream, upstream.body[:keep])

    return fault


def ignore_range(full: bytes) -> Fault:
    """Answer a ``Range`` request with 200 and the whole blob ``full``."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        headers = {"Content-Range": ""}
        response = await proxy.answer(request, upstream, full, 200, headers)
        del response.headers["Content-Range"]
        return response

    return fault


def wrong_range(full: bytes, shift: int) -> Fault:
    """Answer a ``Range`` request with 206 and bytes from ``shift`` later on."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        start += shift
        body = full[start:]
        headers = {"Content-Range": f"bytes {start}-{len(full) - 1}/{len(full)}"}
        return await proxy.answer(request, upstream, body, 206, headers)

    return fault


def header(name: str, value: str) -> Fault:
    """The registry's answer with header ``name`` replaced by ``value``."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        return await proxy.answer(request, upstream, headers={name: value})

    return fault


def replace_body(body: bytes, media_type: str) -> Fault:
    """Serve ``body`` (say, another manifest) instead of what was asked for."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        headers = {"Content-Type": media_type}
        return await proxy.answer(request, upstream, body, 200, headers)

    return fault


def hold(released: asyncio.Event) -> Fault:
    """Keep the client waiting until the test sets ``released``, then answer."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        await released.wait()
        return await proxy.answer(request, upstream)

    return fault


def redirect(location: Callable[[web.Request], str], code: int = 307) -> Fault:
    """Send the client elsewhere for this request."""

    async def fault(
        proxy: FaultProxy, request: web.Request, upstream: Upstream
    ) -> web.StreamResponse:
        return web.Response(status=code, headers={"Location": location(request)})

    return fault
