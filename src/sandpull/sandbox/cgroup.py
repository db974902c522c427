"""A sandbox's cgroup: memory, cpu and pids limits, on cgroup v1 or v2.

On v1 (including the hybrid layout) the sandbox gets one directory in every
mounted hierarchy, ``<root>/<hierarchy>/sandpull/<key>``, limits written in the
memory, cpu and pids ones; on v2 one directory, ``<root>/sandpull/<key>``, with
the controllers enabled in the parents' ``cgroup.subtree_control``.

Joining every v1 hierarchy matters for containers: runc places a container's
cgroups relative to the agent's own, so they nest inside the sandbox's cgroups
(and go with them) instead of landing at the root of the hierarchies the agent
was not in.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import errno
import os
import signal
from pathlib import Path

from sandpull.errors import FailedPrecondition, from_os_error
from sandpull.sandbox.spec import Limits

CGROUP_ROOT = Path("/sys/fs/cgroup")
CONTROLLERS = ("memory", "cpu", "pids")
CPU_PERIOD_US = 100_000


def detect_version(root: Path = CGROUP_ROOT) -> int:
    """2 when ``root`` is a unified cgroup v2 mount, else 1."""
    return 2 if (root / "cgroup.controllers").exists() else 1


@dataclasses.dataclass(frozen=True)
class Cgroup:
    """The cgroup directories of one sandbox; every method is idempotent."""

    version: int
    dirs: tuple[Path, ...]

    @classmethod
    def for_key(cls, key: str, root: Path = CGROUP_ROOT) -> Cgroup:
        if detect_version(root) == 2:
            return cls(2, (root / "sandpull" / key,))
        return cls(1, tuple(root / h / "sandpull" / key for h in _v1_hierarchies(root)))

    def create(self, limits: Limits) -> None:
        """Make the directories and write ``limits``."""
        if self.version == 2:
            _enable_v2_controllers(self.dirs[0])
        for path in self.dirs:
            cpuset = path.parent.parent.name == "cpuset"
            for level in (path.parent, path):
                _make_level(level, cpuset)
        for path, value in self._limit_files(limits):
            _write(path, value)

    def procs_files(self) -> tuple[Path, ...]:
        """The ``cgroup.procs`` files a new process must be written into."""
        return tuple(path / "cgroup.procs" for path in self.dirs)

    def pids(self) -> set[int]:
        """Host pids of every process in the cgroup and its children."""
        found: set[int] = set()
        for directory in self.dirs:
            for procs in directory.glob("**/cgroup.procs"):
                try:
                    found.update(int(line) for line in procs.read_text().split())
                except FileNotFoundError:
                    continue
        return found

    async def remove(self, timeout: float = 10.0) -> None:
        """Kill every process left in the cgroup, then remove its directories."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        for path in self.dirs:
            while not _rmdir_tree(path):
                if loop.time() > deadline:
                    raise FailedPrecondition(
                        f"remove cgroup {path}: still busy after {timeout:.0f}s"
                    )
                for pid in self.pids():
                    _kill(pid)
                await asyncio.sleep(0.05)

    def _v1_dir(self, controller: str) -> Path:
        return next(p for p in self.dirs if p.parent.parent.name == controller)

    def _limit_files(self, limits: Limits) -> list[tuple[Path, str]]:
        if self.version == 2:
            return _v2_limit_files(self.dirs[0], limits)
        memory, cpu, pids = (self._v1_dir(c) for c in CONTROLLERS)
        files: list[tuple[Path, str]] = []
        if limits.memory_bytes is not None:
            files.append((memory / "memory.limit_in_bytes", str(limits.memory_bytes)))
        if limits.cpus is not None:
            files.append((cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US)))
            files.append((cpu / "cpu.cfs_quota_us", str(_quota(limits.cpus))))
        if limits.pids is not None:
            files.append((pids / "pids.max", str(limits.pids)))
        return files


def _v1_hierarchies(root: Path) -> list[str]:
    """Names of the mounted hierarchies, the limited controllers first.

    In the hybrid layout that includes ``unified``, the v2 tree without
    controllers, where runc places containers too.
    """
    found = [
        entry.name
        for entry in sorted(root.iterdir())
        if entry.is_dir() and not entry.is_symlink()
    ]
    return list(CONTROLLERS) + [name for name in found if name not in CONTROLLERS]


def _make_level(path: Path, cpuset: bool) -> None:
    try:
        path.mkdir(exist_ok=True)
        if not cpuset:
            return
        # A new cpuset cgroup has no cpus or memory nodes until it is given some.
        for name in ("cpuset.cpus", "cpuset.mems"):
            if not (path / name).read_text().strip():
                (path / name).write_text((path.parent / name).read_text())
    except OSError as exc:
        raise from_os_error(f"create cgroup {path}", exc) from exc


def _v2_limit_files(path: Path, limits: Limits) -> list[tuple[Path, str]]:
    files: list[tuple[Path, str]] = []
    if limits.memory_bytes is not None:
        files.append((path / "memory.max", str(limits.memory_bytes)))
    if limits.cpus is not None:
        files.append((path / "cpu.max", f"{_quota(limits.cpus)} {CPU_PERIOD_US}"))
    if limits.pids is not None:
        files.append((path / "pids.max", str(limits.pids)))
    return files


def _enable_v2_controllers(leaf: Path) -> None:
    # v2 applies a controller to a cgroup only when every ancestor delegates it.
    parent = leaf.parent
    try:
        parent.mkdir(exist_ok=True)
    except OSError as exc:
        raise from_os_error(f"create cgroup {parent}", exc) from exc
    available = set((parent.parent / "cgroup.controllers").read_text().split())
    wanted = " ".join(f"+{c}" for c in CONTROLLERS if c in available)
    for path in (parent.parent, parent):
        if wanted:
            _write(path / "cgroup.subtree_control", wanted)


def _quota(cpus: float) -> int:
    return max(1000, round(cpus * CPU_PERIOD_US))


def _write(path: Path, value: str) -> None:
    try:
        path.write_text(value)
    except OSError as exc:
        raise from_os_error(f"write cgroup file {path} = {value}", exc) from exc


def _rmdir_tree(path: Path) -> bool:
    """Remove ``path`` and the cgroups runc made below it, deepest first."""
    if not path.is_dir():
        return True
    children = sorted(
        (p for p in path.rglob("*") if p.is_dir()),
        key=lambda p: len(p.parts),
        reverse=True,
    )
    return all([*map(_rmdir, children)]) and _rmdir(path)


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
    except FileNotFoundError:
        return True
    except OSError as exc:
        if exc.errno == errno.EBUSY:
            return False
        raise from_os_error(f"remove cgroup {path}", exc) from exc
    return True


def _kill(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
