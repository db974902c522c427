"""Registry credentials: explicit ones, Docker's ``config.json`` and credential helpers.

Lookup order for a registry host: explicit credentials, ``credHelpers[host]``,
``credsStore``, then ``auths``. Keys are matched after stripping scheme and path; every
spelling of Docker Hub serves Docker Hub; ``host:port`` must match exactly.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandpull.errors import InvalidArgument, Unauthenticated

log = logging.getLogger(__name__)

HUB = "docker.io"
HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io"})
#: The server URL Docker stores Hub credentials under.
HUB_SERVER_URL = "https://index.docker.io/v1/"
_HELPER_TIMEOUT = 30.0
_HELPER_OUTPUT_LIMIT = 64 * 1024


@dataclass(frozen=True)
class Credential:
    """What to authenticate with; ``repr`` never shows a secret."""

    username: str | None = None
    password: str | None = None
    identity_token: str | None = None
    registry_token: str | None = None

    @classmethod
    def from_auth(cls, auth: str) -> Credential:
        """Decode Docker's base64 ``user:password`` form."""
        try:
            raw = base64.b64decode(auth, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise InvalidArgument(
                "decode credential auth: want base64 user:pass"
            ) from exc
        username, sep, password = raw.partition(":")
        if not sep or not username:
            raise InvalidArgument("decode credential auth: want user:password")
        return cls(username=username, password=password)

    @property
    def has_password(self) -> bool:
        return self.username is not None and self.password is not None

    def __repr__(self) -> str:
        return f"Credential(username={self.username!r}, secrets=<redacted>)"


def canonical_host(key: str) -> str:
    """The registry host a config key or reference registry names.

    ``https://index.docker.io/v1/`` and ``registry-1.docker.io`` are ``docker.io``;
    ``http://10.0.0.1:5000/v2/`` is ``10.0.0.1:5000``.
    """
    host = key.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return HUB if host in HUB_ALIASES else host


class CredentialStore:
    """Finds the credential for a registry host. Safe to share between pulls."""

    def __init__(
        self,
        explicit: Mapping[str, Credential] | None = None,
        docker_config: Path | None = None,
        use_docker_config: bool = True,
    ) -> None:
        self._explicit = {canonical_host(k): v for k, v in (explicit or {}).items()}
        self._config_path = docker_config or _default_docker_config()
        self._use_docker_config = use_docker_config

    async def get(self, registry: str) -> Credential | None:
        """The credential for ``registry`` (a host or any key spelling), or None."""
        host = canonical_host(registry)
        explicit = self._explicit.get(host)
        if explicit is not None or not self._use_docker_config:
            return explicit
        config = _read_docker_config(self._config_path)
        helper = config.get("credHelpers", {}).get(host) or _hub_helper(config, host)
        if isinstance(helper, str) and helper:
            return await run_helper(helper, host)
        from_auths = _from_auths(config.get("auths", {}), host)
        if from_auths is not None:
            return from_auths
        store = config.get("credsStore")
        if isinstance(store, str) and store:
            return await run_helper(store, host)
        return None


def _default_docker_config() -> Path:
    directory = os.environ.get("DOCKER_CONFIG")
    if directory:
        return Path(directory) / "config.json"
    return Path.home() / ".docker" / "config.json"


def _read_docker_config(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise InvalidArgument(f"read docker config {path}: {exc.strerror}") from exc
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidArgument(f"parse docker config {path}: {exc.msg}") from exc
    return data if isinstance(data, dict) else {}


def _hub_helper(config: dict[str, Any], host: str) -> object:
    if host != HUB:
        return None
    helpers = config.get("credHelpers", {})
    return next((v for k, v in helpers.items() if canonical_host(k) == HUB), None)


def _from_auths(auths: object, host: str) -> Credential | None:
    if not isinstance(auths, dict):
        return None
    for key, entry in auths.items():
        if canonical_host(key) != host or not isinstance(entry, dict):
            continue
        credential = _from_entry(entry)
        if credential is not None:
            return credential
    return None


def _from_entry(entry: dict[str, Any]) -> Credential | None:
    identity = entry.get("identitytoken") or None
    registry_token = entry.get("registrytoken") or None
    if entry.get("auth"):
        base = Credential.from_auth(str(entry["auth"]))
    elif entry.get("username"):
        base = Credential(str(entry["username"]), str(entry.get("password", "")))
    elif identity or registry_token:
        base = Credential()
    else:
        return None
    return Credential(base.username, base.password, identity, registry_token)


async def run_helper(name: str, host: str) -> Credential | None:
    """Ask ``docker-credential-<name> get`` for ``host``; None when it has none."""
    program = shutil.which(f"docker-credential-{name}")
    if program is None:
        raise Unauthenticated(f"get credential for {host}: helper {name!r} not found")
    server_url = HUB_SERVER_URL if host == HUB else host
    process = await asyncio.create_subprocess_exec(
        program,
        "get",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(
            process.communicate(server_url.encode()), _HELPER_TIMEOUT
        )
    except TimeoutError as exc:
        process.kill()
        await process.wait()
        raise Unauthenticated(
            f"get credential for {host}: helper {name!r} hung"
        ) from exc
    return _helper_answer(name, host, process.returncode, out, err)


def _helper_answer(
    name: str, host: str, returncode: int | None, out: bytes, err: bytes
) -> Credential | None:
    if returncode != 0:
        if b"credentials not found" in (out + err).lower():
            return None
        raise Unauthenticated(
            f"get credential for {host}: helper {name!r} exited {returncode}"
        )
    try:
        answer = json.loads(out[:_HELPER_OUTPUT_LIMIT])
        username, secret = str(answer["Username"]), str(answer["Secret"])
    except (ValueError, KeyError, TypeError) as exc:
        raise Unauthenticated(
            f"get credential for {host}: helper {name!r} gave no Username and Secret"
        ) from exc
    log.debug("credential for %s from helper %s", host, name)
    if username == "<token>":
        return Credential(identity_token=secret)
    return Credential(username=username, password=secret)
