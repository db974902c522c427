"""The registry client: distribution-spec v2 reads of manifests and blobs.

Every call goes to the endpoints the config gives for the reference (mirrors first);
a failing endpoint falls through to the next and only the last one's error is raised.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import aiohttp
from yarl import URL

from sandpull.errors import (
    InvalidArgument,
    SandpullError,
    UnsupportedError,
    VerificationError,
)
from sandpull.oci import Descriptor, Digest, Reference, mediatype
from sandpull.registry.auth import TOKEN_RESPONSE_LIMIT, Authenticator
from sandpull.registry.blob import BlobStream
from sandpull.registry.challenge import parse_challenges
from sandpull.registry.config import Endpoint, RegistriesConfig
from sandpull.registry.credentials import CredentialStore
from sandpull.registry.transport import ByteCounter, Call, RetryPolicy, Transport

log = logging.getLogger(__name__)

MAX_MANIFEST_SIZE = 4 * 1024 * 1024
T = TypeVar("T")


@dataclass(frozen=True)
class FetchedManifest:
    """A manifest or index as received; ``descriptor.digest`` is of ``data``."""

    descriptor: Descriptor
    data: bytes
    endpoint: str


class RegistryClient:
    """Reads manifests and blobs; ``async with`` it or call :meth:`close`."""

    def __init__(
        self,
        *,
        config: RegistriesConfig | None = None,
        credentials: CredentialStore | None = None,
        certs_dir: Path | None = None,
        on_bytes: ByteCounter | None = None,
        progress_timeout: float = 60.0,
        retry: RetryPolicy = RetryPolicy(),  # noqa: B008 - frozen value
    ) -> None:
        self._config = config if config is not None else RegistriesConfig.load()
        self._transport = Transport(
            certs_dir=certs_dir,
            insecure_hosts=self._config.is_insecure,
            on_bytes=on_bytes,
            progress_timeout=progress_timeout,
            retry=retry,
        )
        self._auth = Authenticator(
            credentials, self._token_request, self._transport.allows_http
        )
        self._warned_mirrors: set[str] = set()

    async def __aenter__(self) -> RegistryClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        await self._transport.close()

    # --- manifests ----------------------------------------------------------------

    async def resolve(self, ref: Reference) -> FetchedManifest:
        """GET the manifest or index ``ref`` names (tag or digest), verified.

        The digest of the bytes received is authoritative: by tag it is computed
        (``Docker-Content-Digest`` is informational); by digest the body must hash
        to the requested digest with that digest's algorithm.
        """

        async def attempt(endpoint: Endpoint) -> FetchedManifest:
            call = _manifest_call(endpoint, ref, ref.object, mediatype.MANIFEST_ACCEPT)
            response = await self._open(call)
            media_type = _content_type(response)
            data = await self._transport.read_body(
                call, response, MAX_MANIFEST_SIZE, "manifest"
            )
            digest = _verify_manifest(call, ref.digest, data)
            media_type = _manifest_media_type(media_type, data)
            desc = Descriptor(media_type, digest, len(data))
            return FetchedManifest(desc, data, endpoint.host)

        return await self._on_endpoints(ref, attempt)

    async def ping(self, ref: Reference) -> str:
        """GET ``/v2/`` on the endpoint serving ``ref``, authenticating as needed.

        Returns the ``Docker-Distribution-API-Version`` the registry announces
        (empty if none); raises the mapped error when the registry is unusable.
        """

        async def attempt(endpoint: Endpoint) -> str:
            call = Call(endpoint, ref, "GET", "/v2/", "ping registry")
            response = await self._open(call)
            response.release()
            return response.headers.get("Docker-Distribution-API-Version", "")

        return await self._on_endpoints(ref, attempt)

    async def head_manifest(self, ref: Reference) -> Descriptor | None:
        """HEAD the manifest ``ref`` names: its descriptor, without the body.

        The digest comes from ``Docker-Content-Digest``, which only the body can
        prove; None when the registry sends no usable digest or size, so the
        caller must GET (field case C31). Use it to ask "has this tag moved?".
        """

        async def attempt(endpoint: Endpoint) -> Descriptor | None:
            call = _manifest_call(endpoint, ref, ref.object, mediatype.MANIFEST_ACCEPT)
            call = Call(endpoint, ref, "HEAD", call.path, f"head manifest {ref.object}",
                        call.headers)  # fmt: skip
            response = await self._open(call)
            response.release()
            return _head_descriptor(response, ref)

        return await self._on_endpoints(ref, attempt)

    async def get_manifest(self, ref: Reference, desc: Descriptor) -> bytes:
        """GET the manifest ``desc`` describes; its size and digest are verified."""
        if desc.size > MAX_MANIFEST_SIZE:
            raise InvalidArgument(
                f"get manifest {desc.digest}: size {desc.size} is over the "
                f"{MAX_MANIFEST_SIZE}-byte limit"
            )
        accept = (desc.media_type, *mediatype.MANIFEST_ACCEPT)

        async def attempt(endpoint: Endpoint) -> bytes:
            call = _manifest_call(endpoint, ref, str(desc.digest), accept)
            response = await self._open(call)
            data = await self._transport.read_body(
                call, response, desc.size, "manifest"
            )
            _verify_size(call, desc, data)
            _verify_manifest(call, desc.digest, data)
            return data

        return await self._on_endpoints(ref, attempt)

    # --- blobs --------------------------------------------------------------------

    async def get_blob_bytes(
        self, ref: Reference, desc: Descriptor, max_size: int
    ) -> bytes:
        """A small blob (a config) whole, size and digest verified."""
        if desc.size > max_size:
            raise InvalidArgument(
                f"get blob {desc.digest}: size {desc.size} is over the {max_size}-byte "
                "limit"
            )
        async with self.open_blob(ref, desc) as stream:
            data = b"".join([chunk async for chunk in stream])
        if not desc.digest.matches(data):
            raise VerificationError(
                f"verify blob {desc.digest} of {ref.name}: content has digest "
                f"{Digest.of(data, desc.digest.algorithm)}"
            )
        return data

    def open_blob(
        self, ref: Reference, desc: Descriptor, offset: int = 0
    ) -> BlobStream:
        """A resuming stream of the blob from ``offset``; see :class:`BlobStream`."""
        if desc.urls or mediatype.is_foreign_layer(desc.media_type):
            raise UnsupportedError(
                f"get blob {desc.digest} of {ref}: foreign layer not supported"
            )

        async def opener(position: int) -> tuple[Call, aiohttp.ClientResponse]:
            headers = {"Range": f"bytes={position}-"} if position else {}

            async def attempt(
                endpoint: Endpoint,
            ) -> tuple[Call, aiohttp.ClientResponse]:
                call = Call(endpoint, ref, "GET",
                            f"/v2/{endpoint.repository}/blobs/{desc.digest}",
                            f"get blob {desc.digest}", headers)  # fmt: skip
                return call, await self._open(call)

            return await self._on_endpoints(ref, attempt)

        return BlobStream(
            desc,
            offset,
            opener,
            self._transport.count,
            self._transport.retry,
            self._transport.progress_timeout,
        )

    # --- one request: endpoints, retries, auth --------------------------------------

    async def _on_endpoints(
        self, ref: Reference, attempt: Callable[[Endpoint], Awaitable[T]]
    ) -> T:
        endpoints = self._config.endpoints(ref)
        for endpoint in endpoints[:-1]:
            try:
                return await attempt(endpoint)
            except SandpullError as exc:
                self._warn_mirror(endpoint, exc)
        return await attempt(endpoints[-1])

    def _warn_mirror(self, endpoint: Endpoint, exc: SandpullError) -> None:
        level = (
            logging.DEBUG if endpoint.host in self._warned_mirrors else logging.WARNING
        )
        self._warned_mirrors.add(endpoint.host)
        log.log(
            level, "mirror %s failed, trying the next endpoint: %s", endpoint.host, exc
        )

    async def _open(self, call: Call) -> aiohttp.ClientResponse:
        """A 200/206 response to ``call``, body unread; raises the mapped error."""

        async def attempt() -> aiohttp.ClientResponse:
            response = await self._authorized(call)
            if response.status in (200, 206):
                return response
            raise await self._transport.status_error(call, response)

        return await self._transport.with_retries(attempt, call)

    async def _authorized(self, call: Call) -> aiohttp.ClientResponse:
        answered = dropped = False
        while True:
            header = self._auth.header(call)
            response = await self._transport.send(call, header)
            if response.status == 401 and not answered:
                answered = True
                challenges = parse_challenges(
                    response.headers.getall("WWW-Authenticate", [])
                )
                await self._transport.drain(call, response)
                await self._auth.answer(call, challenges)
                continue
            # A stale token can earn 400/403 without a challenge: ask again without it.
            stale = response.status in (400, 403) and header and not dropped
            if stale and self._auth.drop(call):
                dropped = True
                await self._transport.drain(call, response)
                continue
            return response

    async def _token_request(
        self,
        call: Call,
        url: URL,
        headers: Mapping[str, str],
        form: Mapping[str, str] | None,
    ) -> tuple[int, bytes]:
        return await self._transport.small_request(
            call, url, headers, form, TOKEN_RESPONSE_LIMIT
        )


def _head_descriptor(
    response: aiohttp.ClientResponse, ref: Reference
) -> Descriptor | None:
    try:
        digest = Digest.parse(response.headers.get("Docker-Content-Digest", ""))
        size = int(response.headers.get("Content-Length", ""))
    except (InvalidArgument, ValueError):
        return None
    if ref.digest is not None and digest != ref.digest:
        return None  # informational only; the GET will verify the body
    return Descriptor(_content_type(response), digest, size)


def _manifest_call(
    endpoint: Endpoint, ref: Reference, obj: str, accept: tuple[str, ...]
) -> Call:
    return Call(
        endpoint,
        ref,
        "GET",
        f"/v2/{endpoint.repository}/manifests/{obj}",
        f"get manifest {obj}",
        {"Accept": ", ".join(dict.fromkeys(a for a in accept if a))},
    )


def _content_type(response: aiohttp.ClientResponse) -> str:
    return response.headers.get("Content-Type", "").split(";")[0].strip()


def _manifest_media_type(header: str, data: bytes) -> str:
    """The Content-Type if it names a manifest type, else the body's mediaType."""
    known = (
        *mediatype.MANIFEST_TYPES,
        *mediatype.INDEX_TYPES,
        *mediatype.SCHEMA1_TYPES,
    )
    if header in known:
        return header
    try:
        declared = json.loads(data).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return declared if isinstance(declared, str) and declared else header


def _verify_manifest(call: Call, want: Digest | None, data: bytes) -> Digest:
    if want is None:
        return Digest.of(data)
    if not want.matches(data):
        raise VerificationError(
            f"{call.action} from {call.where}: manifest verification failed: content "
            f"has digest {Digest.of(data, want.algorithm)}"
        )
    return want


def _verify_size(call: Call, desc: Descriptor, data: bytes) -> None:
    if len(data) != desc.size:
        raise VerificationError(
            f"{call.action} from {call.where}: got {len(data)} bytes, want {desc.size}"
        )
