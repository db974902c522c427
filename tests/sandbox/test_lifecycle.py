"""Sandboxes on the real kernel: namespaces, disk, cgroup, state, cleanup."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from sandpull.errors import AlreadyExists, FailedPrecondition, NotFound
from sandpull.sandbox import (
    AgentCommand,
    Limits,
    NetworkChoice,
    SandboxManager,
    SandboxSpec,
    netlink,
)
from tests.sandbox.conftest import leftovers, unique

pytestmark = pytest.mark.root

SMALL_DISK = 32 << 20


def spec(name: str, network: str = "bridge", **limits: int) -> SandboxSpec:
    choice = NetworkChoice.parse(network)
    return SandboxSpec(name, choice, Limits(**limits), SMALL_DISK)


@pytest.mark.parametrize(
    "network",
    ["bridge", "none"],
    ids=["bridge sandbox is removed without a trace", "none sandbox is removed too"],
)
async def test_create_list_inspect_rm_leaves_nothing_behind(
    manager: SandboxManager, network: str
) -> None:
    name = unique("life")
    sandbox = await manager.create(spec(name, network))

    assert [s.name for s in manager.list()] == [name]
    assert manager.get(name).to_dict()["alive"] is True
    assert set(leftovers(sandbox)) >= {"netns", "state dir", "agent process"}

    await manager.remove(name)
    assert leftovers(sandbox) == []
    assert manager.list() == []


async def test_agent_is_pid_1_of_the_sandbox(manager: SandboxManager) -> None:
    sandbox = await manager.create(spec(unique("pid"), "none"))
    result = await sandbox.exec(["cat", "/proc/1/cmdline"])
    assert result.stdout.split(b"\0")[:2] == [b"sleep", b"infinity"]


async def test_disk_is_mounted_inside_and_invisible_on_the_host(
    manager: SandboxManager,
) -> None:
    sandbox = await manager.create(spec(unique("disk"), "none"))
    store = str(sandbox.store_root)

    inside = await sandbox.exec(["stat", "-f", "-c", "%T %b %S", store])
    fs_type, blocks, block_size = inside.stdout.decode().split()
    assert fs_type == "ext2/ext3"
    assert int(blocks) * int(block_size) <= SMALL_DISK
    assert store not in Path("/proc/self/mountinfo").read_text()
    assert os.listdir(store) == []


async def test_cgroup_holds_the_limits_and_the_processes(
    manager: SandboxManager,
) -> None:
    sandbox = await manager.create(
        spec(unique("cg"), "none", memory_bytes=64 << 20, pids=32)
    )
    dirs = {Path(d).parts[-3]: Path(d) for d in sandbox.record.cgroup_dirs}
    if sandbox.record.cgroup_version == 1:
        memory = dirs["memory"] / "memory.limit_in_bytes"
        pids = dirs["pids"] / "pids.max"
    else:
        (only,) = sandbox.record.cgroup_dirs
        memory, pids = Path(only) / "memory.max", Path(only) / "pids.max"
    assert memory.read_text().strip() == str(64 << 20)
    assert pids.read_text().strip() == "32"

    result = await sandbox.exec(["cat", "/proc/self/cgroup"])
    assert f"/sandpull/{sandbox.record.key}" in result.stdout.decode()


async def test_none_network_has_loopback_and_no_route(
    manager: SandboxManager,
) -> None:
    sandbox = await manager.create(spec(unique("none"), "none"))
    assert await netlink.link_names(sandbox.record.netns) == ["lo"]
    assert await netlink.default_routes(sandbox.record.netns) == 0
    assert sandbox.interface is None


async def test_bridge_network_has_a_default_route_and_nat(
    manager: SandboxManager,
) -> None:
    sandbox = await manager.create(spec(unique("br"), "bridge"))
    assert await netlink.default_routes(sandbox.record.netns) == 1
    assert sandbox.interface is not None
    assert sandbox.interface.outer in await netlink.link_names()
    assert await sandbox.rx_bytes() >= 0
    assert "nat rule" in leftovers(sandbox)


async def test_state_survives_a_new_manager(
    manager: SandboxManager, state_dir: Path
) -> None:
    name = unique("keep")
    created = await manager.create(spec(name, "none"))

    again = SandboxManager(state_dir, agent=manager.agent)
    found = again.get(name)
    assert found.alive()
    assert found.record == created.record
    assert [s.name for s in again.list()] == [name]


async def test_killed_agent_shows_dead_and_rm_cleans_up(
    manager: SandboxManager, state_dir: Path
) -> None:
    name = unique("dead")
    sandbox = await manager.create(spec(name, "bridge"))
    assert sandbox.record.agent is not None

    os.kill(sandbox.record.agent[0], signal.SIGKILL)
    while manager.get(name).alive():
        await asyncio.sleep(0.05)
    assert SandboxManager(state_dir).list()[0].to_dict()["alive"] is False

    await manager.remove(name)
    assert leftovers(sandbox) == []


async def test_agent_that_exits_at_once_fails_create_and_leaves_nothing(
    state_dir: Path, manager: SandboxManager
) -> None:
    failing = SandboxManager(state_dir, agent=AgentCommand(("false",), False))
    name = unique("fail")
    with pytest.raises(FailedPrecondition, match=f"start sandbox {name}"):
        await failing.create(spec(name, "bridge"))
    assert not (state_dir / "sandboxes" / name).exists()
    assert not any(name in ns for ns in os.listdir(netlink.NETNS_DIR))


async def test_agent_that_never_serves_its_socket_times_out_and_is_removed(
    state_dir: Path, manager: SandboxManager
) -> None:
    silent = SandboxManager(
        state_dir, agent=AgentCommand(("sleep", "infinity")), ready_timeout=0.5
    )
    name = unique("mute")
    with pytest.raises(FailedPrecondition, match="did not serve"):
        await silent.create(spec(name, "none"))
    assert silent.list() == []


async def test_same_name_twice_is_already_exists(manager: SandboxManager) -> None:
    name = unique("twice")
    await manager.create(spec(name, "none"))
    with pytest.raises(AlreadyExists, match=f"create sandbox {name}"):
        await manager.create(spec(name, "none"))
    assert manager.get(name).alive()


async def test_unknown_tenant_network_is_not_found_and_leaves_nothing(
    manager: SandboxManager,
) -> None:
    name = unique("lost")
    with pytest.raises(NotFound, match="no-such-net"):
        await manager.create(spec(name, "tenant:no-such-net"))
    assert manager.list() == []


async def test_half_created_sandbox_is_removed(
    manager: SandboxManager, state_dir: Path
) -> None:
    name = unique("half")
    (state_dir / "sandboxes" / name).mkdir(parents=True)
    await manager.remove(name)
    assert not (state_dir / "sandboxes" / name).exists()


async def test_remove_of_unknown_sandbox_is_not_found(
    manager: SandboxManager,
) -> None:
    with pytest.raises(NotFound, match="remove sandbox"):
        await manager.remove(unique("ghost"))
