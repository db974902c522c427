"""HTTP for registry calls: TLS per host, redirects, retries, byte accounting, errors.

A :class:`Call` is one logical request to one endpoint. :meth:`Transport.send`
follows redirects itself (at most five; ``Authorization`` is dropped when the host
changes and https -> http is refused), retries connection errors, 429 and 5xx with
bounded backoff, and returns the final response with its body unread. Every byte
received (status line, headers, bodies) is reported to ``on_bytes``.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import aiohttp
from yarl import URL

from sandpull.errors import (
    DeadlineExceeded,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    SandpullError,
    Unauthenticated,
    Unavailable,
    VerificationError,
)
from sandpull.oci import Reference
from sandpull.registry.config import Endpoint

log = logging.getLogger(__name__)

DEFAULT_CERTS_DIR = Path("/etc/sandpull/certs.d")
ERROR_BODY_LIMIT = 64 * 1024
MAX_REDIRECTS = 5
#: A body that delivers fewer bytes than this in one progress period has stalled.
MIN_PROGRESS_BYTES = 4096
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
#: How much of a response body aiohttp buffers before it stops reading the socket;
#: its 64 KiB default makes a fast local registry pause and resume every few packets.
_READ_BUFFER = 1 << 20
ByteCounter = Callable[[str, str, int], None]
T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff; ``attempts`` counts the first try."""

    attempts: int = 5
    initial_delay: float = 0.5
    max_delay: float = 10.0
    max_retry_after: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), self.max_retry_after)
        return float(min(self.initial_delay * 2**attempt, self.max_delay))


@dataclass(frozen=True)
class Call:
    """One request to one endpoint; ``action`` names the step for messages."""

    endpoint: Endpoint
    ref: Reference
    method: str
    path: str
    action: str
    headers: Mapping[str, str] = field(default_factory=dict)

    @property
    def scope(self) -> str:
        return f"repository:{self.endpoint.repository}:pull"

    @property
    def where(self) -> str:
        return f"{self.endpoint.host}/{self.endpoint.repository}"


class ProgressDeadline:
    """The pull's progress deadline for one body.

    A silent connection is caught by the socket read timeout; this catches the
    other stall, a trickle: fewer than :data:`MIN_PROGRESS_BYTES` in a whole
    ``period``. The check runs as bytes arrive, so it costs nothing while idle.
    """

    def __init__(self, period: float) -> None:
        self.period = period
        self._window_start = time.monotonic()
        self._window_bytes = 0

    def add(self, call: Call, n: int) -> None:
        """Count ``n`` bytes; raise :class:`DeadlineExceeded` at a stall."""
        self._window_bytes += n
        now = time.monotonic()
        if now - self._window_start < self.period:
            return
        if self._window_bytes < MIN_PROGRESS_BYTES:
            raise DeadlineExceeded(
                f"{call.action} from {call.where}: progress deadline: "
                f"{self._window_bytes} bytes in {now - self._window_start:.0f}s, "
                f"want at least {MIN_PROGRESS_BYTES}"
            )
        self._window_start, self._window_bytes = now, 0


class Retryable(Exception):
    """A failure worth another try (connection dropped, 429, 5xx)."""

    def __init__(self, error: SandpullError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class Transport:
    """Owns the aiohttp session; safe for concurrent calls from one event loop."""

    def __init__(
        self,
        *,
        certs_dir: Path | None,
        insecure_hosts: Callable[[str], bool],
        on_bytes: ByteCounter | None,
        progress_timeout: float,
        retry: RetryPolicy,
    ) -> None:
        self._certs_dir = certs_dir or DEFAULT_CERTS_DIR
        self._insecure_hosts = insecure_hosts
        self._on_bytes = on_bytes
        self.progress_timeout = progress_timeout
        self.retry = retry
        self._session: aiohttp.ClientSession | None = None
        self._ssl: dict[str, ssl.SSLContext] = {}
        self._schemes: dict[str, str] = {}

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def count(self, call: Call, n: int) -> None:
        if self._on_bytes is not None and n:
            self._on_bytes(call.endpoint.host, str(call.ref), n)

    # --- public steps -------------------------------------------------------------

    async def send(
        self, call: Call, authorization: str | None
    ) -> aiohttp.ClientResponse:
        """The response to ``call`` after redirects; the caller reads and releases it.

        Connection errors are raised as :class:`Retryable`; statuses are not judged.
        """
        url = self._url(call)
        for _hop in range(MAX_REDIRECTS + 1):
            response = await self._request(call, url, authorization)
            if response.status not in _REDIRECTS:
                return response
            await self.drain(call, response)
            target = _redirect_target(call, url, response)
            if target.host_port_subcomponent != url.host_port_subcomponent:
                authorization = None  # never hand a registry credential to another host
            url = target
        raise Unavailable(f"{call.action} from {call.where}: more than 5 redirects")

    async def read_body(
        self, call: Call, response: aiohttp.ClientResponse, limit: int, what: str
    ) -> bytes:
        """The whole body, at most ``limit`` bytes (more is an error), counted."""
        chunks: list[bytes] = []
        total = 0
        deadline = ProgressDeadline(self.progress_timeout)
        try:
            async for chunk in response.content.iter_any():
                self.count(call, len(chunk))
                deadline.add(call, len(chunk))
                total += len(chunk)
                if total > limit:
                    raise InvalidArgument(
                        f"{call.action} from {call.where}: {what} larger than "
                        f"{limit} bytes"
                    )
                chunks.append(chunk)
        except aiohttp.ClientError as exc:
            raise retryable(connection_error(call, exc)) from exc
        finally:
            response.release()
        return b"".join(chunks)

    async def drain(self, call: Call, response: aiohttp.ClientResponse) -> bytes:
        """Read (bounded) and release a response we will not use; return its body."""
        try:
            return await self.read_body(call, response, ERROR_BODY_LIMIT, "error body")
        except (SandpullError, Retryable):
            return b""

    async def status_error(
        self, call: Call, response: aiohttp.ClientResponse
    ) -> SandpullError:
        """The error for a non-success status; drains the response.

        Raises :class:`Retryable` for 429 and 5xx, carrying ``Retry-After``.
        """
        status = response.status
        retry_after = _retry_after(response.headers.get("Retry-After"))
        detail = describe_error_body(await self.drain(call, response))
        error = status_error(call, status, detail)
        if status in _RETRY_STATUSES:
            raise Retryable(error, retry_after)
        return error

    async def with_retries(self, attempt: Callable[[], Awaitable[T]], call: Call) -> T:
        """Run ``attempt`` until it does not raise :class:`Retryable`, with backoff."""
        for n in range(self.retry.attempts):
            try:
                return await attempt()
            except Retryable as exc:
                if n + 1 >= self.retry.attempts:
                    raise exc.error from exc
                delay = self.retry.delay(n, exc.retry_after)
                log.debug("%s from %s: %s; retry in %.1fs", call.action, call.where,
                          exc.error, delay)  # fmt: skip
                await asyncio.sleep(delay)
        raise AssertionError("unreachable: retry attempts must be at least 1")

    async def small_request(
        self,
        call: Call,
        url: URL,
        headers: Mapping[str, str],
        form: Mapping[str, str] | None,
        limit: int,
    ) -> tuple[int, bytes]:
        """One request to an auxiliary URL (a token realm): status and bounded body."""
        method = "POST" if form is not None else "GET"
        session = self._get_session()
        try:
            response = await session.request(
                method,
                url,
                headers=dict(headers),
                data=form,
                ssl=self._ssl_for(url),
                allow_redirects=False,
            )
        except aiohttp.ClientError as exc:
            raise connection_error(call, exc) from exc
        self.count(call, header_bytes(response))
        log.debug("%s %s -> %d", method, url.with_query(None), response.status)
        return response.status, await self.read_body(call, response, limit, "response")

    def allows_http(self, host: str) -> bool:
        """Plain HTTP is allowed for insecure registries and for loopback hosts."""
        return self._insecure_hosts(host) or is_loopback(host)

    # --- internals ----------------------------------------------------------------

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            timeout = aiohttp.ClientTimeout(
                total=None, sock_connect=30.0, sock_read=self.progress_timeout
            )
            self._session = aiohttp.ClientSession(
                timeout=timeout,
                auto_decompress=False,
                read_bufsize=_READ_BUFFER,
                headers={"Accept-Encoding": "identity", "User-Agent": "sandpull"},
            )
        return self._session

    def _url(self, call: Call) -> URL:
        scheme = self._schemes.get(call.endpoint.host, "https")
        return URL(f"{scheme}://{call.endpoint.host}{call.path}", encoded=True)

    async def _request(
        self, call: Call, url: URL, authorization: str | None
    ) -> aiohttp.ClientResponse:
        headers = dict(call.headers)
        if authorization is not None:
            headers["Authorization"] = authorization
        try:
            response = await self._get_session().request(
                call.method,
                url,
                headers=headers,
                ssl=self._ssl_for(url),
                allow_redirects=False,
            )
        except aiohttp.ClientError as exc:
            if self._falls_back_to_http(call, url, exc):
                self._schemes[call.endpoint.host] = "http"
                return await self._request(call, url.with_scheme("http"), authorization)
            raise retryable(connection_error(call, exc)) from exc
        if url.host_port_subcomponent == call.endpoint.host:
            self._schemes.setdefault(call.endpoint.host, url.scheme)
        self.count(call, header_bytes(response))
        log.debug("%s %s -> %d", call.method, url.with_query(None), response.status)
        return response

    def _falls_back_to_http(self, call: Call, url: URL, exc: Exception) -> bool:
        return (
            url.scheme == "https"
            and url.host_port_subcomponent == call.endpoint.host
            and call.endpoint.host not in self._schemes
            and self.allows_http(call.endpoint.host)
            and isinstance(exc, aiohttp.ClientConnectorError | aiohttp.ClientOSError)
            and not isinstance(exc, aiohttp.ClientConnectorCertificateError)
        )

    def _ssl_for(self, url: URL) -> ssl.SSLContext | bool:
        if url.scheme != "https":
            return True
        host = url.host_port_subcomponent or ""
        if self._insecure_hosts(host):
            return False
        context = self._ssl.get(host)
        if context is None:
            context = self._ssl[host] = _tls_context(self._certs_dir / host)
        return context


def _tls_context(directory: Path) -> ssl.SSLContext:
    """System CAs plus ``*.crt`` of a certs.d host dir; ``*.cert``/``*.key`` pairs
    are client certificates."""
    context = ssl.create_default_context()
    if not directory.is_dir():
        return context
    try:
        for ca in sorted(directory.glob("*.crt")):
            context.load_verify_locations(cafile=str(ca))
        for cert in sorted(directory.glob("*.cert")):
            context.load_cert_chain(str(cert), str(cert.with_suffix(".key")))
    except (OSError, ssl.SSLError) as exc:
        raise InvalidArgument(f"load tls files from {directory}: {exc}") from exc
    return context


def _redirect_target(call: Call, url: URL, response: aiohttp.ClientResponse) -> URL:
    location = response.headers.get("Location")
    if not location:
        raise Unavailable(f"{call.action} from {call.where}: redirect without Location")
    target = url.join(URL(location, encoded=True))
    if target.scheme not in ("http", "https"):
        raise Unavailable(
            f"{call.action} from {call.where}: redirect to {target.scheme}"
        )
    if url.scheme == "https" and target.scheme == "http" and not call.endpoint.insecure:
        raise PermissionDenied(
            f"{call.action} from {call.where}: refusing redirect from https to http "
            f"({target.host})"
        )
    return target


def header_bytes(response: aiohttp.ClientResponse) -> int:
    """Bytes of the status line and headers as they were on the wire."""
    version = response.version
    status_line = (
        f"HTTP/{version.major}.{version.minor} {response.status} " if version else ""
    )
    status_line += f"{response.reason or ''}\r\n"
    fields = sum(len(k) + len(v) + 4 for k, v in response.raw_headers)
    return len(status_line.encode()) + fields + 2


def is_loopback(host: str) -> bool:
    name = URL(f"//{host}").host or ""
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def connection_error(call: Call, exc: Exception) -> SandpullError:
    """Translate an aiohttp failure; :class:`Retryable` ones are wrapped in it."""
    if isinstance(exc, aiohttp.SocketTimeoutError):
        return DeadlineExceeded(f"{call.action} from {call.where}: no data received")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        reason = getattr(exc.certificate_error, "verify_message", "") or "rejected"
        return Unavailable(
            f"{call.action} from {call.where}: verify tls certificate: {reason}"
        )
    return ConnectionFailed(
        f"{call.action} from {call.where}: connection failed ({_reason(exc)})"
    )


class ConnectionFailed(Unavailable):
    """The TCP connection failed or broke: worth another try."""


def _reason(exc: Exception) -> str:
    os_error = getattr(exc, "os_error", None)
    if isinstance(os_error, OSError) and os_error.strerror:
        return os_error.strerror.lower()
    return type(exc).__name__


def retryable(error: SandpullError) -> Exception:
    """Connection failures are retried; timeouts and certificate errors are not."""
    if isinstance(error, ConnectionFailed):
        return Retryable(error)
    return error


def status_error(call: Call, status: int, detail: str) -> SandpullError:
    prefix = f"{call.action} from {call.where}"
    suffix = f": {detail}" if detail else ""
    if status == 401:
        return Unauthenticated(f"{prefix}: authentication required (401){suffix}")
    if status == 403:
        return PermissionDenied(f"{prefix}: access denied (403){suffix}")
    if status == 404:
        return NotFound(f"{prefix}: not found (404){suffix}")
    if status == 416:  # only Range requests get it: the blob ends before the offset
        return VerificationError(f"{prefix}: content shorter than expected (416)")
    if status == 429:
        return ResourceExhausted(f"{prefix}: rate limited (429){suffix}")
    if status >= 500:
        return Unavailable(f"{prefix}: server error ({status}){suffix}")
    if 400 <= status < 500:
        return InvalidArgument(f"{prefix}: request refused ({status}){suffix}")
    return Unavailable(f"{prefix}: unexpected status {status}{suffix}")


def describe_error_body(body: bytes) -> str:
    """The ``errors`` of a distribution error body as one short line, or ``""``."""
    try:
        errors = json.loads(body).get("errors")
    except (ValueError, AttributeError):
        return ""
    if not isinstance(errors, list):
        return ""
    parts = []
    for error in errors[:5]:
        if isinstance(error, dict):
            code, message = error.get("code", ""), error.get("message", "")
            parts.append(f"{code} {message}".strip())
    return "; ".join(p for p in parts if p)[:300]


def _retry_after(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff
