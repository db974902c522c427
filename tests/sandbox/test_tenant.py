"""Tenant networks: reachable from their own sandboxes and from nowhere else."""

from __future__ import annotations

import errno
import ipaddress
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator

import pytest

from sandpull.errors import FailedPrecondition
from sandpull.sandbox import (
    NetworkChoice,
    NetworkSpec,
    Sandbox,
    SandboxManager,
    SandboxSpec,
    TenantNetwork,
    netlink,
)
from tests.sandbox.conftest import leftovers, unique

pytestmark = pytest.mark.root

PAYLOAD = 256 * 1024

# A TCP server that prints its port once listening and sends PAYLOAD bytes per client.
SERVER = f"""
import socket, sys
s = socket.socket()
s.bind((sys.argv[1], 0))
s.listen()
print(s.getsockname()[1], flush=True)
while True:
    c, _ = s.accept()
    c.sendall(b"x" * {PAYLOAD})
    c.close()
"""

# Exit 0 and print the byte count if the server answers within 2s, else exit 3.
CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
    n = 0
    while chunk := c.recv(65536):
        n += len(chunk)
    print(n)
except OSError as exc:
    print(exc)
    sys.exit(3)
"""


StartServer = Callable[[TenantNetwork], tuple[str, int]]


@pytest.fixture
def server_on(manager: SandboxManager) -> Iterator[StartServer]:
    servers: list[subprocess.Popen[str]] = []

    def start(network: TenantNetwork) -> tuple[str, int]:
        host = str(network.gateway.ip)
        argv = network.exec_argv([sys.executable, "-c", SERVER, host])
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
        servers.append(proc)
        assert proc.stdout is not None
        return host, int(proc.stdout.readline())

    yield start
    for proc in servers:
        proc.kill()
        proc.wait()


async def fetch(sandbox: Sandbox, host: str, port: int) -> tuple[int, str]:
    result = await sandbox.exec([sys.executable, "-c", CLIENT, host, str(port)])
    return result.returncode, result.stdout.decode().strip()


async def network(manager: SandboxManager, subnet: str) -> TenantNetwork:
    spec = NetworkSpec(unique("net"), ipaddress.IPv4Network(subnet))
    return await manager.networks.create(spec)


async def sandbox_on(manager: SandboxManager, choice: str) -> Sandbox:
    spec = SandboxSpec(
        unique("sb"), NetworkChoice.parse(choice), storage_bytes=32 << 20
    )
    return await manager.create(spec)


async def test_tenant_sandbox_reaches_the_tenant_server_and_counts_bytes(
    manager: SandboxManager, server_on: StartServer
) -> None:
    net = await network(manager, "10.89.211.0/24")
    host, port = server_on(net)
    sandbox = await sandbox_on(manager, f"tenant:{net.name}")
    before = await sandbox.rx_bytes()

    assert await fetch(sandbox, host, port) == (0, str(PAYLOAD))
    assert await sandbox.rx_bytes() - before >= PAYLOAD


@pytest.mark.parametrize(
    "other",
    ["bridge", "tenant", "none"],
    ids=[
        "a bridge sandbox cannot reach a tenant server",
        "a sandbox on another tenant network cannot reach it",
        "a sandbox without network cannot reach it",
    ],
)
async def test_tenant_server_is_unreachable_from_outside(
    manager: SandboxManager, server_on: StartServer, other: str
) -> None:
    net = await network(manager, "10.89.212.0/24")
    host, port = server_on(net)
    if other == "tenant":
        elsewhere = await network(manager, "10.89.213.0/24")
        other = f"tenant:{elsewhere.name}"
    sandbox = await sandbox_on(manager, other)

    code, _ = await fetch(sandbox, host, port)
    assert code == 3


async def test_tenant_server_is_unreachable_from_the_host(
    manager: SandboxManager, server_on: StartServer
) -> None:
    net = await network(manager, "10.89.214.0/24")
    host, port = server_on(net)
    # Refused by the host's own routing table at once, never sent off the machine.
    with pytest.raises(OSError) as caught:
        socket.create_connection((host, port), timeout=2).close()
    assert caught.value.errno == errno.EHOSTUNREACH


async def test_removing_a_tenant_network_removes_its_host_route(
    manager: SandboxManager,
) -> None:
    net = await network(manager, "10.89.217.0/24")
    assert "unreachable 10.89.217.0/24" in _host_routes()
    await manager.networks.remove(net.name)
    assert "10.89.217.0/24" not in _host_routes()


def _host_routes() -> str:
    return subprocess.run(
        ["ip", "route", "show", "type", "unreachable"],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip


async def test_tenant_network_has_no_link_to_the_host(
    manager: SandboxManager,
) -> None:
    net = await network(manager, "10.89.215.0/24")
    assert sorted(await netlink.link_names(net.netns)) == ["br0", "lo"]
    assert await netlink.default_routes(net.netns) == 0


async def test_network_in_use_is_kept_until_its_sandboxes_are_gone(
    manager: SandboxManager,
) -> None:
    net = await network(manager, "10.89.216.0/24")
    sandbox = await sandbox_on(manager, f"tenant:{net.name}")
    with pytest.raises(FailedPrecondition, match="1 sandbox"):
        await manager.networks.remove(net.name)

    await manager.remove(sandbox.name)
    assert leftovers(sandbox) == []
    await manager.networks.remove(net.name)
    assert manager.networks.list() == []
    assert net.netns not in (p.name for p in netlink.NETNS_DIR.iterdir())
