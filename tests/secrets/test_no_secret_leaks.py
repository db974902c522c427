"""Credentials never appear in a log line, an error message or a store file.

Every pull path that carries credentials is run: the CLI with Basic auth over
TLS and with Bearer tokens (success, wrong password, missing repository), and
the image service in-process at DEBUG through a proxy that retries, resumes and
redirects blobs to another host. The password, its base64 form and every token
the registry saw are then searched for in everything sandpull said and wrote.
"""

from __future__ import annotations

import base64
import logging
import os
from pathlib import Path

import pytest
from aiohttp import web

from tests.cli.conftest import Cli
from tests.faults import proxy as f
from tests.faults.conftest import OpenStore, StartProxy, credentials_for
from tests.faults.proxy import FaultProxy, Rule
from tests.images.bigimage import big_image
from tests.registry.fault_server import StartServer
from tests.support.images import Image, push_image
from tests.support.registry_server import PASSWORD, USERNAME, RegistryServer

pytestmark = [pytest.mark.registry]

WRONG_PASSWORD = "wr0ng-but-still-secret"


def _static_secrets() -> list[str]:
    return [
        PASSWORD,
        WRONG_PASSWORD,
        base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode(),
        base64.b64encode(f"{USERNAME}:{WRONG_PASSWORD}".encode()).decode(),
    ]


def _tokens(proxy: FaultProxy) -> list[str]:
    values = {s.authorization for s in proxy.seen if s.authorization}
    tokens = [v.split(" ", 1)[1] for v in values]
    # A JWT's signature alone is enough to replay nothing, but it must not leak
    # either: search for each part of the token.
    return tokens + [part for t in tokens for part in t.split(".")[1:]]


def _leaks(texts: list[str], root: Path, secrets: list[str]) -> list[str]:
    found = [
        f"text {i} holds {s[:4]}…"
        for i, t in enumerate(texts)
        for s in secrets
        if s in t
    ]
    for parent, _, files in os.walk(root):
        for name in files:
            data = Path(parent, name).read_bytes()
            found += [
                f"{Path(parent, name)} holds {s[:4]}…"
                for s in secrets
                if s.encode() in data
            ]
    return found


@pytest.fixture(scope="module")
def image() -> Image:
    return big_image(2, 256 * 1024, seed=61)


@pytest.mark.parametrize("setup", ["registry_tls_basic", "registry_token"])
def test_cli_pulls_with_credentials_leak_nothing(
    request: pytest.FixtureRequest, tmp_path: Path, image: Image, setup: str
) -> None:
    server: RegistryServer = request.getfixturevalue(setup)
    pushed = push_image(server, "secret/app", "v1", image)
    cli = Cli(tmp_path / "store", server, tmp_path)
    args = cli.pull_args(pushed.ref)

    runs = [
        cli.run(*args, stdin=PASSWORD),
        cli.run(*args, stdin=WRONG_PASSWORD),
        cli.run(*cli.pull_args(f"{server.host}/secret/missing:v1"), stdin=PASSWORD),
        cli.run("images", "--json"),
        cli.run("check"),
    ]

    assert [r.returncode for r in runs[:3]] == [0, 16, runs[2].returncode]
    assert runs[2].returncode != 0
    texts = [r.stdout + r.stderr for r in runs]
    assert _leaks(texts, cli.root, _static_secrets()) == []


async def test_debug_logs_of_a_faulty_token_pull_leak_nothing(
    caplog: pytest.LogCaptureFixture,
    image: Image,
    registry_token: RegistryServer,
    start_proxy: StartProxy,
    open_store: OpenStore,
    fault_server: StartServer,
) -> None:
    push_image(registry_token, "secret/app", "v1", image)
    blobs = {str(x.digest): x.blob for x in image.layers}

    async def storage(request: web.Request) -> web.StreamResponse:
        return web.Response(body=blobs[request.path.rsplit("/", 1)[1]])

    bucket = await fault_server(storage)
    first, second = (rf"/blobs/{x.digest}$" for x in image.layers)
    proxy = await start_proxy(
        registry_token,
        [
            Rule("/manifests/", f.status(503), times=1),
            Rule(first, f.reset_at(100_000), times=1),
            Rule(second, f.redirect(lambda r: f"http://{bucket.host}{r.path}")),
        ],
    )
    store = open_store(proxy.host)
    credentials = credentials_for(registry_token, proxy.host)
    caplog.set_level(logging.DEBUG, logger="sandpull")

    await store.pull(f"{proxy.host}/secret/app:v1", credentials=credentials)
    with pytest.raises(Exception) as caught:
        await store.pull(f"{proxy.host}/secret/missing:v1", credentials=credentials)

    secrets = _static_secrets() + _tokens(proxy)
    assert len(secrets) > 4, "no token was seen, so none was searched for"
    texts = [r.getMessage() for r in caplog.records] + [str(caught.value)]
    texts += [repr(caught.value), repr(credentials)]
    assert _leaks(texts, store.root, secrets) == []
