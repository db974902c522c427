"""ttrpc framing: a 10-byte big-endian header, then a protobuf body.

Header: body length (u32), stream id (u32), message type (u8), flags (u8). See
https://github.com/containerd/ttrpc/blob/v1.1.1/channel.go for the wire format
that containerd 1.6 speaks.
"""

from __future__ import annotations

import asyncio
import enum
import struct
from dataclasses import dataclass

from sandpull.errors import ResourceExhausted, Unavailable

HEADER = struct.Struct(">IIBB")
HEADER_SIZE = HEADER.size

#: Largest body either side accepts; exactly this many bytes is allowed.
MAX_MESSAGE_SIZE = 4 << 20

#: A length at or above this cannot be a ttrpc frame: the first header byte is
#: reserved (always zero), so the stream is garbage rather than a big message.
GARBAGE_LENGTH = 1 << 24

_DISCARD_CHUNK = 64 * 1024


class MessageType(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2
    DATA = 3


@dataclass(frozen=True)
class FrameHeader:
    length: int
    stream_id: int
    type: int
    flags: int = 0

    def encode(self) -> bytes:
        return HEADER.pack(self.length, self.stream_id, self.type, self.flags)


@dataclass(frozen=True)
class Frame:
    stream_id: int
    type: int
    body: bytes
    flags: int = 0

    def encode(self) -> bytes:
        """The frame as sent; raises ResourceExhausted past the message limit."""
        if len(self.body) > MAX_MESSAGE_SIZE:
            raise ResourceExhausted(
                f"encode ttrpc frame on stream {self.stream_id}: message length "
                f"{len(self.body)} exceeds maximum message size of {MAX_MESSAGE_SIZE}"
            )
        header = FrameHeader(len(self.body), self.stream_id, self.type, self.flags)
        return header.encode() + self.body


async def read_header(reader: asyncio.StreamReader) -> FrameHeader | None:
    """The next header, or None when the peer closed cleanly between frames.

    Raises Unavailable when the peer closes inside a header.
    """
    try:
        data = await reader.readexactly(HEADER_SIZE)
    except asyncio.IncompleteReadError as exc:
        if not exc.partial:
            return None
        raise Unavailable(
            f"read ttrpc header: peer closed after {len(exc.partial)} of "
            f"{HEADER_SIZE} bytes"
        ) from exc
    return FrameHeader(*HEADER.unpack(data))


async def read_body(reader: asyncio.StreamReader, header: FrameHeader) -> bytes:
    """The body announced by ``header``; raises Unavailable if the peer quits."""
    try:
        return await reader.readexactly(header.length)
    except asyncio.IncompleteReadError as exc:
        raise _closed_mid_body(header, len(exc.partial)) from exc


async def discard_body(reader: asyncio.StreamReader, header: FrameHeader) -> None:
    """Read and drop a body without holding it in memory."""
    left = header.length
    while left:
        chunk = await reader.read(min(left, _DISCARD_CHUNK))
        if not chunk:
            raise _closed_mid_body(header, header.length - left)
        left -= len(chunk)


def _closed_mid_body(header: FrameHeader, got: int) -> Unavailable:
    return Unavailable(
        f"read ttrpc body on stream {header.stream_id}: peer closed after "
        f"{got} of {header.length} bytes"
    )
