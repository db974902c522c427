"""The agent's minimal root: what a sandbox's mount namespace shows after pivot_root.

The host prepares a skeleton under ``<sandbox dir>/root`` (empty directories and
files as mount points, and the host's top-level symlinks such as ``/bin ->
usr/bin``); the launcher's setup script mounts into it and pivots. Inside, the
agent sees:

- read-only binds, at their host paths, of the system (``/usr``, ``/bin``,
  ``/sbin``, ``/lib*``), the ``/etc`` files needed for name resolution, users and
  CA certificates, and the Python that runs sandpull (virtualenv, base
  interpreter, source tree);
- read-write: its private disk at the store root and its socket directory;
- a fresh ``/proc`` (its own pid namespace), ``/sys`` read-only (its own network
  namespace) with the host's cgroup hierarchy bound in for runc, a tmpfs
  ``/dev`` with a handful of device nodes, and private ``/tmp`` and ``/run``.

Nothing else of the host: not other sandboxes' state dirs, not ``/run/sandpull``,
not the host stores. The skeleton itself is read-only inside.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Iterable
from pathlib import Path

import sandpull
from sandpull.errors import from_os_error

ROOT_DIR = "root"
OLD_ROOT = ".old-root"

SYSTEM = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC = (
    "/etc/alternatives", "/etc/ca-certificates", "/etc/ca-certificates.conf",
    "/etc/gai.conf", "/etc/group", "/etc/host.conf", "/etc/hosts",
    "/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/localtime",
    "/etc/nsswitch.conf", "/etc/passwd", "/etc/protocols", "/etc/resolv.conf",
    "/etc/services", "/etc/ssl",
)  # fmt: skip
#: Made by the setup script, not bound from the host.
PRIVATE = ("/proc", "/sys", "/dev", "/tmp", "/run", f"/{OLD_ROOT}")


@dataclasses.dataclass(frozen=True)
class RootPlan:
    """Where the skeleton is and what gets bound into it (host paths)."""

    root: Path
    read_only: tuple[Path, ...]
    read_write: tuple[Path, ...]


def python_paths() -> tuple[Path, ...]:
    """What the agent's interpreter needs: virtualenv, base install, sandpull."""
    package = Path(sandpull.__file__).resolve().parent.parent
    found = {Path(sys.prefix), Path(sys.base_prefix).resolve(), package}
    return tuple(sorted(found))


def plan(
    directory: Path, read_write: Iterable[Path], extra: Iterable[Path] = ()
) -> RootPlan:
    """The root of the sandbox in ``directory``; ``read_write`` are host dirs."""
    system = [Path(p) for p in (*SYSTEM, *ETC) if os.path.lexists(p)]
    read_only = [*system, *python_paths(), *extra]
    return RootPlan(directory / ROOT_DIR, _outermost(read_only), tuple(read_write))


def prepare(root_plan: RootPlan) -> None:
    """Make the skeleton: mount points, and the host's top-level symlinks."""
    root = root_plan.root
    try:
        root.mkdir(mode=0o755)
        for name in PRIVATE:
            (root / name.lstrip("/")).mkdir(mode=0o755)
        for path in (*root_plan.read_only, *root_plan.read_write):
            _mount_point(root, path)
    except OSError as exc:
        raise from_os_error(f"prepare sandbox root {root}", exc) from exc


def _mount_point(root: Path, path: Path) -> None:
    target = root / str(path).lstrip("/")
    if target.exists() or target.is_symlink():
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    if path.is_symlink() and path.parent == Path("/"):
        # /bin -> usr/bin on merged-/usr systems: the same link, resolved inside.
        target.symlink_to(os.readlink(path))
    elif path.is_dir():
        target.mkdir(mode=0o755)
    else:
        target.touch(mode=0o644)


def binds(root_plan: RootPlan) -> list[Path]:
    """The read-only paths that need a bind mount (not the top-level symlinks)."""
    return [
        p
        for p in root_plan.read_only
        if not (p.is_symlink() and p.parent == Path("/")) and p.exists()
    ]


def _outermost(paths: Iterable[Path]) -> tuple[Path, ...]:
    """Drop paths inside another one of ``paths``; a bind of the outer covers them."""
    ordered = sorted(set(paths), key=lambda p: len(p.parts))
    kept: list[Path] = []
    for path in ordered:
        if not any(path.is_relative_to(k) for k in kept):
            kept.append(path)
    return tuple(sorted(kept))
