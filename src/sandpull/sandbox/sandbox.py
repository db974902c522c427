"""A running (or half-made) sandbox, as seen from the host."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from sandpull.errors import FailedPrecondition
from sandpull.sandbox import netlink, process, state

STORE_DIR = "store"
SOCKET_DIR = "sock"
SOCKET = "agent.sock"
CONFIG_DIR = "config"
DISK_IMAGE = "disk.img"
READY = "ready"
AGENT_LOG = "agent.log"


@dataclasses.dataclass(frozen=True)
class Interface:
    """A sandbox's veth pair: ``outer`` in ``outer_netns`` (None: the host),
    ``inner`` inside the sandbox's network namespace."""

    outer: str
    outer_netns: str | None
    inner: str
    netns: str


@dataclasses.dataclass(frozen=True)
class Sandbox:
    """One sandbox; a snapshot of its record, so re-``get`` it to see changes."""

    record: state.SandboxRecord
    directory: Path

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def agent_socket(self) -> Path:
        """The agent's ttrpc socket, a host path (the only way to the agent)."""
        return self.socket_dir / SOCKET

    @property
    def socket_dir(self) -> Path:
        """The one directory of the host the agent may write to: its socket's."""
        return self.directory / SOCKET_DIR

    @property
    def config_dir(self) -> Path:
        """Registry configuration given at creation, read-only to the agent."""
        return self.directory / CONFIG_DIR

    @property
    def store_root(self) -> Path:
        """Where the private disk is mounted, inside the sandbox's mount namespace."""
        return self.directory / STORE_DIR

    @property
    def disk_image(self) -> Path:
        return self.directory / DISK_IMAGE

    @property
    def interface(self) -> Interface | None:
        """The veth pair, or None for ``--network none``."""
        if self.record.outer_veth is None:
            return None
        return Interface(
            self.record.outer_veth, self.record.outer_netns, "eth0", self.record.netns
        )

    def alive(self) -> bool:
        """True while the agent (pid 1 of the sandbox) runs."""
        agent = self.record.agent_ref()
        return agent is not None and agent.alive()

    async def rx_bytes(self) -> int:
        """Bytes the kernel received on the sandbox side of its veth."""
        interface = self.interface
        if interface is None:
            raise FailedPrecondition(
                f"read rx_bytes of sandbox {self.name}: no network"
            )
        return await netlink.rx_bytes(interface.netns, interface.inner)

    async def exec(
        self, argv: Sequence[str], timeout: float = 60.0
    ) -> process.ExecResult:
        """Run ``argv`` in every namespace and the cgroup of the sandbox."""
        agent = self.record.agent_ref()
        if agent is None or not agent.alive():
            raise FailedPrecondition(f"exec in sandbox {self.name}: agent not running")
        cgroups = [Path(d) / "cgroup.procs" for d in self.record.cgroup_dirs]
        full = process.enter_argv(agent, cgroups, argv)
        return await process.run(
            full, f"exec {argv[0]} in sandbox {self.name}", timeout
        )

    def to_dict(self) -> dict[str, object]:
        """What ``sandbox inspect`` and ``sandbox list --json`` show."""
        record = self.record
        agent = record.agent_ref()
        return {
            "name": record.name,
            "phase": record.phase,
            "alive": self.alive(),
            "network": record.network,
            "address": record.address,
            "netns": record.netns,
            "interface": dataclasses.asdict(self.interface) if self.interface else None,
            "agent_pid": agent.pid if agent else None,
            "agent_socket": str(self.agent_socket),
            "store_root": str(self.store_root),
            "storage_bytes": record.storage_bytes,
            "limits": {
                "memory_bytes": record.memory_bytes,
                "cpus": record.cpus,
                "pids": record.pids,
            },
            "cgroups": list(record.cgroup_dirs),
            "created_at": record.created_at,
        }
