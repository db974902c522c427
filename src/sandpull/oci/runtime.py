"""OCI runtime-spec (v1.0.2) ``config.json`` generated from an image config; no I/O.

What the image says (Entrypoint + Cmd, Env, WorkingDir) is combined with what
the caller overrides, the CRI way: ``command`` replaces the Entrypoint,
``args`` replaces the Cmd, ``env`` entries win over the image's for the same
key. The user is given already resolved to numbers (resolving a name needs the
image's ``/etc/passwd``, which is I/O).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sandpull.errors import InvalidArgument
from sandpull.oci.config import ImageConfig

OCI_VERSION = "1.0.2"
DEFAULT_PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

#: The capabilities a container gets by default (the set Docker and containerd use).
DEFAULT_CAPABILITIES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD",
    "CAP_NET_RAW", "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE", "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip

_MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware",
)  # fmt: skip
_READONLY_PATHS = (
    "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger",
)  # fmt: skip


@dataclass(frozen=True)
class User:
    """A process identity in numbers, as the runtime spec wants it."""

    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    home: str = "/"


@dataclass(frozen=True)
class ProcessOverrides:
    """What a caller may change about the image's process; empty keeps the image's."""

    command: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    workdir: str = ""
    annotations: Mapping[str, str] = field(default_factory=dict)


def process_args(config: ImageConfig, overrides: ProcessOverrides) -> list[str]:
    """Entrypoint + Cmd after overrides; raises InvalidArgument if nothing is left."""
    entrypoint = overrides.command or config.entrypoint
    cmd = overrides.args or (() if overrides.command else config.cmd)
    argv = [*entrypoint, *cmd]
    if not argv:
        raise InvalidArgument(
            "build process: image has no Entrypoint or Cmd, none given"
        )
    return argv


def process_env(
    config: ImageConfig, overrides: ProcessOverrides, user: User
) -> list[str]:
    """The image's Env with overrides applied by key; PATH and HOME defaulted."""
    merged: dict[str, str] = {}
    for entry in (*config.env, *overrides.env):
        key, sep, value = entry.partition("=")
        if not key or not sep:
            raise InvalidArgument(f"build process env: {entry!r} is not KEY=VALUE")
        merged[key] = value
    merged.setdefault("PATH", DEFAULT_PATH.partition("=")[2])
    merged.setdefault("HOME", user.home)
    return [f"{k}={v}" for k, v in merged.items()]


def runtime_spec(
    config: ImageConfig,
    user: User,
    overrides: ProcessOverrides | None = None,
    *,
    hostname: str = "",
    rootfs: str = "rootfs",
    cgroups_path: str = "",
) -> dict[str, Any]:
    """The runtime spec for a container of ``config`` running as ``user``.

    ``cgroups_path``, when given, is where the runtime puts the container's
    cgroups (absolute: from the root of every hierarchy).
    """
    overrides = overrides or ProcessOverrides()
    cwd = overrides.workdir or config.working_dir or "/"
    if not cwd.startswith("/"):
        raise InvalidArgument(f"build process: working dir {cwd!r} is not absolute")
    return {
        "ociVersion": OCI_VERSION,
        "process": _process(config, overrides, user, cwd),
        "root": {"path": rootfs, "readonly": False},
        "hostname": hostname,
        "mounts": _mounts(),
        "annotations": dict(overrides.annotations),
        "linux": _linux(cgroups_path),
    }


def _process(
    config: ImageConfig, overrides: ProcessOverrides, user: User, cwd: str
) -> dict[str, Any]:
    caps = list(DEFAULT_CAPABILITIES)
    return {
        "terminal": False,
        "user": {
            "uid": user.uid,
            "gid": user.gid,
            "additionalGids": list(user.additional_gids),
        },
        "args": process_args(config, overrides),
        "env": process_env(config, overrides, user),
        "cwd": cwd,
        "capabilities": {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        },
        "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
        "noNewPrivileges": True,
    }


def _mounts() -> list[dict[str, Any]]:
    nosuid = ["nosuid", "noexec", "nodev"]
    return [
        {"destination": "/proc", "type": "proc", "source": "proc"},
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": ["nosuid", "strictatime", "mode=755", "size=65536k"],
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666",
                        "mode=0620"],
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": [*nosuid, "mode=1777", "size=65536k"],
        },
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
         "options": nosuid},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs",
         "options": [*nosuid, "ro"]},
    ]  # fmt: skip


def _linux(cgroups_path: str) -> dict[str, Any]:
    # The container shares the sandbox's network namespace: a pod has one network.
    namespaces = ["pid", "ipc", "uts", "mount"]
    linux: dict[str, Any] = {
        "namespaces": [{"type": ns} for ns in namespaces],
        "maskedPaths": list(_MASKED_PATHS),
        "readonlyPaths": list(_READONLY_PATHS),
    }
    if cgroups_path:
        linux["cgroupsPath"] = cgroups_path
    return linux
