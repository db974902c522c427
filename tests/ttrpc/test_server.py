"""The server against a raw peer: what goes on the wire for odd and bad input."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from sandpull.api.ttrpc_pb2 import KeyValue, Request, Response
from sandpull.errors import Code
from sandpull.ttrpc.frame import MAX_MESSAGE_SIZE, Frame, FrameHeader, MessageType
from tests.ttrpc.conftest import SERVICE, EchoService


class RawPeer:
    """A client that writes whatever bytes a test gives it."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def request(self, stream_id: int, request: Request, flags: int = 0) -> None:
        body = request.SerializeToString()
        await self.send(Frame(stream_id, MessageType.REQUEST, body, flags).encode())

    async def response(self) -> tuple[int, Response]:
        header = FrameHeader(*_unpack(await self.reader.readexactly(10)))
        assert header.type == MessageType.RESPONSE
        body = await self.reader.readexactly(header.length)
        return header.stream_id, Response.FromString(body)


def _unpack(data: bytes) -> tuple[int, int, int, int]:
    from sandpull.ttrpc.frame import HEADER

    return HEADER.unpack(data)  # type: ignore[no-any-return]


@pytest.fixture
async def peer(server_path: str) -> AsyncIterator[RawPeer]:
    reader, writer = await asyncio.open_unix_connection(server_path)
    yield RawPeer(reader, writer)
    writer.close()


def echo(key: str = "k", **fields: object) -> Request:
    payload = KeyValue(key=key, value="v").SerializeToString()
    return Request(service=SERVICE, method="Echo", payload=payload, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("request_", "code", "message"),
    [
        pytest.param(
            Request(service="no.Such", method="Echo"),
            Code.UNIMPLEMENTED,
            "service no.Such",
            id="an unknown service is unimplemented",
        ),
        pytest.param(
            Request(service=SERVICE, method="Nope"),
            Code.UNIMPLEMENTED,
            "method Nope",
            id="an unknown method is unimplemented",
        ),
        pytest.param(
            Request(service=SERVICE, method="Echo", payload=b"\xff\xff"),
            Code.INTERNAL,
            "ttrpc: error unmarshalling payload",
            id="a payload that is not the input type is internal",
        ),
    ],
)
async def test_bad_call_gets_status(
    peer: RawPeer, request_: Request, code: Code, message: str
) -> None:
    await peer.request(1, request_)

    stream_id, response = await peer.response()

    assert stream_id == 1
    assert response.status.code == code
    assert response.status.message.startswith(message)
    assert response.payload == b""


async def test_even_stream_id_is_invalid_argument(peer: RawPeer) -> None:
    await peer.request(2, echo())

    stream_id, response = await peer.response()

    assert (stream_id, response.status.code) == (2, Code.INVALID_ARGUMENT)
    assert "StreamID must be odd" in response.status.message


async def test_body_that_is_not_a_request_is_invalid_argument(peer: RawPeer) -> None:
    await peer.send(Frame(1, MessageType.REQUEST, b"\x0a\xff\x01").encode())

    _, response = await peer.response()

    assert response.status.code == Code.INVALID_ARGUMENT
    assert response.status.message.startswith("unmarshal request error")


async def test_success_response_has_no_status(peer: RawPeer) -> None:
    await peer.request(1, echo("hello"))

    _, response = await peer.response()

    assert not response.HasField("status")
    assert KeyValue.FromString(response.payload).key == "hello"


async def test_unknown_message_type_is_ignored(peer: RawPeer) -> None:
    await peer.send(Frame(1, MessageType.DATA, b"junk").encode())
    await peer.request(3, echo("after"))

    stream_id, response = await peer.response()

    assert stream_id == 3
    assert KeyValue.FromString(response.payload).key == "after"


async def test_flags_on_a_request_are_ignored(peer: RawPeer) -> None:
    await peer.request(1, echo("flagged"), flags=0x02)

    _, response = await peer.response()

    assert KeyValue.FromString(response.payload).key == "flagged"


async def test_oversized_request_is_refused_and_connection_survives(
    peer: RawPeer,
) -> None:
    header = FrameHeader(MAX_MESSAGE_SIZE + 1, 1, MessageType.REQUEST)
    await peer.send(header.encode() + bytes(MAX_MESSAGE_SIZE + 1))
    await peer.request(3, echo("still here"))

    first = await peer.response()
    second = await peer.response()

    assert first[0] == 1
    assert first[1].status.code == Code.RESOURCE_EXHAUSTED
    assert first[1].status.message == (
        f"message length {MAX_MESSAGE_SIZE + 1} exceed maximum message size "
        f"of {MAX_MESSAGE_SIZE}"
    )
    assert KeyValue.FromString(second[1].payload).key == "still here"


async def test_request_of_exactly_the_limit_is_served(peer: RawPeer) -> None:
    key_size = MAX_MESSAGE_SIZE - 100
    request = _padded(echo("x" * key_size), MAX_MESSAGE_SIZE)

    await peer.request(1, request)
    _, response = await peer.response()

    assert response.status.code == 0
    assert len(KeyValue.FromString(response.payload).key) == key_size


def _padded(request: Request, size: int) -> Request:
    """``request`` plus a metadata pair that makes it exactly ``size`` bytes."""
    for n in range(128):
        padded = Request()
        padded.CopyFrom(request)
        padded.metadata.add(key="pad", value="p" * n)
        if padded.ByteSize() == size:
            return padded
    raise AssertionError(f"no padding makes the request {size} bytes")


async def test_garbage_header_closes_the_connection(peer: RawPeer) -> None:
    await peer.send(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")

    assert await peer.reader.read() == b""


async def test_peer_closing_mid_frame_leaves_server_serving(
    server_path: str,
) -> None:
    _, writer = await asyncio.open_unix_connection(server_path)
    writer.write(FrameHeader(100, 1, MessageType.REQUEST).encode() + b"\x0a\x05")
    await writer.drain()
    writer.close()

    reader, writer = await asyncio.open_unix_connection(server_path)
    peer = RawPeer(reader, writer)
    await peer.request(1, echo("next"))
    _, response = await peer.response()
    writer.close()

    assert KeyValue.FromString(response.payload).key == "next"


async def test_metadata_reaches_the_handler_as_multimap(
    peer: RawPeer, service: EchoService
) -> None:
    metadata = [
        KeyValue(key="Containerd-Namespace-Ttrpc", value="k8s.io"),
        KeyValue(key="x-tag", value="a"),
        KeyValue(key="x-tag", value="b"),
    ]
    await peer.request(1, echo(metadata=metadata))
    await peer.response()

    ctx = service.contexts[-1]
    assert ctx.get("containerd-namespace-ttrpc") == "k8s.io"
    assert ctx.metadata["x-tag"] == ("a", "b")
    assert (ctx.service, ctx.method, ctx.stream_id) == (SERVICE, "Echo", 1)


async def test_deadline_cancels_handler_and_answers_deadline_exceeded(
    peer: RawPeer, service: EchoService
) -> None:
    payload = KeyValue(key="slow").SerializeToString()
    request = Request(
        service=SERVICE, method="Hold", payload=payload, timeout_nano=50_000_000
    )
    await peer.request(1, request)

    _, response = await peer.response()

    assert response.status.code == Code.DEADLINE_EXCEEDED
    assert response.status.message.startswith(f"{SERVICE}/Hold: deadline")
    assert service.cancelled == ["slow"]


async def test_replies_come_back_in_completion_order(
    peer: RawPeer, service: EchoService
) -> None:
    held = KeyValue(key="first").SerializeToString()
    await peer.request(1, Request(service=SERVICE, method="Hold", payload=held))
    await peer.request(3, echo("second"))

    second = await peer.response()
    service.gates["first"].set()
    first = await peer.response()

    assert (second[0], first[0]) == (3, 1)
    assert KeyValue.FromString(first[1].payload).value == "released"


async def test_closing_connection_cancels_calls_in_flight(
    peer: RawPeer, service: EchoService
) -> None:
    held = KeyValue(key="orphan").SerializeToString()
    await peer.request(1, Request(service=SERVICE, method="Hold", payload=held))
    await peer.request(3, echo())
    await peer.response()  # the held call is running by now

    peer.writer.close()
    for _ in range(100):
        if service.cancelled:
            break
        await asyncio.sleep(0.01)

    assert service.cancelled == ["orphan"]
