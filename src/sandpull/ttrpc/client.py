"""A ttrpc client over asyncio streams.

One connection carries any number of concurrent calls: each call takes the
next odd stream id, and a reader task hands every response to the call
waiting on its stream id, in whatever order the server answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterable
from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from sandpull.api import ttrpc_pb2
from sandpull.errors import (
    DeadlineExceeded,
    InvalidArgument,
    ResourceExhausted,
    SandpullError,
    Unavailable,
    from_os_error,
)
from sandpull.ttrpc.frame import (
    MAX_MESSAGE_SIZE,
    Frame,
    FrameHeader,
    MessageType,
    discard_body,
    read_body,
    read_header,
)
from sandpull.ttrpc.status import error_for_status

log = logging.getLogger(__name__)

R = TypeVar("R", bound=Message)

_MAX_STREAM_ID = (1 << 32) - 1


class Client:
    """A ttrpc connection; close it with :meth:`close` or ``async with``."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._next_stream_id = 1
        self._pending: dict[int, asyncio.Future[ttrpc_pb2.Response]] = {}
        self._write_lock = asyncio.Lock()
        self._closed: SandpullError | None = None
        self._reader_task = asyncio.ensure_future(self._read_loop())

    @classmethod
    async def connect_unix(cls, path: str) -> Client:
        """Connect to a ttrpc server listening on the unix socket ``path``."""
        try:
            reader, writer = await asyncio.open_unix_connection(path)
        except OSError as exc:
            raise _connect_error(path, exc) from exc
        return cls(reader, writer)

    async def call(
        self,
        service: str,
        method: str,
        request: Message,
        response_type: type[R],
        *,
        timeout: float | None = None,
        metadata: Iterable[tuple[str, str]] = (),
    ) -> R:
        """Call ``service/method`` and return its decoded response.

        ``timeout`` (seconds) is sent to the server as the call's deadline and
        also bounds the wait here; either way DeadlineExceeded is raised. A
        non-OK status is raised as the sandpull error for its code.
        """
        body = _envelope(service, method, request, timeout, metadata)
        response = await self._roundtrip(body, timeout, f"{service}/{method}")
        if response.HasField("status") and response.status.code != 0:
            raise error_for_status(response.status)
        result = response_type()
        try:
            result.ParseFromString(response.payload)
        except DecodeError as exc:
            raise InvalidArgument(f"decode {service}/{method} response: {exc}") from exc
        return result

    async def close(self) -> None:
        """Close the connection; calls still waiting raise Unavailable."""
        self._fail_all(Unavailable("ttrpc client closed"))
        self._writer.close()
        self._reader_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await self._reader_task
        with contextlib.suppress(ConnectionError):
            await self._writer.wait_closed()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _roundtrip(
        self, body: bytes, timeout: float | None, name: str
    ) -> ttrpc_pb2.Response:
        if self._closed is not None:
            raise Unavailable(f"call {name}: {self._closed}")
        stream_id = self._take_stream_id(name)
        waiter: asyncio.Future[ttrpc_pb2.Response]
        waiter = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = waiter
        try:
            await self._send(Frame(stream_id, MessageType.REQUEST, body))
            async with asyncio.timeout(timeout):
                return await waiter
        except TimeoutError as exc:
            raise DeadlineExceeded(
                f"call {name}: no response within {timeout:.3f}s"
            ) from exc
        finally:
            self._pending.pop(stream_id, None)

    def _take_stream_id(self, name: str) -> int:
        stream_id = self._next_stream_id
        if stream_id > _MAX_STREAM_ID:
            raise ResourceExhausted(f"call {name}: no stream ids left on connection")
        self._next_stream_id += 2
        return stream_id

    async def _send(self, frame: Frame) -> None:
        data = frame.encode()
        async with self._write_lock:
            try:
                self._writer.write(data)
                await self._writer.drain()
            except (ConnectionError, RuntimeError) as exc:
                raise Unavailable(f"send ttrpc request: {exc}") from exc

    async def _read_loop(self) -> None:
        try:
            while (header := await read_header(self._reader)) is not None:
                await self._on_frame(header)
            self._fail_all(Unavailable("ttrpc connection closed by the server"))
        except SandpullError as exc:
            self._fail_all(exc)
        except (OSError, asyncio.IncompleteReadError) as exc:
            self._fail_all(Unavailable(f"read ttrpc response: {exc}"))

    async def _on_frame(self, header: FrameHeader) -> None:
        waiter = self._pending.get(header.stream_id)
        if header.length > MAX_MESSAGE_SIZE or header.type != MessageType.RESPONSE:
            await discard_body(self._reader, header)
            if waiter is not None and not waiter.done():
                waiter.set_exception(_bad_frame(header))
            return
        body = await read_body(self._reader, header)
        if waiter is None or waiter.done():
            log.debug("ttrpc: unexpected response on stream %d", header.stream_id)
            return
        response = ttrpc_pb2.Response()
        try:
            response.ParseFromString(body)
        except DecodeError as exc:
            waiter.set_exception(InvalidArgument(f"decode ttrpc response: {exc}"))
            return
        waiter.set_result(response)

    def _fail_all(self, error: SandpullError) -> None:
        if self._closed is None:
            self._closed = error
        for waiter in self._pending.values():
            if not waiter.done():
                waiter.set_exception(Unavailable(str(error)))
        self._pending.clear()


def _envelope(
    service: str,
    method: str,
    request: Message,
    timeout: float | None,
    metadata: Iterable[tuple[str, str]],
) -> bytes:
    envelope = ttrpc_pb2.Request(
        service=service,
        method=method,
        payload=request.SerializeToString(),
        timeout_nano=int(timeout * 1e9) if timeout else 0,
        metadata=[ttrpc_pb2.KeyValue(key=k, value=v) for k, v in metadata],
    )
    return envelope.SerializeToString()


def _bad_frame(header: FrameHeader) -> SandpullError:
    if header.length > MAX_MESSAGE_SIZE:
        return ResourceExhausted(
            f"read ttrpc response on stream {header.stream_id}: message length "
            f"{header.length} exceeds maximum message size of {MAX_MESSAGE_SIZE}"
        )
    return InvalidArgument(
        f"read ttrpc response on stream {header.stream_id}: "
        f"message type {header.type}, want {MessageType.RESPONSE}"
    )


def _connect_error(path: str, exc: OSError) -> SandpullError:
    if isinstance(exc, ConnectionRefusedError | FileNotFoundError):
        return Unavailable(f"connect to ttrpc server {path}: {exc.strerror}")
    return from_os_error(f"connect to ttrpc server {path}", exc)
