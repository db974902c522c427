"""Registry authentication: anonymous, Basic, and the Bearer token flow.

Nothing is sent in ``Authorization`` until a real credential or token exists. A 401
is answered once per request: Bearer wherever it is offered (an anonymous token when
there is no credential), else Basic with a configured username and password. Tokens
are cached per (realm, service, scope) until they expire.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from yarl import URL

from sandpull.errors import PermissionDenied, Unauthenticated, Unavailable
from sandpull.registry.challenge import Challenge
from sandpull.registry.credentials import Credential, CredentialStore
from sandpull.registry.transport import Call

log = logging.getLogger(__name__)

TOKEN_RESPONSE_LIMIT = 64 * 1024
_DEFAULT_TOKEN_LIFETIME = 60.0
_EXPIRY_MARGIN = 5.0

#: Sends one request to a token realm: (call, url, headers, form) -> (status, body).
TokenRequester = Callable[
    [Call, URL, Mapping[str, str], Mapping[str, str] | None],
    Awaitable[tuple[int, bytes]],
]


@dataclass(frozen=True)
class _Token:
    value: str
    expires: float


class Authenticator:
    """Holds tokens and Basic decisions per registry host; one per client."""

    def __init__(
        self,
        credentials: CredentialStore | None,
        request: TokenRequester,
        allows_http: Callable[[str], bool],
    ) -> None:
        self._credentials = credentials
        self._request = request
        self._allows_http = allows_http
        self._tokens: dict[tuple[str, str, str], _Token] = {}
        self._bearer: dict[str, tuple[str, str]] = {}  # host -> (realm, service)
        self._basic: dict[str, str] = {}  # host -> Basic header value
        self._locks: dict[tuple[str, str, str], asyncio.Lock] = {}

    def header(self, call: Call) -> str | None:
        """The ``Authorization`` value to send, or None (never a placeholder)."""
        host = call.endpoint.host
        if host in self._basic:
            return self._basic[host]
        realm_service = self._bearer.get(host)
        if realm_service is None:
            return None
        token = self._tokens.get((*realm_service, call.scope))
        if token is None or token.expires <= time.monotonic():
            return None
        return f"Bearer {token.value}"

    def drop(self, call: Call) -> bool:
        """Forget the token for ``call``'s scope; True if there was one."""
        realm_service = self._bearer.get(call.endpoint.host)
        if realm_service is None:
            return False
        return self._tokens.pop((*realm_service, call.scope), None) is not None

    async def answer(self, call: Call, challenges: list[Challenge]) -> None:
        """Obtain what the challenges ask for; raises when nothing can be sent."""
        bearer = next((c for c in challenges if c.scheme == "bearer" and c.realm), None)
        if bearer is not None:
            await self._answer_bearer(call, bearer)
            return
        if any(c.scheme == "basic" for c in challenges):
            await self._answer_basic(call)
            return
        raise Unauthenticated(
            f"{call.action} from {call.where}: authentication required and no "
            "usable challenge (want Bearer with a realm, or Basic)"
        )

    async def _credential(self, call: Call) -> Credential | None:
        if self._credentials is None:
            return None
        return await self._credentials.get(call.endpoint.host)

    async def _answer_basic(self, call: Call) -> None:
        credential = await self._credential(call)
        if credential is None or not credential.has_password:
            raise Unauthenticated(
                f"{call.action} from {call.where}: registry wants Basic auth and no "
                f"username and password are configured for {call.endpoint.host}"
            )
        raw = f"{credential.username}:{credential.password}".encode()
        self._basic[call.endpoint.host] = f"Basic {base64.b64encode(raw).decode()}"

    async def _answer_bearer(self, call: Call, challenge: Challenge) -> None:
        realm = challenge.params["realm"]
        service = challenge.params.get("service", "")
        key = (realm, service, call.scope)
        self._bearer[call.endpoint.host] = (realm, service)
        async with self._locks.setdefault(key, asyncio.Lock()):
            cached = self._tokens.get(key)
            if cached is not None and cached.expires > time.monotonic():
                return
            self._tokens.pop(key, None)
            self._tokens[key] = await self._fetch_token(call, challenge)

    async def _fetch_token(self, call: Call, challenge: Challenge) -> _Token:
        credential = await self._credential(call)
        if credential is not None and credential.registry_token:
            return _Token(credential.registry_token, float("inf"))
        url = self._realm_url(call, challenge.params["realm"])
        query, form, headers = _token_request(call, challenge, credential)
        url = url.update_query(query) if form is None else url
        status, body = await self._request(call, url, headers, form)
        if status in (401, 403):
            raise Unauthenticated(
                f"{call.action} from {call.where}: token service {url.host} refused "
                f"the credentials ({status})"
            )
        if status != 200:
            raise Unavailable(
                f"{call.action} from {call.where}: token service {url.host} answered "
                f"{status}"
            )
        log.debug(
            "token for %s scope %s from %s", call.endpoint.host, call.scope, url.host
        )
        return _parse_token(call, body)

    def _realm_url(self, call: Call, realm: str) -> URL:
        url = URL(realm)
        if url.scheme not in ("http", "https") or not url.host:
            raise Unauthenticated(
                f"{call.action} from {call.where}: bad token realm {realm[:100]!r}"
            )
        if url.scheme == "http" and not self._allows_http(call.endpoint.host):
            raise PermissionDenied(
                f"{call.action} from {call.where}: refusing token realm over plain "
                f"http ({url.host}) for a registry not configured insecure"
            )
        return url


def _token_request(
    call: Call, challenge: Challenge, credential: Credential | None
) -> tuple[list[tuple[str, str]], dict[str, str] | None, dict[str, str]]:
    """Query, form (identity tokens use the OAuth2 POST) and headers for a token."""
    service = challenge.params.get("service")
    scopes = [call.scope]
    offered = challenge.params.get("scope")
    if offered and offered != call.scope:
        scopes.append(offered)  # e.g. a registry that insists on its own scope
    params = ([("service", service)] if service else []) + [
        ("scope", s) for s in scopes
    ]
    if credential is not None and credential.identity_token:
        form = dict(params)
        form["scope"] = " ".join(scopes)
        form.update(
            grant_type="refresh_token",
            refresh_token=credential.identity_token,
            client_id="sandpull",
        )
        return [], form, {}
    headers: dict[str, str] = {}
    if credential is not None and credential.has_password:
        raw = f"{credential.username}:{credential.password}".encode()
        headers["Authorization"] = f"Basic {base64.b64encode(raw).decode()}"
    return params, None, headers


def _parse_token(call: Call, body: bytes) -> _Token:
    try:
        answer = json.loads(body)
        value = answer.get("token") or answer.get("access_token")
        lifetime = float(answer.get("expires_in") or _DEFAULT_TOKEN_LIFETIME)
    except (ValueError, AttributeError, TypeError) as exc:
        raise Unauthenticated(
            f"{call.action} from {call.where}: token response is not a JSON object"
        ) from exc
    if not isinstance(value, str) or not value:
        raise Unauthenticated(
            f"{call.action} from {call.where}: token response has no token"
        )
    lifetime = max(lifetime, _DEFAULT_TOKEN_LIFETIME)
    return _Token(value, time.monotonic() + lifetime - _EXPIRY_MARGIN)
