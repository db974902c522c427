"""An agent served in-process on a unix socket, over a store of busybox images."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from sandpull.agent import AgentClient, AgentService, PullAccounting
from sandpull.ttrpc import Server
from tests.agent.store import FakeImageStore, busybox_layer, make_image, motd_layer

IMAGE = "registry.test:5000/tools/busybox:1"
APP_IMAGE = "registry.test:5000/tools/app:1"


@pytest.fixture
def workdir() -> Iterator[Path]:
    # Short: the agent's socket lives here, and unix socket paths are limited.
    path = Path(tempfile.mkdtemp(prefix="sp-ag-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def store(workdir: Path) -> FakeImageStore:
    base, motd = workdir / "snap" / "1" / "fs", workdir / "snap" / "2" / "fs"
    busybox_layer(base)
    motd_layer(motd)
    accounting = PullAccounting()
    store = FakeImageStore(workdir / "root", accounting.on_bytes)
    store.root.mkdir()
    store.remote[IMAGE] = make_image(IMAGE, [base], {"Cmd": ["/bin/sh"]})
    app_run = {
        "Entrypoint": ["/bin/sh", "-c"],
        "Cmd": ["echo from image"],
        "Env": ["GREETING=hello", "PATH=/bin"],
        "WorkingDir": "/home/app",
        "User": "app",
    }
    store.remote[APP_IMAGE] = make_image(APP_IMAGE, [base, motd], app_run)
    store.accounting = accounting  # type: ignore[attr-defined]
    return store


@pytest.fixture
async def agent(
    store: FakeImageStore, workdir: Path
) -> AsyncIterator[tuple[AgentClient, AgentService]]:
    service = AgentService(store, store.accounting)  # type: ignore[attr-defined]
    server = Server()
    service.register(server)
    socket = str(workdir / "agent.sock")
    await server.listen_unix(socket)
    client = AgentClient(socket, timeout=60)
    yield client, service
    await client.close()
    for container in service.containers.list():
        await service.containers.remove(container.id, force=True)
    await server.close()
    await service.close()


@pytest.fixture
def client(agent: tuple[AgentClient, AgentService]) -> AgentClient:
    return agent[0]
