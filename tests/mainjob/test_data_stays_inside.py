"""Image data pulled in a sandbox stays on its private disk, seen by no one else."""

from __future__ import annotations

import asyncio
import os
import secrets
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from sandpull.agent import AgentClient
from tests.mainjob.conftest import Env, PrivateRegistry
from tests.mainjob.images import marker_image

pytestmark = [pytest.mark.root, pytest.mark.registry]

MARKER = f"sandpull-marker-{secrets.token_hex(16)}".encode()
CHUNK = 1 << 20


def test_a_pulled_marker_is_on_the_sandbox_disk_and_nowhere_on_the_host(
    env: Env,
    private_registry: PrivateRegistry,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    pushed = private_registry.push("tenant/secret", marker_image(MARKER))
    sandbox = env.create(
        f"tenant:{private_registry.network}", registry=private_registry
    )

    done = env.cli("pull", "--sandbox", sandbox.name, pushed.ref)

    assert done.returncode == 0, done.stderr
    inside = asyncio.run(
        sandbox.exec(["grep", "-rlF", MARKER.decode(), str(sandbox.store_root)])
    )
    assert inside.returncode == 0, "the marker must be in the sandbox's own store"
    roots = [env.state_dir, Path("/run"), Path("/tmp"), Path("/var/lib/sandpull"),
             tmp_path_factory.getbasetemp()]  # fmt: skip
    # The registry's storage holds the compressed layer: it is the tenant's
    # registry, standing in for a machine elsewhere.
    skip = {sandbox.disk_image, private_registry.seeder.storage}
    assert list(files_containing(roots, MARKER, skip)) == []


def test_another_sandbox_does_not_list_the_image(
    env: Env, private_registry: PrivateRegistry
) -> None:
    pushed = private_registry.push("tenant/secret", marker_image(MARKER))
    network = f"tenant:{private_registry.network}"
    owner = env.create(network, registry=private_registry)
    other = env.create(network, registry=private_registry)
    assert env.cli("pull", "--sandbox", owner.name, pushed.ref).returncode == 0

    async def names(socket: Path) -> list[str]:
        async with AgentClient(str(socket), timeout=30) as agent:
            images = (await agent.list_images()).images
        return [tag for image in images for tag in image.repo_tags]

    assert asyncio.run(names(owner.agent_socket)) == [pushed.ref]
    assert asyncio.run(names(other.agent_socket)) == []


def files_containing(
    roots: Iterable[Path], needle: bytes, skip: set[Path]
) -> Iterator[Path]:
    """Regular files under ``roots`` holding ``needle``; symlinks are not followed."""
    seen: set[tuple[int, int]] = set()
    for root in roots:
        for directory, dirs, files in os.walk(root):
            here = Path(directory)
            dirs[:] = [d for d in dirs if here / d not in skip]
            for name in files:
                path = here / name
                if path in skip:
                    continue
                try:
                    info = path.lstat()
                except OSError:
                    continue
                key = (info.st_dev, info.st_ino)
                if not stat.S_ISREG(info.st_mode) or key in seen:
                    continue
                seen.add(key)
                if _holds(path, needle):
                    yield path


def _holds(path: Path, needle: bytes) -> bool:
    tail = b""
    try:
        with open(path, "rb") as file:
            while chunk := file.read(CHUNK):
                if needle in tail + chunk:
                    return True
                tail = chunk[-len(needle) :]
    except OSError:
        return False
    return False
