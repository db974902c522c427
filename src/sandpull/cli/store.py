"""The host image store as the command line uses it, apart from any output.

Commands call these functions; a later ``--sandbox NAME`` option routes the same
requests to a sandbox's agent instead.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandpull.images import ImageService, ProgressCallback, PulledImage
from sandpull.oci import Platform, Reference

DEFAULT_ROOT = Path("/var/lib/sandpull")


def default_root() -> Path:
    """``$SANDPULL_ROOT`` or :data:`DEFAULT_ROOT`."""
    return Path(os.environ.get("SANDPULL_ROOT") or DEFAULT_ROOT)


@dataclass(frozen=True)
class PullOptions:
    reference: str
    root: Path
    platform: str | None = None
    config: Path | None = None
    certs_dir: Path | None = None
    username: str | None = None
    password: str | None = None
    progress_timeout: float | None = None


@asynccontextmanager
async def open_store(
    root: Path,
    config: Path | None = None,
    certs_dir: Path | None = None,
    progress_timeout: float | None = None,
) -> AsyncIterator[ImageService]:
    registry_config: Any = None
    if config is not None:
        from sandpull.registry import RegistriesConfig

        registry_config = RegistriesConfig.load(config)
    extra: dict[str, Any] = {}
    if progress_timeout is not None:
        extra["progress_timeout"] = progress_timeout
    service = ImageService(
        root, registry_config=registry_config, certs_dir=certs_dir, **extra
    )
    try:
        yield service
    finally:
        service.close()


async def pull(options: PullOptions, progress: ProgressCallback | None) -> PulledImage:
    """Pull into the host store at ``options.root``."""
    ref = Reference.parse(options.reference)
    platform = Platform.parse(options.platform) if options.platform else None
    credentials = _credentials(ref, options.username, options.password)
    async with open_store(
        options.root, options.config, options.certs_dir, options.progress_timeout
    ) as store:
        return await store.pull(ref, platform, credentials, progress)


def _credentials(ref: Reference, username: str | None, password: str | None) -> Any:
    from sandpull.registry import Credential, CredentialStore

    if username is None:
        return CredentialStore()
    explicit = {ref.registry: Credential(username=username, password=password)}
    return CredentialStore(explicit=explicit, use_docker_config=False)
