"""The client against a scripted server: faults a real registry cannot produce."""

from __future__ import annotations

import hashlib
import json
import ssl
from pathlib import Path

import pytest
from aiohttp import web

from sandpull.errors import (
    DeadlineExceeded,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    UnsupportedError,
    VerificationError,
)
from sandpull.oci import Descriptor, Digest, Reference, mediatype
from sandpull.registry import (
    Credential,
    CredentialStore,
    RegistriesConfig,
    RegistryClient,
    RetryPolicy,
)
from tests.registry.fault_server import StartServer

FAST = RetryPolicy(attempts=4, initial_delay=0.001, max_delay=0.002)
MANIFEST = json.dumps(
    {"schemaVersion": 2, "mediaType": mediatype.OCI_MANIFEST}
).encode()
MANIFEST_DIGEST = Digest.of(MANIFEST)
BLOB = bytes(range(256)) * 4096  # 1 MiB
BLOB_DESC = Descriptor(mediatype.OCI_LAYER_GZIP, Digest.of(BLOB), len(BLOB))


def _client(**kwargs: object) -> RegistryClient:
    kwargs.setdefault("config", RegistriesConfig())
    kwargs.setdefault("retry", FAST)
    return RegistryClient(**kwargs)  # type: ignore[arg-type]


def _manifest(headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=MANIFEST,
        headers={"Content-Type": mediatype.OCI_MANIFEST, **(headers or {})},
    )


async def _read(client: RegistryClient, ref: Reference, desc: Descriptor) -> bytes:
    async with client.open_blob(ref, desc) as stream:
        return b"".join([chunk async for chunk in stream])


# --- rate limits and server errors (C39) -----------------------------------------


async def test_c39_rate_limit_is_retried_honouring_retry_after(
    fault_server: StartServer,
) -> None:
    answers = iter([429, 503, 200])

    async def handler(request: web.Request) -> web.StreamResponse:
        status = next(answers)
        if status != 200:
            return web.Response(status=status, headers={"Retry-After": "0"})
        return _manifest()

    server = await fault_server(handler)
    async with _client() as client:
        got = await client.resolve(Reference.parse(f"{server.host}/app:v1"))

    assert got.descriptor.digest == MANIFEST_DIGEST
    assert len(server.seen) == 3


async def test_c39_persistent_rate_limit_is_a_clear_error(
    fault_server: StartServer,
) -> None:
    body = {"errors": [{"code": "TOOMANYREQUESTS", "message": "slow down"}]}

    async def handler(request: web.Request) -> web.StreamResponse:
        return web.json_response(body, status=429, headers={"Retry-After": "0"})

    server = await fault_server(handler)
    async with _client() as client:
        with pytest.raises(ResourceExhausted) as caught:
            await client.resolve(Reference.parse(f"{server.host}/app:v1"))

    assert str(caught.value) == (
        f"get manifest v1 from {server.host}/app: rate limited (429): "
        "TOOMANYREQUESTS slow down"
    )
    assert len(server.seen) == FAST.attempts


# --- digests of manifests (C30, C31, C32) ----------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(None, id="C31A no Docker-Content-Digest header"),
        pytest.param(MANIFEST_DIGEST.hex, id="C31B a header without algorithm"),
        pytest.param("sha256:" + "0" * 64, id="C31C a header that lies"),
    ],
)
async def test_c31_by_tag_the_digest_of_the_bytes_is_authoritative(
    fault_server: StartServer, header: str | None
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _manifest({"Docker-Content-Digest": header} if header else {})

    server = await fault_server(handler)
    async with _client() as client:
        got = await client.resolve(Reference.parse(f"{server.host}/app:v1"))

    assert got.descriptor == Descriptor(
        mediatype.OCI_MANIFEST, MANIFEST_DIGEST, len(MANIFEST)
    )


async def test_c32_by_digest_a_different_manifest_is_refused(
    fault_server: StartServer,
) -> None:
    wanted = "sha256:" + "de" * 32

    async def handler(request: web.Request) -> web.StreamResponse:
        return _manifest({"Docker-Content-Digest": wanted})

    server = await fault_server(handler)
    async with _client() as client:
        with pytest.raises(VerificationError, match="manifest verification failed"):
            await client.resolve(Reference.parse(f"{server.host}/app@{wanted}"))


async def test_c30_by_sha512_the_body_is_hashed_with_sha512(
    fault_server: StartServer,
) -> None:
    sha512 = Digest("sha512", hashlib.sha512(MANIFEST).hexdigest())

    async def handler(request: web.Request) -> web.StreamResponse:
        return _manifest({"Docker-Content-Digest": str(MANIFEST_DIGEST)})

    server = await fault_server(handler)
    async with _client() as client:
        got = await client.resolve(Reference.parse(f"{server.host}/app@{sha512}"))

    assert got.descriptor.digest == sha512
    assert server.seen[0].path == f"/v2/app/manifests/{sha512}"


async def test_get_manifest_refuses_a_body_longer_than_the_descriptor(
    fault_server: StartServer,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        return _manifest()

    server = await fault_server(handler)
    desc = Descriptor(mediatype.OCI_MANIFEST, MANIFEST_DIGEST, len(MANIFEST) - 1)
    async with _client() as client:
        with pytest.raises(Exception, match="larger than"):
            await client.get_manifest(Reference.parse(f"{server.host}/app:v1"), desc)


# --- resumable blobs --------------------------------------------------------------


def _cut_then_serve(full_on_resume: bool) -> web.RequestHandler:  # type: ignore[type-arg]
    async def handler(request: web.Request) -> web.StreamResponse:
        first = not request.headers.get("Range")
        if first:
            response = web.StreamResponse(headers={"Content-Length": str(len(BLOB))})
            await response.prepare(request)
            await response.write(BLOB[:300_001])
            assert request.transport is not None
            request.transport.close()
            return response
        if full_on_resume:
            return web.Response(body=BLOB)
        start = int(request.headers["Range"].removeprefix("bytes=").rstrip("-"))
        return web.Response(
            status=206,
            body=BLOB[start:],
            headers={"Content-Range": f"bytes {start}-{len(BLOB) - 1}/{len(BLOB)}"},
        )

    return handler


@pytest.mark.parametrize(
    "full_on_resume",
    [
        pytest.param(False, id="a dropped body resumes with a range request"),
        pytest.param(True, id="a 200 to the range request skips bytes already read"),
    ],
)
async def test_a_dropped_blob_body_resumes(
    fault_server: StartServer, full_on_resume: bool
) -> None:
    server = await fault_server(_cut_then_serve(full_on_resume))

    async with _client() as client:
        got = await _read(client, Reference.parse(f"{server.host}/app:v1"), BLOB_DESC)

    assert got == BLOB
    ranges = server.headers("Range")
    assert ranges[0] is None and ranges[1] is not None
    assert int(ranges[1].removeprefix("bytes=").rstrip("-")) >= 300_001 - 2**18


async def test_a_content_range_after_the_asked_offset_is_refused(
    fault_server: StartServer,
) -> None:
    async def handler(request: web.Request) -> web.StreamResponse:
        content_range = f"bytes 20-{len(BLOB) - 1}/*"
        return web.Response(
            status=206, body=BLOB[20:], headers={"Content-Range": content_range}
        )

    server = await fault_server(handler)
    async with _client() as client:
        with pytest.raises(VerificationError, match="asked for bytes from 10"):
            async with client.open_blob(
                Reference.parse(f"{server.host}/app:v1"), BLOB_DESC, offset=10
            ) as stream:
                async for _ in stream:
                    pass


async def test_a_blob_that_stops_sending_raises_deadline_exceeded(
    fault_server: StartServer,
) -> None:
    import asyncio

    async def handler(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Length": str(len(BLOB))})
        await response.prepare(request)
        await response.write(BLOB[:10])
        await asyncio.sleep(30)
        return response

    server = await fault_server(handler)
    async with _client(progress_timeout=0.3) as client:
        with pytest.raises(DeadlineExceeded, match="no data received"):
            await _read(client, Reference.parse(f"{server.host}/app:v1"), BLOB_DESC)


@pytest.mark.parametrize(
    "desc",
    [
        pytest.param(
            Descriptor(mediatype.DOCKER_FOREIGN_LAYER, Digest.of(b"x"), 1,
                       urls=("https://go.microsoft.com/fwlink/?linkid=1",)),
            id="C29 a foreign layer with urls is refused before any request",
        ),
        pytest.param(
            Descriptor(mediatype.OCI_LAYER_NONDIST_GZIP, Digest.of(b"x"), 1),
            id="a non-distributable layer is refused before any request",
        ),
    ],
)  # fmt: skip
async def test_c29_foreign_layers_are_not_supported(desc: Descriptor) -> None:
    async with _client() as client:
        with pytest.raises(UnsupportedError, match="foreign layer not supported"):
            client.open_blob(Reference.parse("127.0.0.1:1/app:v1"), desc)


# --- auth (C33, C35) and redirects (C36, C37) ---------------------------------------


async def test_c33_c35_realm_only_challenge_and_stale_token_without_challenge(
    fault_server: StartServer,
) -> None:
    issued: list[str] = []

    async def handler(request: web.Request) -> web.StreamResponse:
        if request.path == "/token":
            issued.append(f"t{len(issued) + 1}")
            return web.json_response({"access_token": issued[-1]})
        auth = request.headers.get("Authorization")
        if auth is None:
            realm = f"http://{request.host}/token"
            return web.Response(
                status=401, headers={"WWW-Authenticate": f'Bearer realm="{realm}"'}
            )
        if auth == "Bearer t1" and request.path.endswith("/v2"):
            return web.Response(status=403)  # expired, and no challenge (ECR style)
        return _manifest()

    server = await fault_server(handler)
    async with _client() as client:
        await client.resolve(Reference.parse(f"{server.host}/app:v1"))
        await client.resolve(Reference.parse(f"{server.host}/app:v2"))

    assert [(r.path, r.headers.get("Authorization")) for r in server.seen] == [
        ("/v2/app/manifests/v1", None),
        ("/token", None),
        ("/v2/app/manifests/v1", "Bearer t1"),
        ("/v2/app/manifests/v2", "Bearer t1"),
        ("/v2/app/manifests/v2", None),
        ("/token", None),
        ("/v2/app/manifests/v2", "Bearer t2"),
    ]
    assert dict(server.seen[1].query) == {"scope": "repository:app:pull"}


async def test_c36_authorization_is_dropped_on_a_redirect_to_another_host(
    fault_server: StartServer,
) -> None:
    async def storage(request: web.Request) -> web.StreamResponse:
        return web.Response(body=BLOB)

    bucket = await fault_server(storage, hostname="localhost")

    async def registry(request: web.Request) -> web.StreamResponse:
        if request.headers.get("Authorization") is None:
            return web.Response(
                status=401, headers={"WWW-Authenticate": 'Basic realm="r"'}
            )
        location = f"http://{bucket.host}/blob?X-Amz-Signature=abc"
        return web.Response(status=307, headers={"Location": location})

    server = await fault_server(registry)
    credentials = CredentialStore({server.host: Credential("u", "p")},
                                  use_docker_config=False)  # fmt: skip
    async with _client(credentials=credentials) as client:
        got = await _read(client, Reference.parse(f"{server.host}/app:v1"), BLOB_DESC)

    assert got == BLOB
    assert server.headers("Authorization")[-1] is not None
    assert bucket.headers("Authorization") == [None]


async def test_c37_a_redirect_from_https_to_http_is_refused(
    fault_server: StartServer, tmp_path: Path
) -> None:
    from tests.support.registry_server import make_ca, make_server_cert

    ca = make_ca(tmp_path)
    cert, key = make_server_cert(tmp_path, ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)

    async def handler(request: web.Request) -> web.StreamResponse:
        location = f"http://{request.host}/v2/app/manifests/v1"
        return web.Response(status=301, headers={"Location": location})

    server = await fault_server(handler, ssl_context=context)
    (tmp_path / "certs.d" / server.host).mkdir(parents=True)
    (tmp_path / "certs.d" / server.host / "ca.crt").write_bytes(ca[0].read_bytes())
    async with _client(certs_dir=tmp_path / "certs.d") as client:
        with pytest.raises(
            PermissionDenied, match="refusing redirect from https to http"
        ):
            await client.resolve(Reference.parse(f"{server.host}/app:v1"))

    assert len(server.seen) == 1


# --- mirrors (C40) ------------------------------------------------------------------


@pytest.mark.parametrize(
    "mirror_status",
    [
        pytest.param(503, id="C40 a mirror answering 503 falls back to upstream"),
        pytest.param(404, id="C40 a mirror answering 404 falls back to upstream"),
    ],
)
async def test_c40_mirror_failure_falls_back_to_the_next_endpoint(
    fault_server: StartServer, mirror_status: int
) -> None:
    async def failing(request: web.Request) -> web.StreamResponse:
        return web.Response(status=mirror_status)

    async def upstream(request: web.Request) -> web.StreamResponse:
        return _manifest()

    mirror = await fault_server(failing)
    origin = await fault_server(upstream)
    config = RegistriesConfig.parse(
        f'[[registry]]\nlocation = "{origin.host}"\n'
        f'[[registry.mirror]]\nlocation = "{mirror.host}"\n'
    )
    async with _client(config=config) as client:
        got = await client.resolve(Reference.parse(f"{origin.host}/app:v1"))

    assert got.endpoint == origin.host
    assert mirror.seen and origin.seen


async def test_c40_only_the_last_endpoint_error_is_raised(
    fault_server: StartServer,
) -> None:
    async def failing(request: web.Request) -> web.StreamResponse:
        return web.Response(status=503)

    async def missing(request: web.Request) -> web.StreamResponse:
        return web.Response(status=404)

    mirror = await fault_server(failing)
    origin = await fault_server(missing)
    config = RegistriesConfig.parse(
        f'[[registry]]\nlocation = "{origin.host}"\n'
        f'[[registry.mirror]]\nlocation = "{mirror.host}"\n'
    )
    async with _client(config=config) as client:
        with pytest.raises(NotFound, match=f"{origin.host}/app: not found"):
            await client.resolve(Reference.parse(f"{origin.host}/app:v1"))
