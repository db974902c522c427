"""The main job's proofs: real sandboxes (the real agent), a private registry, runc.

One tenant network per module holds a real distribution registry bound to the
network's gateway; it is reachable only from sandboxes on that network. Images
are pushed through a second registry process on 127.0.0.1 serving the same
storage directory (the tenant's registry cannot be reached from the host), then
pulled by sandboxes from the tenant address.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandpull.sandbox import (
    Limits,
    NetworkChoice,
    NetworkManager,
    NetworkSpec,
    Sandbox,
    SandboxManager,
    SandboxSpec,
)
from sandpull.sandbox.spec import parse_subnet
from tests.support.images import Image, Pushed, push_image
from tests.support.registry_server import (
    REGISTRY_BINARY,
    RegistryServer,
    free_port,
)

SANDPULL = str(Path(sys.executable).with_name("sandpull"))
REGISTRY_PORT = 5000
SUBNET = "10.89.7.0/24"


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@dataclass(frozen=True)
class PrivateRegistry:
    """A registry inside tenant network ``network``, at ``host`` (gateway:5000)."""

    network: str
    host: str
    seeder: RegistryServer
    registries_config: Path

    def push(self, repo: str, image: Image, tag: str = "latest") -> Pushed:
        """Push through the host-side seeder; the result names the tenant host."""
        pushed = push_image(self.seeder, repo, tag, image)
        return Pushed(self.host, repo, tag, pushed.digest)


@dataclass
class Env:
    """A state dir with its manager; commands run with ``SANDPULL_STATE`` set."""

    state_dir: Path
    manager: SandboxManager

    def cli(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "SANDPULL_STATE": str(self.state_dir)}
        return subprocess.run(
            [SANDPULL, *args], capture_output=True, text=True, env=env,
            timeout=timeout, check=False,
        )  # fmt: skip

    def create(
        self,
        network: str,
        *,
        registry: PrivateRegistry | None = None,
        memory: int | None = None,
        storage: int = 256 << 20,
        prefix: str = "mj",
    ) -> Sandbox:
        spec = SandboxSpec(
            unique(prefix),
            NetworkChoice.parse(network),
            Limits(memory_bytes=memory),
            storage,
            registry.registries_config if registry else None,
        )
        return asyncio.run(self.manager.create(spec))


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root")
    state_dir = tmp_path_factory.mktemp("mainjob-state")
    found = Env(state_dir, SandboxManager(state_dir, ready_timeout=30))
    yield found
    for sandbox in found.manager.list():
        asyncio.run(found.manager.remove(sandbox.name))
    for network in found.manager.networks.list():
        asyncio.run(found.manager.networks.remove(network.name, force=True))


@pytest.fixture(scope="module")
def private_registry(
    env: Env, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[PrivateRegistry]:
    root = tmp_path_factory.mktemp("private-registry")
    networks = NetworkManager(env.state_dir)
    network = asyncio.run(
        networks.create(NetworkSpec(unique("tnet"), parse_subnet(SUBNET)))
    )
    gateway = str(network.gateway.ip)
    seed_port = free_port()
    inside = _start(root, "tenant", f"{gateway}:{REGISTRY_PORT}", network.exec_argv)
    try:
        seeder = _start(root, "seed", f"127.0.0.1:{seed_port}", None)
    except BaseException:
        inside.stop()
        raise
    host = f"{gateway}:{REGISTRY_PORT}"
    config = root / "registries.toml"
    config.write_text(f'[[registry]]\nlocation = "{host}"\ninsecure = true\n')
    server = RegistryServer(
        host=f"127.0.0.1:{seed_port}", url=f"http://127.0.0.1:{seed_port}",
        scheme="http", username=None, password=None, ca_file=None, certs_dir=None,
        storage=root / "storage",
    )  # fmt: skip
    try:
        yield PrivateRegistry(network.name, host, server, config)
    finally:
        seeder.stop()
        inside.stop()


@dataclass
class _Registry:
    popen: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.popen.terminate()
        try:
            self.popen.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


def _start(root: Path, name: str, address: str, wrap: object) -> _Registry:
    """docker-registry on ``address``, storage shared under ``root``."""
    config = root / f"{name}.yml"
    config.write_text(
        "version: 0.1\n"
        "log:\n  level: warn\n  accesslog:\n    disabled: true\n"
        f"storage:\n  filesystem:\n    rootdirectory: {root / 'storage'}\n"
        "  maintenance:\n    uploadpurging:\n      enabled: false\n"
        f"http:\n  addr: {address}\n  secret: sandpull-mainjob\n"
    )
    argv: Sequence[str] = [REGISTRY_BINARY, "serve", str(config)]
    if callable(wrap):
        argv = wrap(argv)
    with (root / f"{name}.log").open("wb") as log:
        popen = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    registry = _Registry(popen)
    probe_argv = wrap(_probe(address)) if callable(wrap) else _probe(address)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if popen.poll() is not None:
            raise RuntimeError(f"registry {name}: {(root / f'{name}.log').read_text()}")
        if subprocess.run(probe_argv, capture_output=True).returncode == 0:
            return registry
        time.sleep(0.1)
    registry.stop()
    raise RuntimeError(f"registry {name} did not listen on {address}")


def _probe(address: str) -> list[str]:
    host, port = address.rsplit(":", 1)
    return ["bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}"]
