"""Byte-exact framing, against the example frames of the protocol notes."""

from __future__ import annotations

import asyncio

import pytest

from sandpull.api.ttrpc_pb2 import KeyValue, Request, Response, Status
from sandpull.errors import ResourceExhausted, Unavailable
from sandpull.ttrpc.frame import (
    MAX_MESSAGE_SIZE,
    Frame,
    FrameHeader,
    MessageType,
    read_body,
    read_header,
)

CONNECT_REQUEST = Request(
    service="containerd.task.v2.Task",
    method="Connect",
    payload=KeyValue(key="p1").SerializeToString(),  # ConnectRequest{id: "p1"}
    metadata=[KeyValue(key="containerd-namespace-ttrpc", value="default")],
)
CONNECT_REQUEST_HEX = (
    "0000004f"
    "00000001"
    "01"
    "00"
    "0a17" + b"containerd.task.v2.Task".hex() + "1207" + b"Connect".hex() + "1a04"
    "0a02" + b"p1".hex() + "2a25"
    "0a1a" + b"containerd-namespace-ttrpc".hex() + "1207" + b"default".hex()
)
CONNECT_RESPONSE = Response(payload=bytes.fromhex("08d20910ae2c"))
CONNECT_RESPONSE_HEX = "00000008000000010200120608d20910ae2c"
NOT_FOUND_RESPONSE = Response(
    status=Status(code=5, message="container not created: not found")
)
NOT_FOUND_RESPONSE_HEX = (
    "000000260000000302000a2408051220" + b"container not created: not found".hex()
)

EXAMPLES = [
    pytest.param(
        1,
        MessageType.REQUEST,
        CONNECT_REQUEST,
        CONNECT_REQUEST_HEX,
        id="a connect request with namespace metadata matches the notes",
    ),
    pytest.param(
        1,
        MessageType.RESPONSE,
        CONNECT_RESPONSE,
        CONNECT_RESPONSE_HEX,
        id="a success response carries no status field",
    ),
    pytest.param(
        3,
        MessageType.RESPONSE,
        NOT_FOUND_RESPONSE,
        NOT_FOUND_RESPONSE_HEX,
        id="a not-found error response carries code 5 and its message",
    ),
]


@pytest.mark.parametrize(("stream_id", "type_", "message", "expected"), EXAMPLES)
def test_frame_encodes_byte_exact(
    stream_id: int, type_: int, message: Request | Response, expected: str
) -> None:
    frame = Frame(stream_id, type_, message.SerializeToString())

    assert frame.encode().hex() == expected


@pytest.mark.parametrize(("stream_id", "type_", "message", "expected"), EXAMPLES)
async def test_frame_decodes_byte_exact(
    stream_id: int, type_: int, message: Request | Response, expected: str
) -> None:
    reader = _reader(bytes.fromhex(expected))

    header = await read_header(reader)
    assert header is not None
    body = await read_body(reader, header)

    assert (header.stream_id, header.type, header.flags) == (stream_id, type_, 0)
    assert type(message).FromString(body) == message


def test_header_is_big_endian() -> None:
    header = FrameHeader(length=0x01020304, stream_id=0x0A0B0C0D, type=2, flags=7)

    assert header.encode() == bytes.fromhex("01020304 0a0b0c0d 02 07")


def test_body_of_exactly_the_limit_is_allowed() -> None:
    frame = Frame(1, MessageType.REQUEST, bytes(MAX_MESSAGE_SIZE))

    assert len(frame.encode()) == MAX_MESSAGE_SIZE + 10


def test_body_over_the_limit_is_refused() -> None:
    frame = Frame(1, MessageType.REQUEST, bytes(MAX_MESSAGE_SIZE + 1))

    with pytest.raises(ResourceExhausted, match="exceeds maximum message size"):
        frame.encode()


async def test_clean_close_between_frames_reads_as_end() -> None:
    assert await read_header(_reader(b"")) is None


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(bytes.fromhex("000000"), id="a peer closing inside a header"),
        pytest.param(
            bytes.fromhex("00000005 00000001 01 00 0a02"),
            id="a peer closing inside a body",
        ),
    ],
)
async def test_peer_closing_mid_frame_is_unavailable(data: bytes) -> None:
    reader = _reader(data)

    with pytest.raises(Unavailable, match="peer closed after"):
        header = await read_header(reader)
        assert header is not None
        await read_body(reader, header)


def _reader(data: bytes) -> asyncio.StreamReader:
    reader = asyncio.StreamReader()
    reader.feed_data(data)
    reader.feed_eof()
    return reader
