"""The client against the sandpull server: concurrency, errors, deadlines."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandpull import errors
from sandpull.api.ttrpc_pb2 import KeyValue, Response, Status
from sandpull.errors import Code
from sandpull.ttrpc import Client, MessageType, Server, error_for_status
from sandpull.ttrpc.frame import HEADER, MAX_MESSAGE_SIZE, Frame
from tests.ttrpc.conftest import SERVICE, EchoService


@pytest.fixture
async def client(server_path: str) -> AsyncIterator[Client]:
    async with await Client.connect_unix(server_path) as client:
        yield client


async def call(
    client: Client, method: str, key: str, value: str = "", **kw: object
) -> KeyValue:
    request = KeyValue(key=key, value=value)
    return await client.call(SERVICE, method, request, KeyValue, **kw)  # type: ignore[arg-type]


async def test_many_concurrent_calls_each_get_their_own_reply(client: Client) -> None:
    keys = [f"call-{i}" for i in range(200)]

    replies = await asyncio.gather(*(call(client, "Echo", k) for k in keys))

    assert [r.key for r in replies] == keys


async def test_replies_out_of_order_reach_the_right_callers(
    client: Client, service: EchoService
) -> None:
    names = ["a", "b", "c", "d"]
    for name in names:
        service.gates[name] = asyncio.Event()
    calls = [asyncio.create_task(call(client, "Hold", n)) for n in names]
    await call(client, "Echo", "barrier")  # every Hold has been dispatched

    for name in reversed(names):
        service.gates[name].set()
        await asyncio.sleep(0)
    replies = await asyncio.gather(*calls)

    assert [r.key for r in replies] == names


async def test_stream_ids_are_odd_and_increasing(
    client: Client, service: EchoService
) -> None:
    for key in "xyz":
        await call(client, "Echo", key)

    assert [ctx.stream_id for ctx in service.contexts] == [1, 3, 5]


@pytest.mark.parametrize(
    ("raised", "caught", "code"),
    [
        ("InvalidArgument", errors.InvalidArgument, Code.INVALID_ARGUMENT),
        ("UnsupportedError", errors.UnsupportedError, Code.UNIMPLEMENTED),
        ("NotFound", errors.NotFound, Code.NOT_FOUND),
        ("AlreadyExists", errors.AlreadyExists, Code.ALREADY_EXISTS),
        ("FailedPrecondition", errors.FailedPrecondition, Code.FAILED_PRECONDITION),
        ("VerificationError", errors.VerificationError, Code.DATA_LOSS),
        ("HostileEntryError", errors.VerificationError, Code.DATA_LOSS),
        ("Unauthenticated", errors.Unauthenticated, Code.UNAUTHENTICATED),
        ("PermissionDenied", errors.PermissionDenied, Code.PERMISSION_DENIED),
        ("ResourceExhausted", errors.ResourceExhausted, Code.RESOURCE_EXHAUSTED),
        ("DeadlineExceeded", errors.DeadlineExceeded, Code.DEADLINE_EXCEEDED),
        ("Unavailable", errors.Unavailable, Code.UNAVAILABLE),
        ("SandpullError", errors.SandpullError, Code.UNKNOWN),
        ("ValueError", errors.SandpullError, Code.UNKNOWN),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
async def test_handler_error_comes_back_as_the_same_category(
    client: Client, raised: str, caught: type[errors.SandpullError], code: Code
) -> None:
    with pytest.raises(caught) as info:
        await call(client, "Fail", raised, f"get image x: {raised} here")

    assert info.value.code == code
    assert str(info.value) == f"get image x: {raised} here"


async def test_unimplemented_method_raises_unsupported(client: Client) -> None:
    with pytest.raises(errors.UnsupportedError, match="method Missing"):
        await call(client, "Missing", "k")


async def test_internal_status_keeps_its_code(client: Client) -> None:
    # Field 2 of KeyValue is a string: invalid UTF-8 there cannot be decoded.
    not_utf8 = Response(payload=b"\xff")

    with pytest.raises(errors.SandpullError) as info:
        await client.call(SERVICE, "Echo", not_utf8, KeyValue)

    assert info.value.code == Code.INTERNAL
    assert str(info.value).startswith("ttrpc: error unmarshalling payload")


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        pytest.param(1, Code.CANCELLED, id="cancelled keeps code 1"),
        pytest.param(10, Code.ABORTED, id="aborted keeps code 10"),
        pytest.param(11, Code.OUT_OF_RANGE, id="out of range keeps code 11"),
        pytest.param(13, Code.INTERNAL, id="internal keeps code 13"),
        pytest.param(99, Code.UNKNOWN, id="a code gRPC does not define is unknown"),
    ],
)
def test_status_without_a_class_becomes_a_plain_error(
    code: int, expected: Code
) -> None:
    error = error_for_status(Status(code=code, message="m"))

    assert type(error) is errors.SandpullError
    assert (error.code, str(error)) == (expected, "m")


async def test_timeout_is_sent_and_server_answers_deadline_exceeded(
    client: Client, service: EchoService
) -> None:
    with pytest.raises(errors.DeadlineExceeded):
        await call(client, "Hold", "stuck", timeout=0.05)

    await call(client, "Echo", "barrier")
    assert service.cancelled == ["stuck"]


async def test_metadata_is_sent(client: Client, service: EchoService) -> None:
    await call(client, "Echo", "m", metadata=[("containerd-namespace-ttrpc", "ns1")])

    assert service.contexts[-1].get("containerd-namespace-ttrpc") == "ns1"


async def test_oversized_request_is_refused_before_sending(client: Client) -> None:
    with pytest.raises(errors.ResourceExhausted, match="maximum message size"):
        await call(client, "Echo", "x" * MAX_MESSAGE_SIZE)

    assert (await call(client, "Echo", "after")).key == "after"


async def test_connecting_to_a_missing_socket_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(errors.Unavailable, match="connect to ttrpc server"):
        await Client.connect_unix(str(tmp_path / "absent.sock"))


async def test_server_closing_fails_calls_in_flight(socket_dir: Path) -> None:
    server = Server()
    service = EchoService()
    server.register(SERVICE, service.methods())
    path = str(socket_dir / "closing.sock")
    await server.listen_unix(path)
    client = await Client.connect_unix(path)
    pending = asyncio.create_task(call(client, "Hold", "forever"))
    await call(client, "Echo", "barrier")

    await server.close()

    with pytest.raises(errors.Unavailable):
        await pending
    with pytest.raises(errors.Unavailable):
        await call(client, "Echo", "later")
    await client.close()


async def test_peer_closing_mid_response_fails_the_call(socket_dir: Path) -> None:
    async def half_answer(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        header = HEADER.unpack(await reader.readexactly(10))
        await reader.readexactly(header[0])
        writer.write(HEADER.pack(50, header[1], MessageType.RESPONSE, 0) + b"\x12")
        await writer.drain()
        writer.close()

    path = str(socket_dir / "half.sock")
    listener = await asyncio.start_unix_server(half_answer, path=path)
    async with await Client.connect_unix(path) as client:
        with pytest.raises(errors.Unavailable, match="peer closed after 1 of 50"):
            await call(client, "Echo", "k")
    listener.close()


async def test_response_of_wrong_type_fails_the_call(socket_dir: Path) -> None:
    async def answer_with_request(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        header = HEADER.unpack(await reader.readexactly(10))
        await reader.readexactly(header[0])
        writer.write(Frame(header[1], MessageType.REQUEST, b"").encode())
        await writer.drain()

    path = str(socket_dir / "wrong.sock")
    listener = await asyncio.start_unix_server(answer_with_request, path=path)
    async with await Client.connect_unix(path) as client:
        with pytest.raises(errors.InvalidArgument, match="message type 1, want 2"):
            await call(client, "Echo", "k")
    listener.close()
