"""Credential lookup: explicit, config.json auths (C38), credential helpers."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest

from sandpull.errors import InvalidArgument
from sandpull.oci import Reference
from sandpull.registry import Credential, CredentialStore, canonical_host


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def _store(tmp_path: Path, config: dict[str, object]) -> CredentialStore:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return CredentialStore(docker_config=path)


HUB_KEY = {"auths": {"https://index.docker.io/v1/": {"auth": _b64("hubuser:hubpass")}}}


@pytest.mark.parametrize(
    "reference",
    [
        pytest.param("registry-1.docker.io/u/private", id="C38 registry-1 spelling"),
        pytest.param("docker.io/u/private", id="C38 docker.io spelling"),
        pytest.param("index.docker.io/u/private", id="C38 index spelling"),
        pytest.param("u/private", id="C38 a short name"),
        pytest.param("alpine", id="C38 an official image"),
    ],
)
async def test_hub_credentials_serve_every_hub_spelling(
    tmp_path: Path, reference: str
) -> None:
    store = _store(tmp_path, HUB_KEY)

    got = await store.get(Reference.parse(reference).registry)

    assert got == Credential("hubuser", "hubpass")


@pytest.mark.parametrize(
    ("key", "registry", "found"),
    [
        pytest.param("10.3.10.88:5000", "10.3.10.88:5000", True,
                     id="C38 bare host:port"),
        pytest.param("https://10.3.10.88:5000", "10.3.10.88:5000", True,
                     id="C38 key with scheme"),
        pytest.param("http://10.3.10.88:5000/v2/", "10.3.10.88:5000", True,
                     id="C38 key with scheme and path"),
        pytest.param("docker.io", "docker.io", True, id="C38 podman-style hub key"),
        pytest.param("10.3.10.88:5000", "10.3.10.88", False,
                     id="C38 a host:port key does not serve the bare host"),
        pytest.param("10.3.10.88", "10.3.10.88:5000", False,
                     id="a bare host key does not serve host:port"),
        pytest.param("Registry.Example", "registry.example", True,
                     id="host names match regardless of case"),
    ],
)  # fmt: skip
async def test_auths_key_matching(
    tmp_path: Path, key: str, registry: str, found: bool
) -> None:
    store = _store(tmp_path, {"auths": {key: {"username": "u", "password": "p"}}})

    got = await store.get(registry)

    assert got == (Credential("u", "p") if found else None)


@pytest.mark.parametrize(
    ("key", "canonical"),
    [
        pytest.param("https://index.docker.io/v1/", "docker.io", id="hub v1 url"),
        pytest.param("registry-1.docker.io", "docker.io", id="hub api host"),
        pytest.param("http://host:5000/v2/", "host:5000", id="scheme and path dropped"),
    ],
)
def test_canonical_host(key: str, canonical: str) -> None:
    assert canonical_host(key) == canonical


async def test_explicit_credentials_win_over_the_docker_config(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(HUB_KEY))
    store = CredentialStore({"docker.io": Credential("me", "mine")}, docker_config=path)

    assert await store.get("registry-1.docker.io") == Credential("me", "mine")


async def test_identity_token_entry_is_kept(tmp_path: Path) -> None:
    store = _store(tmp_path, {"auths": {"r.example": {"identitytoken": "refresh"}}})

    got = await store.get("r.example")

    assert got is not None and got.identity_token == "refresh"


@pytest.mark.parametrize(
    ("auth", "message"),
    [
        pytest.param("not base64!", "want base64", id="auth that is not base64"),
        pytest.param(_b64("nocolon"), "want user:password", id="auth without a colon"),
    ],
)
async def test_bad_auth_is_refused(tmp_path: Path, auth: str, message: str) -> None:
    store = _store(tmp_path, {"auths": {"r.example": {"auth": auth}}})

    with pytest.raises(InvalidArgument, match=message):
        await store.get("r.example")


def test_repr_never_shows_the_password() -> None:
    assert "hunter2" not in repr(Credential("u", "hunter2", registry_token="hunter2"))


@pytest.fixture
def helper_on_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A docker-credential-test helper that knows one server and logs its input."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "helper.log"
    script = bin_dir / "docker-credential-test"
    script.write_text(
        "#!/bin/sh\n"
        f'read server; echo "$1 $server" >> {log}\n'
        'case "$server" in\n'
        '  https://index.docker.io/v1/) echo \'{"Username":"hub","Secret":"hs"}\';;\n'
        '  tok.example) echo \'{"Username":"<token>","Secret":"idt"}\';;\n'
        "  *) echo 'credentials not found in native keychain'; exit 1;;\n"
        "esac\n"
    )
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


@pytest.mark.parametrize(
    ("config", "registry", "expected"),
    [
        pytest.param({"credsStore": "test"}, "docker.io", Credential("hub", "hs"),
                     id="creds store is asked with the hub server url"),
        pytest.param({"credHelpers": {"tok.example": "test"}}, "tok.example",
                     Credential(identity_token="idt"),
                     id="a <token> username gives an identity token"),
        pytest.param({"credsStore": "test"}, "other.example", None,
                     id="credentials not found gives none"),
        pytest.param({"credHelpers": {"index.docker.io": "test"}}, "docker.io",
                     Credential("hub", "hs"),
                     id="a helper under another hub spelling serves the hub"),
    ],
)  # fmt: skip
async def test_credential_helpers(
    tmp_path: Path,
    helper_on_path: Path,
    config: dict[str, object],
    registry: str,
    expected: Credential | None,
) -> None:
    store = _store(tmp_path, config)

    got = await store.get(registry)

    assert got == expected
    assert helper_on_path.read_text().startswith("get ")
