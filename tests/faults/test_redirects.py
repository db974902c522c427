"""Blob redirects from the proxy: to another host, and from https down to http."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from aiohttp import web

from sandpull.errors import PermissionDenied
from tests.faults import proxy as f
from tests.faults.conftest import OpenStore, StartProxy
from tests.faults.proxy import Rule
from tests.images.bigimage import big_image
from tests.registry.fault_server import StartServer
from tests.support.images import Image, push_image
from tests.support.registry_server import (
    RegistryServer,
    make_ca,
    make_server_cert,
)

pytestmark = [pytest.mark.registry]


@pytest.fixture(scope="module")
def token_image(registry_token: RegistryServer) -> Image:
    image = big_image(2, 256 * 1024, seed=51)
    push_image(registry_token, "redirect/app", "v1", image)
    return image


async def test_c36_redirect_to_another_host_drops_the_credentials(
    token_image: Image,
    registry_token: RegistryServer,
    start_proxy: StartProxy,
    open_store: OpenStore,
    fault_server: StartServer,
) -> None:
    blobs = {str(x.digest): x.blob for x in token_image.layers}

    async def storage_handler(request: web.Request) -> web.StreamResponse:
        return web.Response(body=blobs[request.path.rsplit("/", 1)[1]])

    storage = await fault_server(storage_handler)
    to_storage = f.redirect(lambda r: f"http://{storage.host}/bucket/{r.path}")
    proxy = await start_proxy(registry_token, [Rule(r"/blobs/sha256:", to_storage)])
    proxy.rules[0].path = "|".join(f"/blobs/{d}$" for d in blobs)
    store = open_store(proxy.host)

    pulled = await store.pull(
        f"{proxy.host}/redirect/app:v1", credentials=_credentials(proxy.host)
    )

    assert pulled.image_id == token_image.config_digest
    assert len(storage.seen) == len(blobs)
    assert storage.headers("Authorization") == [None] * len(blobs)
    assert any(s.authorization for s in proxy.seen), "the registry saw no token"


async def test_c37_redirect_from_https_to_http_is_refused(
    tmp_path: Path,
    registry_plain: RegistryServer,
    start_proxy: StartProxy,
    open_store: OpenStore,
) -> None:
    image = big_image(1, 64 * 1024, seed=52)
    push_image(registry_plain, "redirect/plain", "v1", image)
    context, ca = _tls(tmp_path)
    down = f.redirect(lambda r: f"http://{registry_plain.host}{r.path}")
    layer = image.layers[0].digest
    proxy = await start_proxy(
        registry_plain, [Rule(rf"/blobs/{layer}$", down)], ssl_context=context
    )
    certs_dir = tmp_path / "certs.d"
    (certs_dir / proxy.host).mkdir(parents=True)
    (certs_dir / proxy.host / "ca.crt").write_bytes(ca.read_bytes())
    store = open_store(proxy.host, insecure=False, certs_dir=certs_dir)

    with pytest.raises(PermissionDenied) as caught:
        await store.pull(f"{proxy.host}/redirect/plain:v1")

    message = str(caught.value)
    assert "refusing redirect from https to http" in message
    assert proxy.host in message and layer.hex[:12] in message
    assert store.list_images() == []
    assert store.check().clean


def _credentials(host: str) -> object:
    from sandpull.registry import Credential, CredentialStore
    from tests.support.registry_server import PASSWORD, USERNAME

    explicit = {host: Credential(username=USERNAME, password=PASSWORD)}
    return CredentialStore(explicit=explicit, use_docker_config=False)


def _tls(tmp_path: Path) -> tuple[ssl.SSLContext, Path]:
    ca = make_ca(tmp_path)
    cert, key = make_server_cert(tmp_path, ca)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context, ca[0]
