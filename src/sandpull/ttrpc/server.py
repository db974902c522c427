"""A ttrpc server over asyncio streams (unix sockets, or any connected socket).

Each request runs in its own task, so a slow call (a container ``Wait``) never
holds up the calls behind it on the same connection, and replies go out in
whatever order handlers finish. Handlers are registered per service::

    server.register("sandpull.agent.v1.Agent", {
        "Version": Method(VersionRequest, handle_version),
    })

A handler is ``async (request, ctx) -> response``. Raising a sandpull error sends
its status code; any other exception is logged and sent as UNKNOWN.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import stat
import struct
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from google.protobuf.message import DecodeError, Message

from sandpull.api import ttrpc_pb2
from sandpull.errors import Code, InvalidArgument, SandpullError, from_os_error
from sandpull.ttrpc.frame import (
    GARBAGE_LENGTH,
    MAX_MESSAGE_SIZE,
    Frame,
    FrameHeader,
    MessageType,
    discard_body,
    read_body,
    read_header,
)
from sandpull.ttrpc.status import make_status, status_for_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Context:
    """What a handler knows about its call besides the request message."""

    service: str
    method: str
    stream_id: int
    #: Metadata as a multimap: every value sent for a key, in order.
    metadata: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    #: Seconds the client allowed, or None for no deadline.
    timeout: float | None = None

    def get(self, key: str) -> str | None:
        """The first metadata value for ``key`` (keys compare lower-cased)."""
        values = self.metadata.get(key.lower())
        return values[0] if values else None


Handler = Callable[[Any, Context], Awaitable[Message]]


@dataclass(frozen=True)
class Method:
    request_type: type[Message]
    handler: Handler


class Server:
    """Serves registered services on any number of listeners."""

    def __init__(self, *, require_same_user: bool = True) -> None:
        self._services: dict[str, dict[str, Method]] = {}
        self._listeners: list[asyncio.Server] = []
        self._connections: set[_Connection] = set()
        self._require_same_user = require_same_user

    def register(self, service: str, methods: Mapping[str, Method]) -> None:
        """Add a service; registering the same name twice is an error."""
        if service in self._services:
            raise InvalidArgument(f"register ttrpc service {service}: already there")
        self._services[service] = dict(methods)

    def lookup(self, service: str, method: str) -> Method:
        methods = self._services.get(service)
        if methods is None:
            raise _Unimplemented(f"service {service}")
        found = methods.get(method)
        if found is None:
            raise _Unimplemented(f"method {method}")
        return found

    async def listen_unix(self, path: str) -> None:
        """Listen on a new unix socket at ``path`` (mode 0600).

        A stale socket left at ``path`` is replaced; any other file is an error.
        """
        _remove_stale_socket(path)
        listener = await asyncio.start_unix_server(self._accept, path=path)
        os.chmod(path, 0o600)
        self._listeners.append(listener)

    async def listen_socket(self, sock: socket.socket) -> None:
        """Serve on an already listening socket (for example one passed as fd 3)."""
        listener = await asyncio.start_unix_server(self._accept, sock=sock)
        self._listeners.append(listener)

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve one connected stream until the peer closes it."""
        connection = _Connection(self, reader, writer)
        self._connections.add(connection)
        try:
            await connection.run()
        finally:
            self._connections.discard(connection)

    async def close(self) -> None:
        """Stop listening, cancel calls in flight and close every connection."""
        for listener in self._listeners:
            listener.close()
        connections = list(self._connections)
        for connection in connections:
            connection.close()
        for connection in connections:
            await connection.finished.wait()
        for listener in self._listeners:
            await listener.wait_closed()
        self._listeners.clear()

    async def __aenter__(self) -> Server:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _accept(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        if self._require_same_user and not _same_user(writer):
            log.warning("ttrpc: refused a peer running as another user")
            writer.close()
            return
        await self.serve_connection(reader, writer)


class _Unimplemented(Exception):
    """Unknown service or method; answered with UNIMPLEMENTED."""


class _Connection:
    """One client connection: a read loop plus one task per request."""

    def __init__(
        self,
        server: Server,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self._server = server
        self._reader = reader
        self._writer = writer
        self._write_lock = asyncio.Lock()
        self._calls: set[asyncio.Task[None]] = set()
        self.finished = asyncio.Event()

    async def run(self) -> None:
        try:
            await self._read_loop()
        except Exception as exc:  # one bad peer must not stop serving
            log.debug("ttrpc: connection ended: %s", exc)
        finally:
            self.close()
            self.finished.set()

    def close(self) -> None:
        for call in self._calls:
            call.cancel()
        self._writer.close()

    async def _read_loop(self) -> None:
        while True:
            header = await read_header(self._reader)
            if header is None:
                return
            if header.length >= GARBAGE_LENGTH:
                # The reserved first byte is set: this is not a ttrpc peer.
                log.debug("ttrpc: closing on a frame of %d bytes", header.length)
                return
            await self._on_frame(header)

    async def _on_frame(self, header: FrameHeader) -> None:
        if header.type != MessageType.REQUEST:
            await discard_body(self._reader, header)
            return
        if header.length > MAX_MESSAGE_SIZE:
            await discard_body(self._reader, header)
            message = (
                f"message length {header.length} exceed maximum message size "
                f"of {MAX_MESSAGE_SIZE}"
            )
            self._spawn(self._reply_status(header, Code.RESOURCE_EXHAUSTED, message))
            return
        body = await read_body(self._reader, header)
        self._spawn(self._handle(header, body))

    def _spawn(self, coro: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        self._calls.add(task)
        task.add_done_callback(self._calls.discard)

    async def _handle(self, header: FrameHeader, body: bytes) -> None:
        if header.stream_id % 2 == 0:
            message = "StreamID must be odd for client initiated streams"
            await self._reply_status(header, Code.INVALID_ARGUMENT, message)
            return
        request = ttrpc_pb2.Request()
        try:
            request.ParseFromString(body)
        except DecodeError as exc:
            message = f"unmarshal request error: {exc}"
            await self._reply_status(header, Code.INVALID_ARGUMENT, message)
            return
        response = await _dispatch(self._server, request, header.stream_id)
        await self._send(header.stream_id, response)

    async def _reply_status(self, header: FrameHeader, code: int, text: str) -> None:
        response = ttrpc_pb2.Response(status=make_status(code, text))
        await self._send(header.stream_id, response)

    async def _send(self, stream_id: int, response: ttrpc_pb2.Response) -> None:
        body = response.SerializeToString()
        if len(body) > MAX_MESSAGE_SIZE:
            status = make_status(
                Code.RESOURCE_EXHAUSTED,
                f"response length {len(body)} exceeds maximum message size "
                f"of {MAX_MESSAGE_SIZE}",
            )
            body = ttrpc_pb2.Response(status=status).SerializeToString()
        data = Frame(stream_id, MessageType.RESPONSE, body).encode()
        async with self._write_lock:
            if self._writer.is_closing():
                return
            self._writer.write(data)
            with contextlib.suppress(ConnectionError):
                await self._writer.drain()


async def _dispatch(
    server: Server, request: ttrpc_pb2.Request, stream_id: int
) -> ttrpc_pb2.Response:
    """Decode, run the handler under its deadline, and build the response."""
    try:
        method = server.lookup(request.service, request.method)
    except _Unimplemented as exc:
        return _error(Code.UNIMPLEMENTED, str(exc))

    message = method.request_type()
    try:
        message.ParseFromString(request.payload)
    except DecodeError as exc:
        return _error(Code.INTERNAL, f"ttrpc: error unmarshalling payload: {exc}")

    ctx = _context(request, stream_id)
    deadline = asyncio.timeout(ctx.timeout)
    try:
        async with deadline:
            result = await method.handler(message, ctx)
    except TimeoutError as exc:
        if deadline.expired():
            return _error(Code.DEADLINE_EXCEEDED, _deadline_message(ctx))
        return ttrpc_pb2.Response(status=status_for_error(exc))
    except Exception as exc:  # every error becomes a status
        _log_failure(ctx, exc)
        return ttrpc_pb2.Response(status=status_for_error(exc))
    return ttrpc_pb2.Response(payload=result.SerializeToString())


def _context(request: ttrpc_pb2.Request, stream_id: int) -> Context:
    metadata: dict[str, tuple[str, ...]] = {}
    for pair in request.metadata:
        key = pair.key.lower()
        metadata[key] = (*metadata.get(key, ()), pair.value)
    timeout = request.timeout_nano / 1e9 if request.timeout_nano > 0 else None
    return Context(request.service, request.method, stream_id, metadata, timeout)


def _deadline_message(ctx: Context) -> str:
    return f"{ctx.service}/{ctx.method}: deadline of {ctx.timeout:.3f}s exceeded"


def _error(code: int, message: str) -> ttrpc_pb2.Response:
    return ttrpc_pb2.Response(status=make_status(code, message))


def _log_failure(ctx: Context, exc: Exception) -> None:
    if isinstance(exc, SandpullError):
        log.debug("ttrpc: /%s/%s: %s", ctx.service, ctx.method, exc)
    else:
        log.error("ttrpc: /%s/%s raised", ctx.service, ctx.method, exc_info=exc)


def _remove_stale_socket(path: str) -> None:
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    except OSError as exc:
        raise from_os_error(f"listen on {path}", exc) from exc
    if not stat.S_ISSOCK(mode):
        raise InvalidArgument(f"listen on {path}: a file that is not a socket exists")
    os.unlink(path)


_PEERCRED = struct.Struct("3i")


def _same_user(writer: asyncio.StreamWriter) -> bool:
    sock = writer.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        return True
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _PEERCRED.size)
    _pid, uid, gid = _PEERCRED.unpack(raw)
    return bool(uid == os.geteuid() and gid == os.getegid())
