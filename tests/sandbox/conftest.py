"""Fixtures for sandbox tests: a manager on a private state dir, cleaned up after."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sandpull.sandbox import AgentCommand, Sandbox, SandboxManager

# A stand-in for the agent: pid 1 that lives until killed.
STAND_IN = AgentCommand(("sleep", "infinity"), wait_for_socket=False)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def state_dir(tmp_path: Path) -> Path:
    return tmp_path / "state"


@pytest.fixture
async def manager(state_dir: Path) -> AsyncIterator[SandboxManager]:
    if os.geteuid() != 0:
        pytest.skip("sandboxes need root")
    manager = SandboxManager(state_dir, agent=STAND_IN, ready_timeout=20)
    yield manager
    root = state_dir / "sandboxes"
    for directory in root.iterdir() if root.is_dir() else ():
        await manager.remove(directory.name)
    for network in manager.networks.list():
        await manager.networks.remove(network.name, force=True)


def leftovers(sandbox: Sandbox) -> list[str]:
    """What of ``sandbox`` the kernel and the state dir still show, by tool."""
    record = sandbox.record
    found = []
    if record.netns in _run("ip", "netns", "list"):
        found.append("netns")
    if record.outer_veth and record.outer_veth in _links(record.outer_netns):
        found.append("veth")
    if str(sandbox.store_root) in Path("/proc/self/mountinfo").read_text():
        found.append("host mount")
    if str(sandbox.disk_image) in _run("losetup", "-a"):
        found.append("loop device")
    found += [f"cgroup {d}" for d in record.cgroup_dirs if Path(d).exists()]
    if f"sandpull {record.key}" in _run("iptables", "-t", "nat", "-S"):
        found.append("nat rule")
    if sandbox.directory.exists():
        found.append("state dir")
    if record.agent and _running(record.agent[0]):
        found.append("agent process")
    return found


def _running(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _links(netns: str | None) -> str:
    if netns is None:
        return _run("ip", "-o", "link", "show")
    if netns not in _run("ip", "netns", "list"):
        return ""
    return _run("ip", "-n", netns, "-o", "link", "show")


def _run(*argv: str) -> str:
    assert shutil.which(argv[0]), f"{argv[0]} is not installed"
    return subprocess.run(argv, capture_output=True, text=True, check=True).stdout
