"""Containers of one agent: OCI bundles under ``<root>/containers/<id>/``, run by runc.

A bundle holds ``config.json``, the overlay ``rootfs`` (the image's snapshots
below a per-container ``upper``), and the ``stdout.log`` / ``stderr.log`` the
process writes to. ``create`` runs ``runc create`` so the process exists (and
its pid is known) before ``start``; a watcher task reaps it and records the
exit status that ``wait`` returns.
"""

from __future__ import annotations

import asyncio
import enum
import json
import logging
import re
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from sandpull.agent import overlay
from sandpull.agent.images import ImageRecord
from sandpull.agent.process import become_subreaper, wait_exit
from sandpull.agent.runc import Runc
from sandpull.agent.users import resolve_user
from sandpull.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from sandpull.oci import Reference
from sandpull.oci.runtime import ProcessOverrides, runtime_spec

log = logging.getLogger(__name__)

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
LOG_CHUNK_MAX = 1 << 20

#: Looks an image up, pulling it first if the store does not have it.
EnsureImage = Callable[[Reference], Awaitable[ImageRecord]]
SnapshotDirs = Callable[[ImageRecord], Awaitable[list[Path]]]


class State(enum.IntEnum):
    CREATED = 0
    RUNNING = 1
    EXITED = 2
    UNKNOWN = 3


@dataclass(frozen=True)
class ContainerSpec:
    id: str
    image: Reference
    overrides: ProcessOverrides = field(default_factory=ProcessOverrides)
    user: str = ""


@dataclass
class Container:
    """One container's record; mutated only by :class:`Containers`."""

    spec: ContainerSpec
    image_id: str
    bundle: Path
    pid: int
    created_at: float
    state: State = State.CREATED
    exit_status: int = 0
    exited: asyncio.Future[int] | None = None

    @property
    def id(self) -> str:
        return self.spec.id


class Containers:
    def __init__(
        self,
        root: Path,
        ensure_image: EnsureImage,
        snapshot_dirs: SnapshotDirs,
        runc: Runc | None = None,
    ) -> None:
        self.dir = root / "containers"
        self.dir.mkdir(parents=True, exist_ok=True)
        self._ensure_image = ensure_image
        self._snapshot_dirs = snapshot_dirs
        self.runc = runc or Runc(root / "runc")
        self._containers: dict[str, Container] = {}
        self._watchers: set[asyncio.Task[None]] = set()
        become_subreaper()

    async def create(self, spec: ContainerSpec) -> Container:
        """Build the bundle and create the process; AlreadyExists for a known id."""
        _check_id(spec.id)
        if spec.id in self._containers or (self.dir / spec.id).exists():
            raise AlreadyExists(f"create container {spec.id}: id in use")
        image = await self._ensure_image(spec.image)
        bundle = self.dir / spec.id
        bundle.mkdir()
        try:
            container = await self._create_in(bundle, spec, image)
        except BaseException:
            _discard_bundle(bundle)
            raise
        self._containers[spec.id] = container
        self._watch(container)
        log.info("created container %s from %s", spec.id, spec.image)
        return container

    async def start(self, container_id: str) -> Container:
        container = self.get(container_id)
        if container.state != State.CREATED:
            raise FailedPrecondition(
                f"start container {container_id}: state is {container.state.name}, "
                f"want CREATED"
            )
        await self.runc.start(container_id, container.bundle)
        if container.state == State.CREATED:
            container.state = State.RUNNING
        return container

    async def wait(self, container_id: str) -> Container:
        """Wait until the process exits; returns the record with its status."""
        container = self.get(container_id)
        assert container.exited is not None
        await asyncio.shield(container.exited)
        return container

    async def signal(self, container_id: str, signal: int) -> None:
        container = self.get(container_id)
        if container.state == State.EXITED:
            raise NotFound(f"signal container {container_id}: process already finished")
        await self.runc.kill(container_id, container.bundle, signal)

    async def remove(self, container_id: str, force: bool = False) -> None:
        """Delete the container, unmount and remove its bundle.

        A running container is FailedPrecondition unless ``force``, which kills it.
        """
        container = self.get(container_id)
        if container.state == State.RUNNING and not force:
            raise FailedPrecondition(
                f"remove container {container_id}: still running, stop it or force"
            )
        await self.runc.delete(container_id, container.bundle, force=True)
        if container.exited is not None:
            await asyncio.shield(container.exited)
        _discard_bundle(container.bundle)
        del self._containers[container_id]
        log.info("removed container %s", container_id)

    def get(self, container_id: str) -> Container:
        container = self._containers.get(container_id)
        if container is None:
            raise NotFound(f"get container {container_id}: no such container")
        return container

    def list(self) -> list[Container]:
        return sorted(self._containers.values(), key=lambda c: c.created_at)

    def read_log(
        self, container_id: str, stream: str, offset: int, max_bytes: int
    ) -> tuple[bytes, int, bool]:
        """``(data, next_offset, eof)`` of ``stdout`` or ``stderr`` from ``offset``."""
        container = self.get(container_id)
        path = container.bundle / f"{stream}.log"
        limit = min(max_bytes or LOG_CHUNK_MAX, LOG_CHUNK_MAX)
        with open(path, "rb") as file:
            file.seek(offset)
            data = file.read(limit)
            at_end = file.tell() >= path.stat().st_size
        next_offset = offset + len(data)
        return data, next_offset, at_end and container.state == State.EXITED

    async def close(self) -> None:
        """Stop watching (containers keep running; their state is in the bundles)."""
        for watcher in self._watchers:
            watcher.cancel()
        await asyncio.gather(*self._watchers, return_exceptions=True)

    async def _create_in(
        self, bundle: Path, spec: ContainerSpec, image: ImageRecord
    ) -> Container:
        rootfs = bundle / "rootfs"
        overlay.mount_overlay(rootfs, await self._snapshot_dirs(image), bundle)
        user = resolve_user(rootfs, spec.user or image.config.user)
        config = runtime_spec(
            image.config, user, spec.overrides, hostname=spec.id,
            cgroups_path=container_cgroup(spec.id),
        )  # fmt: skip
        (bundle / "config.json").write_text(json.dumps(config, indent=1))
        with (
            open(bundle / "stdout.log", "ab") as stdout,
            open(bundle / "stderr.log", "ab") as stderr,
        ):
            pid = await self.runc.create(spec.id, bundle, stdout, stderr)
        return Container(spec, str(image.image_id), bundle, pid, time.time())

    def _watch(self, container: Container) -> None:
        container.exited = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._reap(container))
        self._watchers.add(task)
        task.add_done_callback(self._watchers.discard)

    async def _reap(self, container: Container) -> None:
        status = await wait_exit(container.pid)
        container.state = State.EXITED
        container.exit_status = status
        assert container.exited is not None
        container.exited.set_result(status)
        log.info("container %s exited with status %d", container.id, status)


def _check_id(container_id: str) -> None:
    if not _ID.match(container_id):
        raise InvalidArgument(
            f"create container {container_id!r}: id must be 1-128 of [A-Za-z0-9_.-]"
        )


def _discard_bundle(bundle: Path) -> None:
    overlay.unmount(bundle / "rootfs")
    shutil.rmtree(bundle, ignore_errors=True)


def container_cgroup(container_id: str) -> str:
    """Where a container's cgroups go: below the agent's own, in every hierarchy.

    Left to itself runc would place some of them (the hybrid layout's unified
    tree) at the root of the hierarchy, outside the sandbox, where removing the
    sandbox could not find them.
    """
    return f"{_own_cgroup()}/{container_id}".replace("//", "/")


def _own_cgroup(proc_file: Path = Path("/proc/self/cgroup")) -> str:
    # Lines are "id:controllers:path"; the memory line names the sandbox's cgroup
    # (v1); on v2 there is only the "0::path" line.
    lines = [line.split(":", 2) for line in proc_file.read_text().splitlines()]
    by_controller = {
        name: path for _, names, path in lines for name in names.split(",")
    }
    return by_controller.get("memory") or by_controller.get("", "/")
