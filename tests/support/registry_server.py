"""The real distribution registry, started by session fixtures in three setups.

- ``registry_plain``: plain HTTP, no auth.
- ``registry_tls_basic``: TLS with a CA made here, htpasswd (bcrypt) Basic auth.
- ``registry_token``: plain HTTP, Bearer token auth against a token server owned by
  the tests (:class:`TokenServer`), which records every request it answers.

Each yields a :class:`RegistryServer` whose ``push_*`` methods upload content with
plain blocking HTTP, handling that setup's auth, and send the bytes exactly as given.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from sandpull.oci import Digest, mediatype

REGISTRY_BINARY = "/usr/bin/docker-registry"
USERNAME = "sandpull"
PASSWORD = "s3cret-pa55word"
TOKEN_ISSUER = "sandpull-test-issuer"
TOKEN_SERVICE = "sandpull-test-registry"
#: Repositories under this prefix are pullable anonymously through the token server.
PUBLIC_PREFIX = "public/"


# --- the token server -------------------------------------------------------------


@dataclass(frozen=True)
class TokenRequest:
    """One request the token server answered."""

    service: str | None
    scopes: tuple[str, ...]
    username: str | None  # the Basic user sent, None when anonymous
    granted: bool  # False when Basic credentials were wrong (answered 401)


@dataclass
class TokenServer:
    """Issues registry JWTs (RS256, ``x5c`` header) after checking Basic credentials.

    Anonymous requests get ``pull`` on repositories under :data:`PUBLIC_PREFIX` and no
    access elsewhere; a wrong password gets 401. ``response_key`` chooses the JSON
    field that carries the token (``token`` or ``access_token``).
    """

    key_file: Path
    cert_file: Path
    username: str
    password: str
    url: str = ""
    requests: list[TokenRequest] = field(default_factory=list)
    response_key: str = "token"
    _httpd: ThreadingHTTPServer | None = None

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.handle(self)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/token"
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def handle(self, handler: BaseHTTPRequestHandler) -> None:
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(handler.path).query)
        scopes = tuple(s for value in query.get("scope", []) for s in value.split())
        service = query.get("service", [None])[0]
        username, authorized = self._check_basic(handler.headers.get("Authorization"))
        self.requests.append(TokenRequest(service, scopes, username, authorized))
        if not authorized:
            _answer(handler, 401, {"errors": [{"code": "UNAUTHORIZED"}]})
            return
        access = [a for a in map(self._grant(username), scopes) if a is not None]
        _answer(handler, 200, {self.response_key: self.sign(access), "expires_in": 300})

    def _check_basic(self, header: str | None) -> tuple[str | None, bool]:
        if header is None:
            return None, True
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "basic":
            return None, False
        user, _, password = base64.b64decode(value).decode().partition(":")
        return user, (user, password) == (self.username, self.password)

    @staticmethod
    def _grant(username: str | None) -> Callable[[str], dict[str, object] | None]:
        def grant(scope: str) -> dict[str, object] | None:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            if kind != "repository" or not name:
                return None
            wanted = actions.split(",")
            if username is None:
                public = name.startswith(PUBLIC_PREFIX)
                wanted = ["pull"] if public and "pull" in wanted else []
            return {"type": kind, "name": name, "actions": wanted}

        return grant

    def sign(self, access: list[dict[str, object]]) -> str:
        now = int(time.time())
        der = _run(["openssl", "x509", "-in", str(self.cert_file), "-outform", "DER"])
        header = {"typ": "JWT", "alg": "RS256", "x5c": [base64.b64encode(der).decode()]}
        claims = {
            "iss": TOKEN_ISSUER,
            "sub": "test",
            "aud": TOKEN_SERVICE,
            "exp": now + 300,
            "nbf": now - 10,
            "iat": now,
            "jti": os.urandom(8).hex(),
            "access": access,
        }
        signing_input = f"{_b64url_json(header)}.{_b64url_json(claims)}"
        signature = _run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key_file)],
            signing_input.encode(),
        )
        return f"{signing_input}.{_b64url(signature)}"


def _answer(handler: BaseHTTPRequestHandler, status: int, body: object) -> None:
    data = json.dumps(body).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _b64url_json(value: object) -> str:
    return _b64url(json.dumps(value, separators=(",", ":")).encode())


# --- the registry handle ------------------------------------------------------------


@dataclass(frozen=True)
class RegistryServer:
    """A running registry; ``host`` is ``127.0.0.1:PORT``."""

    host: str
    url: str
    scheme: str
    username: str | None
    password: str | None
    ca_file: Path | None
    certs_dir: Path | None
    storage: Path
    token_server: TokenServer | None = None
    _token_cache: dict[str, str] = field(default_factory=dict, compare=False)

    def push_blob(self, repo: str, data: bytes) -> Digest:
        """Upload ``data`` as a blob of ``repo`` (POST, then PUT); return its digest."""
        digest = Digest.of(data)
        start = self._request("POST", f"/v2/{repo}/blobs/uploads/", repo)
        location = urllib.parse.urljoin(self.url, start.headers["Location"])
        sep = "&" if "?" in location else "?"
        self._request(
            "PUT",
            f"{location}{sep}digest={urllib.parse.quote(str(digest))}",
            repo,
            data,
            {"Content-Type": "application/octet-stream"},
        )
        return digest

    def push_manifest(
        self, repo: str, reference: str, data: bytes, media_type: str
    ) -> Digest:
        """PUT ``data`` verbatim as the manifest ``repo:reference`` (tag or digest)."""
        self._request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            repo,
            data,
            {"Content-Type": media_type},
        )
        return Digest.of(data)

    def push_image(
        self,
        repo: str,
        tag: str,
        layers: list[bytes],
        config: bytes = b"{}",
        layer_media_type: str = mediatype.OCI_LAYER_GZIP,
    ) -> tuple[Digest, bytes]:
        """Push config, layers and an OCI manifest; return its digest and bytes."""
        descriptors = [
            {"mediaType": layer_media_type, "digest": str(d), "size": len(b)}
            for b, d in ((b, self.push_blob(repo, b)) for b in layers)
        ]
        manifest = {
            "schemaVersion": 2,
            "mediaType": mediatype.OCI_MANIFEST,
            "config": {
                "mediaType": mediatype.OCI_CONFIG,
                "digest": str(self.push_blob(repo, config)),
                "size": len(config),
            },
            "layers": descriptors,
        }
        data = json.dumps(manifest, indent=2).encode()
        return self.push_manifest(repo, tag, data, mediatype.OCI_MANIFEST), data

    def _request(
        self,
        method: str,
        path_or_url: str,
        repo: str,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> urllib.response.addinfourl:
        url = urllib.parse.urljoin(self.url, path_or_url)
        all_headers = dict(headers or {})
        if data is not None:
            all_headers["Content-Length"] = str(len(data))
        auth = self._authorization(repo)
        if auth is not None:
            all_headers["Authorization"] = auth
        request = urllib.request.Request(url, data, all_headers, method=method)
        try:
            response: urllib.response.addinfourl = urllib.request.urlopen(
                request, timeout=30, context=self._ssl_context()
            )
        except urllib.error.HTTPError as exc:
            body = exc.read()[:2000].decode(errors="replace")
            raise RuntimeError(f"push {method} {url}: {exc.code} {body}") from exc
        with response:
            response.read()
        return response

    def _authorization(self, repo: str) -> str | None:
        if self.token_server is not None:
            return f"Bearer {self._push_token(repo)}"
        if self.username is not None:
            raw = f"{self.username}:{self.password}".encode()
            return f"Basic {base64.b64encode(raw).decode()}"
        return None

    def _push_token(self, repo: str) -> str:
        assert self.token_server is not None
        token = self._token_cache.get(repo)
        if token is not None:
            return token
        query = urllib.parse.urlencode(
            {"service": TOKEN_SERVICE, "scope": f"repository:{repo}:pull,push"}
        )
        raw = f"{self.username}:{self.password}".encode()
        request = urllib.request.Request(
            f"{self.token_server.url}?{query}",
            headers={"Authorization": f"Basic {base64.b64encode(raw).decode()}"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            body = json.loads(response.read())
        token = str(body.get("token") or body["access_token"])
        self._token_cache[repo] = token
        return token

    def _ssl_context(self) -> ssl.SSLContext | None:
        if self.scheme != "https":
            return None
        return ssl.create_default_context(cafile=str(self.ca_file))


# --- starting the registry ----------------------------------------------------------


def _run(argv: list[str], stdin: bytes | None = None) -> bytes:
    done = subprocess.run(argv, input=stdin, capture_output=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{argv[0]} {argv[1]}: {done.stderr.decode()[:2000]}")
    return done.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_ca(directory: Path) -> tuple[Path, Path]:
    """A test CA (certificate, key) in ``directory``."""
    cert, key = directory / "ca.crt", directory / "ca.key"
    _run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "3",
            "-subj", "/CN=sandpull test CA",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        ]
    )  # fmt: skip
    return cert, key


def make_server_cert(directory: Path, ca: tuple[Path, Path]) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 and localhost, signed by ``ca``."""
    cert, key, csr = (directory / n for n in ("server.crt", "server.key", "server.csr"))
    ext = directory / "server.ext"
    ext.write_text(
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
        "basicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n"
        "extendedKeyUsage=serverAuth\n"
        "subjectKeyIdentifier=hash\n"
        "authorityKeyIdentifier=keyid\n"
    )
    _run(
        [
            "openssl", "req", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
            "-out", str(csr), "-subj", "/CN=127.0.0.1",
        ]
    )  # fmt: skip
    _run(
        [
            "openssl", "x509", "-req", "-in", str(csr), "-CA", str(ca[0]),
            "-CAkey", str(ca[1]), "-CAcreateserial", "-out", str(cert),
            "-days", "3", "-extfile", str(ext),
        ]
    )  # fmt: skip
    return cert, key


def _make_signing_cert(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "token.crt", directory / "token.key"
    _run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes",
            "-keyout", str(key), "-out", str(cert), "-days", "3",
            "-subj", "/CN=sandpull test token signer",
        ]
    )  # fmt: skip
    return cert, key


def _config_yaml(port: int, storage: Path, http_extra: str, auth: str) -> str:
    return (
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {storage}\n"
        "  delete:\n    enabled: true\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: 127.0.0.1:{port}\n  secret: sandpull-test-secret\n"
        f"{http_extra}"
        f"{auth}"
    )


@dataclass
class _Process:
    popen: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def _start(directory: Path, config: str, port: int) -> _Process:
    config_file = directory / "config.yml"
    config_file.write_text(config)
    log = directory / "registry.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [REGISTRY_BINARY, "serve", str(config_file)],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    process = _Process(popen, log)
    _wait_listening(process, port)
    return process


def _wait_listening(process: _Process, port: int) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise RuntimeError(f"docker-registry exited: {process.log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    process.stop()
    raise RuntimeError(f"docker-registry did not listen on {port}")


def _server(root: Path, port: int, scheme: str, **kwargs: object) -> RegistryServer:
    host = f"127.0.0.1:{port}"
    return RegistryServer(
        host=host,
        url=f"{scheme}://{host}",
        scheme=scheme,
        storage=root / "storage",
        **kwargs,  # type: ignore[arg-type]
    )


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def registry_plain(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("registry-plain")
    port = free_port()
    process = _start(root, _config_yaml(port, root / "storage", "", ""), port)
    try:
        yield _server(
            root, port, "http", username=None, password=None, ca_file=None,
            certs_dir=None,
        )  # fmt: skip
    finally:
        process.stop()


@pytest.fixture(scope="session")
def registry_tls_basic(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("registry-tls")
    port = free_port()
    ca = make_ca(root)
    cert, key = make_server_cert(root, ca)
    certs_dir = root / "certs.d"
    for name in (f"127.0.0.1:{port}", f"localhost:{port}"):
        (certs_dir / name).mkdir(parents=True)
        (certs_dir / name / "ca.crt").write_bytes(ca[0].read_bytes())
    htpasswd = root / "htpasswd"
    htpasswd.write_bytes(_run(["htpasswd", "-Bbn", USERNAME, PASSWORD]))
    tls = f"  tls:\n    certificate: {cert}\n    key: {key}\n"
    auth = f"auth:\n  htpasswd:\n    realm: sandpull-test\n    path: {htpasswd}\n"
    process = _start(root, _config_yaml(port, root / "storage", tls, auth), port)
    try:
        yield _server(
            root, port, "https", username=USERNAME, password=PASSWORD,
            ca_file=ca[0], certs_dir=certs_dir,
        )  # fmt: skip
    finally:
        process.stop()


@pytest.fixture(scope="session")
def registry_token(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[RegistryServer]:
    root = tmp_path_factory.mktemp("registry-token")
    port = free_port()
    cert, key = _make_signing_cert(root)
    tokens = TokenServer(key_file=key, cert_file=cert, username=USERNAME,
                         password=PASSWORD)  # fmt: skip
    tokens.start()
    auth = (
        f"auth:\n  token:\n    realm: {tokens.url}\n    service: {TOKEN_SERVICE}\n"
        f"    issuer: {TOKEN_ISSUER}\n    rootcertbundle: {cert}\n"
    )
    try:
        process = _start(root, _config_yaml(port, root / "storage", "", auth), port)
    except BaseException:
        tokens.stop()
        raise
    try:
        yield _server(
            root, port, "http", username=USERNAME, password=PASSWORD, ca_file=None,
            certs_dir=None, token_server=tokens,
        )  # fmt: skip
    finally:
        process.stop()
        tokens.stop()


def cli_registry_options(server: RegistryServer, work: Path) -> list[str]:
    """``sandpull pull`` options that reach ``server``: config, CA dir, credentials.

    A plain-HTTP registry gets a registries.toml (written in ``work``) marking it
    insecure; with credentials, the password is expected on stdin.
    """
    options: list[str] = []
    if server.scheme == "http":
        config = work / "registries.toml"
        config.write_text(
            f'[[registry]]\nprefix = "{server.host}"\n'
            f'location = "{server.host}"\ninsecure = true\n'
        )
        options += ["--config", str(config)]
    if server.certs_dir is not None:
        options += ["--certs-dir", str(server.certs_dir)]
    if server.username is not None:
        options += ["--username", server.username, "--password-stdin"]
    return options
