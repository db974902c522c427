"""The registry fixtures: each setup starts, accepts pushes and enforces its auth."""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest

from sandpull.oci import Digest, mediatype
from tests.support.registry_server import RegistryServer


def _get(server: RegistryServer, path: str) -> int:
    # The registry serves an OCI manifest only to clients that accept it.
    request = urllib.request.Request(
        server.url + path, headers={"Accept": ", ".join(mediatype.MANIFEST_ACCEPT)}
    )
    try:
        with urllib.request.urlopen(
            request, timeout=10, context=server._ssl_context()
        ) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


@pytest.mark.registry
@pytest.mark.parametrize(
    ("fixture", "anonymous_status"),
    [
        pytest.param("registry_plain", 200, id="plain registry lets anyone read"),
        pytest.param("registry_tls_basic", 401, id="tls basic registry wants a login"),
        pytest.param("registry_token", 401, id="token registry wants a token"),
    ],
)
def test_fixture_accepts_a_pushed_image_and_guards_reads(
    request: pytest.FixtureRequest, fixture: str, anonymous_status: int
) -> None:
    server: RegistryServer = request.getfixturevalue(fixture)

    digest, data = server.push_image("fixture/smoke", "v1", [b"layer bytes"])

    assert digest == Digest.of(data)
    assert json.loads(data)["mediaType"] == mediatype.OCI_MANIFEST
    assert _get(server, f"/v2/fixture/smoke/manifests/{digest}") == anonymous_status


@pytest.mark.registry
def test_token_server_records_the_push_scope_and_the_user(
    registry_token: RegistryServer,
) -> None:
    assert registry_token.token_server is not None

    registry_token.push_blob("fixture/scope", b"scoped")

    seen = registry_token.token_server.requests[-1]
    assert seen.scopes == ("repository:fixture/scope:pull,push",)
    assert (seen.username, seen.granted) == ("sandpull", True)
