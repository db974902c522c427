"""Tenant networks: a private subnet on a bridge inside its own network namespace.

A tenant network has no link to the host, so what runs in it (a private
registry, say) is reachable only from the sandboxes attached to it.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import logging
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from sandpull.errors import AlreadyExists, FailedPrecondition, NotFound, from_os_error
from sandpull.sandbox import netlink, state
from sandpull.sandbox.spec import NetworkSpec, validate_name

log = logging.getLogger(__name__)

BRIDGE = "br0"


@dataclasses.dataclass(frozen=True)
class TenantNetwork:
    """One tenant network as recorded in its state dir."""

    record: state.NetworkRecord
    directory: Path

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def netns(self) -> str:
        return self.record.netns

    @property
    def subnet(self) -> ipaddress.IPv4Network:
        return ipaddress.IPv4Network(self.record.subnet)

    @property
    def gateway(self) -> ipaddress.IPv4Interface:
        """The bridge's own address: the subnet's first host."""
        first = next(self.subnet.hosts())
        return ipaddress.IPv4Interface(f"{first}/{self.subnet.prefixlen}")

    @property
    def lease_dir(self) -> Path:
        return self.directory / "leases"

    def exec_argv(self, argv: Sequence[str]) -> list[str]:
        """An argv that runs ``argv`` inside the network's namespace."""
        return ["nsenter", f"--net={netlink.netns_path(self.netns)}", "--", *argv]

    def attached(self) -> list[str]:
        """Network namespaces of the sandboxes holding an address here."""
        if not self.lease_dir.is_dir():
            return []
        holders = (lease.read_text() for lease in self.lease_dir.iterdir())
        return [h for h in holders if h and netlink.netns_path(h).exists()]

    def to_dict(self) -> dict[str, object]:
        return {
            "name": self.name,
            "netns": self.netns,
            "subnet": str(self.subnet),
            "gateway": str(self.gateway.ip),
            "bridge": self.record.bridge,
            "sandboxes": len(self.attached()),
        }


class NetworkManager:
    """Creates, finds and removes tenant networks under ``state_dir/networks``."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.root = state_dir / "networks"

    async def create(self, spec: NetworkSpec) -> TenantNetwork:
        """Create the network; AlreadyExists if its name is taken."""
        directory = self.root / spec.name
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            directory.mkdir()
        except FileExistsError:
            raise AlreadyExists(f"create network {spec.name}: it exists") from None
        except OSError as exc:
            raise from_os_error(f"create network dir {directory}", exc) from exc
        key = state.object_key(self.state_dir, "network", spec.name)
        record = state.NetworkRecord(
            spec.name, key, time.time(), f"sandpull-net-{spec.name}-{key[:8]}",
            str(spec.subnet), BRIDGE,
        )  # fmt: skip
        state.save(directory, record)
        network = TenantNetwork(record, directory)
        try:
            await netlink.create_netns(record.netns)
            await netlink.ensure_bridge(BRIDGE, network.gateway, record.netns)
            await netlink.add_unreachable_route(network.subnet)
        except BaseException:
            await self.remove(spec.name, force=True)
            raise
        log.info("created tenant network %s (%s)", spec.name, spec.subnet)
        return network

    def get(self, name: str) -> TenantNetwork:
        directory = self.root / validate_name("network", name)
        try:
            record = state.load(directory, state.NetworkRecord)
        except NotFound:
            raise NotFound(f"find network {name}: no such tenant network") from None
        return TenantNetwork(record, directory)

    def list(self) -> list[TenantNetwork]:
        if not self.root.is_dir():
            return []
        found = []
        for directory in sorted(self.root.iterdir()):
            try:
                found.append(self.get(directory.name))
            except NotFound:
                continue
        return found

    async def remove(self, name: str, *, force: bool = False) -> None:
        """Remove the network; refuse while sandboxes use it unless ``force``."""
        directory = self.root / validate_name("network", name)
        if directory.is_dir() and not (directory / state.STATE_FILE).exists():
            shutil.rmtree(directory, ignore_errors=True)  # creation died early
            return
        network = self.get(name)
        users = network.attached()
        if users and not force:
            raise FailedPrecondition(
                f"remove network {name}: {len(users)} sandbox(es) still attached"
            )
        await netlink.remove_unreachable_route(network.subnet)
        netlink.remove_netns(network.netns)
        shutil.rmtree(network.directory, ignore_errors=True)
        log.info("removed tenant network %s", name)
