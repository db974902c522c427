"""A blob body as a stream of chunks that resumes itself with ``Range`` requests."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from types import TracebackType

import aiohttp

from sandpull.errors import InvalidArgument, VerificationError
from sandpull.oci import Descriptor
from sandpull.registry.transport import (
    Call,
    ProgressDeadline,
    Retryable,
    RetryPolicy,
    connection_error,
    retryable,
)

log = logging.getLogger(__name__)

CHUNK_SIZE = 1 << 20
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")

#: Opens the blob at an absolute offset: the call used and its 200/206 response.
Opener = Callable[[int], Awaitable[tuple[Call, aiohttp.ClientResponse]]]
#: Reports body bytes received from the call's endpoint.
Counter = Callable[[Call, int], None]


class BlobStream:
    """``async with`` it, then ``async for chunk in stream``.

    Yields exactly ``desc.size - offset`` bytes or raises: a longer body is a
    :class:`VerificationError`; a dropped connection or a short body is resumed from
    the last byte yielded, up to the retry policy's attempts; a body that trickles
    slower than the progress deadline allows (``progress_timeout``) raises
    :class:`DeadlineExceeded`. The digest is not checked here: the caller hashes
    what it receives.
    """

    def __init__(
        self,
        desc: Descriptor,
        offset: int,
        opener: Opener,
        count: Counter,
        retry: RetryPolicy,
        progress_timeout: float = 60.0,
    ) -> None:
        if not 0 <= offset <= desc.size:
            raise InvalidArgument(
                f"open blob {desc.digest.short}: offset {offset} outside 0..{desc.size}"
            )
        self.desc = desc
        self.position = offset
        self._open = opener
        self._count = count
        self._retry = retry
        self._progress_timeout = progress_timeout
        self._response: aiohttp.ClientResponse | None = None
        self._call: Call | None = None
        self._skip = 0
        self._chunks: AsyncIterator[bytes] | None = None

    async def __aenter__(self) -> BlobStream:
        if self.position < self.desc.size:
            await self._reopen()
        self._chunks = self._iterate()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._release()

    def __aiter__(self) -> BlobStream:
        return self

    async def __anext__(self) -> bytes:
        if self._chunks is None:
            raise InvalidArgument("read blob: use the stream inside `async with`")
        return await anext(self._chunks)

    async def _iterate(self) -> AsyncIterator[bytes]:
        failures = 0
        while self.position < self.desc.size:
            if self._response is None:
                await self._reopen()
            try:
                async for chunk in self._body():
                    yield chunk
            except Retryable as exc:
                failures += 1
                self._release()
                if failures >= self._retry.attempts:
                    raise exc.error from exc
                log.debug("blob %s: %s; resuming at %d", self.desc.digest.short,
                          exc.error, self.position)  # fmt: skip
                await asyncio.sleep(self._retry.delay(failures - 1))

    async def _body(self) -> AsyncIterator[bytes]:
        assert self._response is not None and self._call is not None
        call, response, skip = self._call, self._response, self._skip
        deadline = ProgressDeadline(self._progress_timeout)
        try:
            async for chunk in response.content.iter_chunked(CHUNK_SIZE):
                self._count(call, len(chunk))
                deadline.add(call, len(chunk))
                if skip:
                    chunk, skip = chunk[skip:], max(0, skip - len(chunk))
                    self._skip = skip
                self._check_length(len(chunk))
                self.position += len(chunk)
                if chunk:
                    yield chunk
        except aiohttp.ClientPayloadError as exc:
            raise Retryable(VerificationError(self._short_message())) from exc
        except aiohttp.ClientError as exc:
            raise retryable(connection_error(call, exc)) from exc
        if self.position < self.desc.size:
            raise Retryable(VerificationError(self._short_message()))
        self._release()

    def _check_length(self, n: int) -> None:
        if self.position + n > self.desc.size:
            raise VerificationError(
                f"read blob {self.desc.digest}{self._where}: body longer than its "
                f"size {self.desc.size}"
            )

    def _short_message(self) -> str:
        return (
            f"read blob {self.desc.digest}{self._where}: body ended at byte "
            f"{self.position}, want {self.desc.size}"
        )

    @property
    def _where(self) -> str:
        return f" from {self._call.where}" if self._call is not None else ""

    async def _reopen(self) -> None:
        self._call, response = await self._open(self.position)
        self._skip = _bytes_to_skip(self._call, self.desc, self.position, response)
        self._response = response

    def _release(self) -> None:
        if self._response is not None:
            self._response.release()
            self._response = None


def _bytes_to_skip(
    call: Call, desc: Descriptor, position: int, response: aiohttp.ClientResponse
) -> int:
    """How many leading body bytes were already yielded (a 200 restarts at zero)."""
    if response.status == 200:
        return position
    match = _CONTENT_RANGE.match(response.headers.get("Content-Range", ""))
    start = int(match[1]) if match else -1
    if not 0 <= start <= position:
        response.release()
        raise VerificationError(
            f"read blob {desc.digest} from {call.where}: asked for bytes from "
            f"{position}, got Content-Range {_content_range(response)!r}"
        )
    return position - start


def _content_range(response: aiohttp.ClientResponse) -> str:
    return response.headers.get("Content-Range", "")[:60]
