"""The client against the real distribution registry, in all three setups."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from sandpull.errors import NotFound, Unauthenticated, VerificationError
from sandpull.oci import Descriptor, Digest, Reference, mediatype
from sandpull.registry import (
    Credential,
    CredentialStore,
    RegistriesConfig,
    RegistryClient,
    RetryPolicy,
)
from tests.support.registry_server import RegistryServer

pytestmark = pytest.mark.registry

LAYER = bytes(range(256)) * 700  # 179,200 bytes: several chunks
FAST = RetryPolicy(attempts=2, initial_delay=0.01, max_delay=0.02)


def _client(
    server: RegistryServer, password: str | None = None, **kw: object
) -> RegistryClient:
    credentials = None
    if server.username is not None:
        secret = server.password if password is None else password
        credentials = CredentialStore(
            {server.host: Credential(server.username, secret)}, use_docker_config=False
        )
    return RegistryClient(
        config=RegistriesConfig(),
        credentials=credentials,
        certs_dir=server.certs_dir,
        retry=FAST,
        **kw,  # type: ignore[arg-type]
    )


def _layer_desc(digest: Digest) -> Descriptor:
    return Descriptor(mediatype.OCI_LAYER_GZIP, digest, len(LAYER))


@pytest.fixture(params=["registry_plain", "registry_tls_basic", "registry_token"])
def server(request: pytest.FixtureRequest) -> RegistryServer:
    value: RegistryServer = request.getfixturevalue(request.param)
    return value


async def test_resolve_by_tag_then_by_digest_returns_the_pushed_manifest(
    server: RegistryServer,
) -> None:
    digest, data = server.push_image("client/resolve", "v1", [LAYER])

    async with _client(server) as client:
        by_tag = await client.resolve(
            Reference.parse(f"{server.host}/client/resolve:v1")
        )
        by_digest = await client.resolve(
            Reference.parse(f"{server.host}/client/resolve@{digest}")
        )

    assert by_tag.data == data == by_digest.data
    assert by_tag.descriptor == Descriptor(mediatype.OCI_MANIFEST, digest, len(data))
    assert by_tag.endpoint == server.host


async def test_get_manifest_config_and_layer_are_verified_bytes(
    server: RegistryServer,
) -> None:
    config = b'{"architecture":"amd64","os":"linux"}'
    digest, data = server.push_image("client/get", "v1", [LAYER], config=config)
    ref = Reference.parse(f"{server.host}/client/get:v1")
    manifest = json.loads(data)

    async with _client(server) as client:
        got = await client.get_manifest(
            ref, Descriptor(mediatype.OCI_MANIFEST, digest, len(data))
        )
        got_config = await client.get_blob_bytes(
            ref, Descriptor.from_json(manifest["config"]), max_size=1024
        )
        layer_desc = Descriptor.from_json(manifest["layers"][0])
        async with client.open_blob(ref, layer_desc) as stream:
            layer = b"".join([chunk async for chunk in stream])

    assert (got, got_config, layer) == (data, config, LAYER)


@pytest.mark.parametrize(
    "offset",
    [
        pytest.param(0, id="from the start"),
        pytest.param(1, id="from the second byte"),
        pytest.param(100_000, id="from the middle"),
        pytest.param(len(LAYER) - 1, id="only the last byte"),
        pytest.param(len(LAYER), id="nothing at the very end"),
    ],
)
async def test_open_blob_at_an_offset_yields_the_rest(
    registry_plain: RegistryServer, offset: int
) -> None:
    digest = registry_plain.push_blob("client/range", LAYER)
    ref = Reference.parse(f"{registry_plain.host}/client/range:x")

    client = _client(registry_plain)
    async with client, client.open_blob(ref, _layer_desc(digest), offset) as stream:
        rest = b"".join([chunk async for chunk in stream])

    assert rest == LAYER[offset:]


async def test_a_blob_shorter_than_its_descriptor_is_an_error(
    registry_plain: RegistryServer,
) -> None:
    digest = registry_plain.push_blob("client/short", LAYER)
    ref = Reference.parse(f"{registry_plain.host}/client/short:x")
    desc = Descriptor(mediatype.OCI_LAYER_GZIP, digest, len(LAYER) + 10)

    async with _client(registry_plain) as client:
        with pytest.raises(
            VerificationError, match=r"body ended at byte 179200|shorter than expected"
        ):
            async with client.open_blob(ref, desc) as stream:
                async for _ in stream:
                    pass


async def test_a_blob_longer_than_its_descriptor_is_an_error(
    registry_plain: RegistryServer,
) -> None:
    digest = registry_plain.push_blob("client/long", LAYER)
    ref = Reference.parse(f"{registry_plain.host}/client/long:x")
    desc = Descriptor(mediatype.OCI_LAYER_GZIP, digest, len(LAYER) - 1)

    async with _client(registry_plain) as client:
        with pytest.raises(VerificationError, match="body longer than its size"):
            async with client.open_blob(ref, desc) as stream:
                async for _ in stream:
                    pass


async def test_unknown_tag_is_not_found_naming_registry_and_repository(
    server: RegistryServer,
) -> None:
    server.push_image("client/missing", "v1", [b"x"])
    ref = Reference.parse(f"{server.host}/client/missing:nope")

    async with _client(server) as client:
        with pytest.raises(NotFound, match=f"{server.host}/client/missing: not found"):
            await client.resolve(ref)


@pytest.mark.parametrize(
    "fixture",
    [
        pytest.param("registry_tls_basic", id="basic auth rejects a wrong password"),
        pytest.param("registry_token", id="token service rejects a wrong password"),
    ],
)
async def test_wrong_password_is_unauthenticated_without_leaking_it(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    server: RegistryServer = request.getfixturevalue(fixture)
    server.push_image("client/private", "v1", [b"x"])
    ref = Reference.parse(f"{server.host}/client/private:v1")

    async with _client(server, password="wrong-password-123") as client:
        with pytest.raises(Unauthenticated) as caught:
            await client.resolve(ref)

    assert "wrong-password-123" not in str(caught.value)


async def test_token_server_saw_the_pull_scope_with_basic_credentials(
    registry_token: RegistryServer,
) -> None:
    assert registry_token.token_server is not None
    registry_token.push_image("client/scoped", "v1", [b"x"])
    seen = registry_token.token_server.requests
    before = len(seen)

    async with _client(registry_token) as client:
        await client.resolve(Reference.parse(f"{registry_token.host}/client/scoped:v1"))

    assert [(r.scopes, r.username) for r in seen[before:]] == [
        (("repository:client/scoped:pull",), "sandpull")
    ]


async def test_anonymous_pull_of_a_public_repository_gets_an_anonymous_token(
    registry_token: RegistryServer,
) -> None:
    assert registry_token.token_server is not None
    digest, _ = registry_token.push_image("public/app", "v1", [b"x"])
    client = RegistryClient(config=RegistriesConfig(), retry=FAST)

    async with client:
        got = await client.resolve(
            Reference.parse(f"{registry_token.host}/public/app:v1")
        )

    assert got.descriptor.digest == digest
    assert registry_token.token_server.requests[-1].username is None


async def test_anonymous_pull_of_a_private_repository_is_unauthenticated(
    registry_token: RegistryServer,
) -> None:
    registry_token.push_image("client/closed", "v1", [b"x"])
    client = RegistryClient(config=RegistriesConfig(), retry=FAST)

    async with client:
        with pytest.raises(Unauthenticated, match="client/closed"):
            await client.resolve(
                Reference.parse(f"{registry_token.host}/client/closed:v1")
            )


async def test_tls_registry_without_its_ca_is_refused(
    registry_tls_basic: RegistryServer, tmp_path: object
) -> None:
    registry_tls_basic.push_image("client/tls", "v1", [b"x"])
    client = RegistryClient(config=RegistriesConfig(), certs_dir=None, retry=FAST)

    async with client:
        with pytest.raises(Exception, match="verify tls certificate"):
            await client.resolve(
                Reference.parse(f"{registry_tls_basic.host}/client/tls:v1")
            )


async def test_every_byte_is_counted_for_the_registry_and_reference(
    server: RegistryServer,
) -> None:
    server.push_image("client/count", "v1", [LAYER])
    ref = Reference.parse(f"{server.host}/client/count:v1")
    counted: Counter[tuple[str, str]] = Counter()

    def on_bytes(host: str, reference: str, n: int) -> None:
        counted[(host, reference)] += n

    async with _client(server, on_bytes=on_bytes) as client:
        fetched = await client.resolve(ref)
        layer = Descriptor.from_json(json.loads(fetched.data)["layers"][0])
        async with client.open_blob(ref, layer) as stream:
            async for _ in stream:
                pass

    assert list(counted) == [(server.host, str(ref))]
    assert counted[(server.host, str(ref))] > len(fetched.data) + len(LAYER)


async def test_ping_reaches_the_v2_endpoint_and_reads_its_api_version(
    server: RegistryServer,
) -> None:
    async with _client(server) as client:
        version = await client.ping(Reference.parse(f"{server.host}/client/ping:v1"))

    assert version == "registry/2.0"


async def test_ping_with_a_wrong_password_is_unauthenticated(
    server: RegistryServer,
) -> None:
    if server.username is None:
        pytest.skip("this setup has no credentials")
    async with _client(server, password="wrong") as client:
        with pytest.raises(Unauthenticated):
            await client.ping(Reference.parse(f"{server.host}/client/ping:v1"))


async def test_head_manifest_describes_the_manifest_without_its_body(
    server: RegistryServer,
) -> None:
    digest, data = server.push_image("client/head", "v1", [LAYER])

    async with _client(server) as c:
        by_tag = await c.head_manifest(Reference.parse(f"{server.host}/client/head:v1"))
        missing = c.head_manifest(Reference.parse(f"{server.host}/client/head:nope"))
        with pytest.raises(NotFound):
            await missing

    assert by_tag == Descriptor(mediatype.OCI_MANIFEST, digest, len(data))
