"""Fixtures for fault tests: a fault proxy in front of a real registry, and a store.

``start_proxy(server, rules)`` puts a :class:`FaultProxy` in front of a registry
fixture; ``open_store(proxy_host, ...)`` makes an :class:`ImageService` whose
registry client reaches the registry only through that proxy, with short retry
delays and a short progress deadline so faults show quickly.
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import pytest

from sandpull.images import ImageService
from sandpull.images.remote import OnBytes, Registry
from sandpull.registry import (
    Credential,
    CredentialStore,
    RegistriesConfig,
    RegistryClient,
    RetryPolicy,
)
from tests.faults.proxy import FaultProxy, Rule
from tests.registry.fault_server import fault_server
from tests.support.registry_server import RegistryServer

__all__ = ["fault_server", "open_store", "start_proxy"]

FAST_RETRY = RetryPolicy(attempts=4, initial_delay=0.01, max_delay=0.05)
PROGRESS_TIMEOUT = 2.0

StartProxy = Callable[..., Awaitable[FaultProxy]]
OpenStore = Callable[..., ImageService]


@pytest.fixture
async def start_proxy() -> AsyncIterator[StartProxy]:
    """``await start_proxy(server, rules, ssl_context=None)``."""
    started: list[FaultProxy] = []

    async def start(
        server: RegistryServer,
        rules: list[Rule] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> FaultProxy:
        upstream_ssl: ssl.SSLContext | bool = True
        if server.ca_file is not None:
            upstream_ssl = ssl.create_default_context(cafile=str(server.ca_file))
        proxy = FaultProxy(
            server.url, list(rules or []), ssl_context, upstream_ssl=upstream_ssl
        )
        started.append(await proxy.start())
        return proxy

    yield start
    for proxy in started:
        await proxy.stop()


def registries_for(host: str, insecure: bool = True) -> RegistriesConfig:
    flag = "true" if insecure else "false"
    return RegistriesConfig.parse(
        f'[[registry]]\nprefix = "{host}"\nlocation = "{host}"\ninsecure = {flag}\n'
    )


def credentials_for(server: RegistryServer, host: str) -> CredentialStore:
    if server.username is None:
        return CredentialStore(use_docker_config=False)
    explicit = {host: Credential(username=server.username, password=server.password)}
    return CredentialStore(explicit=explicit, use_docker_config=False)


@pytest.fixture
def open_store(tmp_path: Path) -> Iterator[OpenStore]:
    """``open_store(host, insecure=True, certs_dir=None, root=None)``."""
    opened: list[ImageService] = []

    def open_(
        host: str,
        insecure: bool = True,
        certs_dir: Path | None = None,
        root: Path | None = None,
    ) -> ImageService:
        config = registries_for(host, insecure)

        def factory(credentials: object, on_bytes: OnBytes) -> Registry:
            client: Registry = RegistryClient(
                config=config,
                credentials=credentials,  # type: ignore[arg-type]
                certs_dir=certs_dir,
                on_bytes=on_bytes,
                progress_timeout=PROGRESS_TIMEOUT,
                retry=FAST_RETRY,
            )
            return client

        service = ImageService(
            root or tmp_path / f"store{len(opened)}", registry_factory=factory
        )
        opened.append(service)
        return service

    yield open_
    for service in opened:
        service.close()
