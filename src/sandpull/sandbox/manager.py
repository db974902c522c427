"""Create, find and remove ``ns`` sandboxes; state lives under ``state_dir``."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
import os
import shlex
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path

from sandpull.errors import (
    AlreadyExists,
    FailedPrecondition,
    NotFound,
    SandpullError,
    from_os_error,
)
from sandpull.sandbox import cgroup, disk, ipam, nat, netlink, process, rootfs, state
from sandpull.sandbox.sandbox import AGENT_LOG, READY, STORE_DIR, Sandbox
from sandpull.sandbox.spec import Limits, NetworkMode, SandboxSpec, validate_name
from sandpull.sandbox.tenant import BRIDGE as TENANT_BRIDGE
from sandpull.sandbox.tenant import NetworkManager

log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class AgentCommand:
    """The command run as pid 1; ``{root}`` and ``{socket}`` are filled in.

    With ``wait_for_socket`` the sandbox counts as created only once the agent
    has made its socket.
    """

    argv: tuple[str, ...]
    wait_for_socket: bool = True

    @classmethod
    def default(cls) -> AgentCommand:
        """``$SANDPULL_AGENT_COMMAND`` or ``sandpull agent serve``."""
        configured = os.environ.get("SANDPULL_AGENT_COMMAND")
        if configured:
            return cls(tuple(shlex.split(configured)), "{socket}" in configured)
        sandpull = str(Path(sys.executable).with_name("sandpull"))
        return cls(
            (sandpull, "agent", "serve", "--root", "{root}", "--socket", "{socket}")
        )

    def render(
        self,
        root: Path,
        socket: Path,
        config: Path | None = None,
        certs_dir: Path | None = None,
    ) -> tuple[str, ...]:
        """The argv; ``--config`` and ``--certs-dir`` are appended when given."""
        argv = [a.format(root=root, socket=socket) for a in self.argv]
        if config is not None:
            argv += ["--config", str(config)]
        if certs_dir is not None:
            argv += ["--certs-dir", str(certs_dir)]
        return tuple(argv)


BRIDGE_SUBNET = ipaddress.IPv4Network("10.88.0.0/24")


@dataclasses.dataclass(frozen=True)
class BridgeConfig:
    """The host bridge for ``--network bridge``; its subnet is never routed out."""

    name: str = "sandpull0"
    subnet: ipaddress.IPv4Network = BRIDGE_SUBNET
    lease_root: Path = Path("/run/sandpull/bridges")

    @property
    def gateway(self) -> ipaddress.IPv4Interface:
        return ipaddress.IPv4Interface(
            f"{next(self.subnet.hosts())}/{self.subnet.prefixlen}"
        )

    @property
    def lease_dir(self) -> Path:
        return self.lease_root / self.name


class SandboxManager:
    """The ``ns`` backend: sandboxes under ``state_dir/sandboxes/<name>/``."""

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        agent: AgentCommand | None = None,
        bridge: BridgeConfig = BridgeConfig(),
        ready_timeout: float = 30.0,
    ) -> None:
        self.state_dir = (
            state_dir if state_dir is not None else state.default_state_dir()
        )
        self.root = self.state_dir / "sandboxes"
        self.agent = agent if agent is not None else AgentCommand.default()
        self.bridge = bridge
        self.ready_timeout = ready_timeout
        self.networks = NetworkManager(self.state_dir)

    async def create(self, spec: SandboxSpec) -> Sandbox:
        """Create and start a sandbox; on any failure nothing is left behind."""
        started = time.monotonic()
        directory = self._claim_dir(spec.name)
        record = self._plan(spec)
        state.save(directory, record)
        try:
            record = await self._build(Sandbox(record, directory), spec)
        except BaseException:
            await self._undo(spec.name)
            raise
        log.info(
            "created sandbox %s (network %s) in %.1fs",
            spec.name, spec.network, time.monotonic() - started,
        )  # fmt: skip
        return Sandbox(record, directory)

    def get(self, name: str) -> Sandbox:
        """The sandbox ``name``; NotFound if there is none."""
        directory = self.root / validate_name("sandbox", name)
        try:
            return Sandbox(state.load(directory, state.SandboxRecord), directory)
        except NotFound:
            raise NotFound(f"find sandbox {name}: no such sandbox") from None

    def list(self) -> list[Sandbox]:
        """Every sandbox with a record, alive or not, sorted by name."""
        if not self.root.is_dir():
            return []
        found = []
        for directory in sorted(self.root.iterdir()):
            try:
                found.append(self.get(directory.name))
            except (NotFound, FailedPrecondition):
                continue
        return found

    async def remove(self, name: str) -> None:
        """Stop the sandbox and delete everything it made; idempotent.

        Works on a half-created sandbox and on one whose agent was killed.
        """
        directory = self.root / validate_name("sandbox", name)
        if not directory.is_dir():
            raise NotFound(f"remove sandbox {name}: no such sandbox")
        try:
            record = state.load(directory, state.SandboxRecord)
        except NotFound:
            record = None  # creation died before its first save: only the dir
        if record is not None:
            await self._teardown(Sandbox(record, directory))
        _remove_dir(directory)
        log.info("removed sandbox %s", name)

    async def _undo(self, name: str) -> None:
        # The creation error is what the caller needs; a cleanup error is only logged.
        try:
            await self.remove(name)
        except SandpullError as exc:
            log.warning("clean up half-created sandbox %s: %s", name, exc)

    # Creation steps.

    def _claim_dir(self, name: str) -> Path:
        directory = self.root / name
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            directory.mkdir()
        except FileExistsError:
            raise AlreadyExists(f"create sandbox {name}: it exists") from None
        except OSError as exc:
            raise from_os_error(f"create sandbox dir {directory}", exc) from exc
        return directory

    def _plan(self, spec: SandboxSpec) -> state.SandboxRecord:
        key = state.object_key(self.state_dir, "sandbox", spec.name)
        group = cgroup.Cgroup.for_key(key)
        return state.SandboxRecord(
            name=spec.name,
            key=key,
            created_at=time.time(),
            network=str(spec.network),
            memory_bytes=spec.limits.memory_bytes,
            cpus=spec.limits.cpus,
            pids=spec.limits.pids,
            storage_bytes=spec.storage_bytes,
            netns=f"sandpull-{spec.name}-{key[:8]}",
            cgroup_version=group.version,
            cgroup_dirs=tuple(map(str, group.dirs)),
        )

    async def _build(self, sandbox: Sandbox, spec: SandboxSpec) -> state.SandboxRecord:
        record = sandbox.record
        await netlink.create_netns(record.netns)
        record = await self._connect(sandbox, record)
        group = cgroup.Cgroup(
            record.cgroup_version, tuple(map(Path, record.cgroup_dirs))
        )
        group.create(_limits(record))
        await disk.create_image(sandbox.disk_image, record.storage_bytes)
        sandbox.store_root.mkdir()
        config = _copy_config(sandbox, spec)
        record = await self._start_agent(sandbox, record, group, config)
        record = dataclasses.replace(record, phase="running")
        state.save(sandbox.directory, record)
        return record

    async def _connect(
        self, sandbox: Sandbox, record: state.SandboxRecord
    ) -> state.SandboxRecord:
        mode = sandbox_mode(record)
        if mode is NetworkMode.NONE:
            return record
        if mode is NetworkMode.BRIDGE:
            return await self._connect_bridge(sandbox, record)
        return await self._connect_tenant(sandbox, record)

    async def _connect_bridge(
        self, sandbox: Sandbox, record: state.SandboxRecord
    ) -> state.SandboxRecord:
        bridge = self.bridge
        await netlink.ensure_bridge(bridge.name, bridge.gateway)
        address = ipam.allocate(bridge.lease_dir, bridge.subnet, record.netns)
        rule = nat.masquerade_rule(address, bridge.name, record.key)
        record = dataclasses.replace(
            record,
            outer_veth=f"spv{record.key}",
            address=f"{address}/{bridge.subnet.prefixlen}",
            lease_dir=str(bridge.lease_dir),
            nat_rules=(rule,),
        )
        state.save(sandbox.directory, record)
        await netlink.add_veth(
            record.outer_veth or "", record.netns, bridge=bridge.name
        )
        await netlink.configure_inner(
            record.netns, ipaddress.IPv4Interface(record.address), bridge.gateway.ip
        )
        await nat.add_rule(rule)
        return record

    async def _connect_tenant(
        self, sandbox: Sandbox, record: state.SandboxRecord
    ) -> state.SandboxRecord:
        network = self.networks.get(record.network.removeprefix("tenant:"))
        address = ipam.allocate(network.lease_dir, network.subnet, record.netns)
        record = dataclasses.replace(
            record,
            outer_veth=f"spt{record.key}",
            outer_netns=network.netns,
            address=f"{address}/{network.subnet.prefixlen}",
            lease_dir=str(network.lease_dir),
        )
        state.save(sandbox.directory, record)
        await netlink.add_veth(
            record.outer_veth or "",
            record.netns,
            bridge=TENANT_BRIDGE,
            outer_netns=network.netns,
        )
        await netlink.configure_inner(
            record.netns, ipaddress.IPv4Interface(record.address), None
        )
        return record

    async def _start_agent(
        self,
        sandbox: Sandbox,
        record: state.SandboxRecord,
        group: cgroup.Cgroup,
        config: AgentConfig,
    ) -> state.SandboxRecord:
        directory = sandbox.directory
        sandbox.socket_dir.mkdir(mode=0o700)
        root = rootfs.plan(
            directory,
            read_write=(sandbox.store_root, sandbox.socket_dir),
            extra=(sandbox.config_dir,) if sandbox.config_dir.exists() else (),
        )
        rootfs.prepare(root)
        plan = process.LaunchPlan(
            netns_path=netlink.netns_path(record.netns),
            cgroup_procs=group.procs_files(),
            image=sandbox.disk_image,
            store=sandbox.store_root,
            ready=directory / READY,
            log=directory / AGENT_LOG,
            root=root,
            argv=self.agent.render(sandbox.store_root, sandbox.agent_socket, *config),
        )
        launcher = process.launch(plan)
        record = dataclasses.replace(
            record, launcher=(launcher.pid, launcher.start_time)
        )
        state.save(directory, record)
        await self._wait(sandbox, launcher, lambda: plan.ready.exists(), "set up")
        agent = process.child_of(launcher)
        if agent is None or not agent.alive():
            raise FailedPrecondition(
                f"start sandbox {record.name}: agent exited at once"
            )
        record = dataclasses.replace(record, agent=(agent.pid, agent.start_time))
        state.save(directory, record)
        if self.agent.wait_for_socket:
            await self._wait(sandbox, agent, sandbox.agent_socket.exists, "serve")
        return record

    async def _wait(
        self,
        sandbox: Sandbox,
        proc: process.ProcessRef,
        done: Callable[[], bool],
        what: str,
    ) -> None:
        deadline = time.monotonic() + self.ready_timeout
        while not done():
            if not proc.alive():
                raise FailedPrecondition(
                    f"start sandbox {sandbox.name}: agent exited before it could "
                    f"{what}: {_log_tail(sandbox.directory / AGENT_LOG)}"
                )
            if time.monotonic() > deadline:
                raise FailedPrecondition(
                    f"start sandbox {sandbox.name}: agent did not {what} "
                    f"within {self.ready_timeout:g}s"
                )
            await asyncio.sleep(0.05)

    # Removal steps: each one tolerates objects that were never made.

    async def _teardown(self, sandbox: Sandbox) -> None:
        record = sandbox.record
        await _stop(record.agent_ref(), record.launcher_ref())
        group = cgroup.Cgroup(
            record.cgroup_version, tuple(map(Path, record.cgroup_dirs))
        )
        await group.remove()
        await disk.detach(sandbox.disk_image)
        for rule in record.nat_rules:
            await nat.delete_rule(rule)
        if record.outer_veth is not None:
            await netlink.delete_link(record.outer_veth, record.outer_netns)
        netlink.remove_netns(record.netns)
        if record.address is not None and record.lease_dir is not None:
            address = str(ipaddress.IPv4Interface(record.address).ip)
            ipam.release(Path(record.lease_dir), address, record.netns)


async def _stop(
    agent: process.ProcessRef | None, launcher: process.ProcessRef | None
) -> None:
    # Killing pid 1 kills the whole pid namespace; the launcher then reaps it and
    # exits, so the agent does not linger as a zombie.
    if agent is not None:
        agent.kill()
    if launcher is not None:
        await launcher.wait_exit(timeout=5)
        launcher.kill()


AgentConfig = tuple[Path | None, Path | None]


def _copy_config(sandbox: Sandbox, spec: SandboxSpec) -> AgentConfig:
    """Copy the registry configuration where the agent can read it (and no more)."""
    if spec.registries_config is None and spec.certs_dir is None:
        return None, None
    target = sandbox.config_dir
    config = certs = None
    try:
        target.mkdir(mode=0o755)
        if spec.registries_config is not None:
            config = target / "registries.toml"
            shutil.copyfile(spec.registries_config, config)
        if spec.certs_dir is not None:
            certs = target / "certs.d"
            shutil.copytree(spec.certs_dir, certs, symlinks=False)
    except OSError as exc:
        raise from_os_error(f"copy registry config into {target}", exc) from exc
    return config, certs


def sandbox_mode(record: state.SandboxRecord) -> NetworkMode:
    return NetworkMode(record.network.partition(":")[0])


def _limits(record: state.SandboxRecord) -> Limits:
    return Limits(record.memory_bytes, record.cpus, record.pids)


def _remove_dir(directory: Path) -> None:
    store = directory / STORE_DIR
    if os.path.ismount(store):
        # The host never mounts a sandbox disk; refuse to delete through one.
        raise FailedPrecondition(f"remove sandbox dir {directory}: {store} is mounted")
    try:
        shutil.rmtree(directory)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise from_os_error(f"remove sandbox dir {directory}", exc) from exc


def _log_tail(path: Path, limit: int = 400) -> str:
    try:
        text = path.read_bytes()[-limit:].decode(errors="replace").strip()
    except OSError:
        return "no log"
    return text.replace("\n", " | ") or "no output"
