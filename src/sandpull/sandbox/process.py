"""Processes of a sandbox: launching the agent as pid 1, finding, killing, exec.

sandpull uses the util-linux commands rather than ``unshare(2)``/``setns(2)``
through ctypes: a multi-threaded Python process cannot safely enter a mount or
pid namespace itself, and the commands do the fork-then-exec dance for us.

The agent is launched as::

    sh JOIN_CGROUP  -> nsenter --net=NETNS  -> unshare --mount --pid --fork ...
                                                 `-> sh SETUP -> exec AGENT (pid 1)

``unshare`` stays on the host as the launcher; with ``--kill-child`` the pid
namespace dies with it. A process is named by pid and kernel start time, so a pid
reused after a restart of the host is never mistaken for the agent.

Before the agent starts, the setup script mounts the private disk, fills the
minimal root prepared by :mod:`sandpull.sandbox.rootfs` and pivots into it, then
lazily detaches the host's tree: the agent sees no host file it was not given.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

from sandpull.errors import DeadlineExceeded, from_os_error
from sandpull.sandbox import rootfs

# Joins the cgroups given first, then execs the rest: `sh -c JOIN sh N f1..fN cmd...`
JOIN_CGROUP = """n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1"; shift; n=$((n - 1)); done
exec "$@"
"""

# Runs as pid 1 of the new namespaces, before the agent replaces it:
# `sh -c SETUP sh IMAGE STORE READY ROOT N RO1..ROn M RW1..RWm AGENT...`
SETUP_MOUNTS = """set -e
image=$1 store=$2 ready=$3 root=$4; shift 4
mount -o loop,nosuid,nodev "$image" "$store"
mount --bind "$root" "$root"
mount -t proc -o nosuid,nodev,noexec proc "$root/proc"
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs "$root/sys"
mount --rbind /sys/fs/cgroup "$root/sys/fs/cgroup"
mount -t tmpfs -o mode=0755,nosuid,size=1m dev "$root/dev"
node() { mknod -m 666 "$root/dev/$1" c "$2" "$3"; }
node null 1 3; node zero 1 5; node full 1 7; node random 1 8; node urandom 1 9
node tty 5 0
mkdir "$root/dev/pts" "$root/dev/shm"
mount -t devpts -o newinstance,ptmxmode=0666,nosuid,noexec devpts "$root/dev/pts"
ln -s pts/ptmx "$root/dev/ptmx"
ln -s /proc/self/fd "$root/dev/fd"
mount -t tmpfs -o mode=1777,nosuid,nodev shm "$root/dev/shm"
mount -t tmpfs -o mode=1777,nosuid,nodev tmp "$root/tmp"
mount -t tmpfs -o mode=0755,nosuid,nodev,size=16m run "$root/run"
# Binds come after the private mounts: a state dir may live under /tmp or /run.
n=$1; shift
while [ "$n" -gt 0 ]; do
    [ -e "$root$1" ] || mkdir -p "$root$1"
    mount --rbind "$1" "$root$1"
    mount -o remount,bind,ro,nosuid,nodev "$root$1"
    shift; n=$((n - 1))
done
n=$1; shift
while [ "$n" -gt 0 ]; do
    [ -e "$root$1" ] || mkdir -p "$root$1"
    mount --rbind "$1" "$root$1"; shift; n=$((n - 1))
done
mount -o remount,bind,ro "$root"
echo ready > "$ready"
cd "$root"
pivot_root . .old-root
cd /
umount -l /.old-root
exec "$@"
"""

NAMESPACE_FLAGS = ("--net", "--mount", "--uts", "--ipc", "--pid")


@dataclasses.dataclass(frozen=True)
class ProcessRef:
    """A process named by host pid and kernel start time (clock ticks since boot)."""

    pid: int
    start_time: int

    @classmethod
    def of(cls, pid: int) -> ProcessRef | None:
        stat = _stat(pid)
        return None if stat is None else cls(pid, int(stat[19]))

    def alive(self) -> bool:
        """True while this very process runs (a zombie or a reused pid is dead)."""
        stat = _stat(self.pid)
        return stat is not None and stat[0] != "Z" and int(stat[19]) == self.start_time

    def kill(self) -> None:
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
        _reap(self.pid)

    async def wait_exit(self, timeout: float) -> bool:
        """Wait until this process is gone (reaping it if it is our child)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.alive():
            _reap(self.pid)
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        _reap(self.pid)
        return True


@dataclasses.dataclass(frozen=True)
class LaunchPlan:
    """Everything the launcher needs; paths are host paths."""

    netns_path: Path
    cgroup_procs: tuple[Path, ...]
    image: Path
    store: Path
    ready: Path
    log: Path
    root: rootfs.RootPlan
    argv: tuple[str, ...]


def launch(plan: LaunchPlan) -> ProcessRef:
    """Start the launcher in the background; it outlives the calling process."""
    argv = [
        *_join_cgroup(plan.cgroup_procs),
        "nsenter",
        f"--net={plan.netns_path}",
        "--",
        "unshare",
        "--mount",
        "--uts",
        "--ipc",
        "--pid",
        "--kill-child",
        "--mount-proc",
        "--propagation",
        "private",
        "--",
        "sh",
        "-c",
        SETUP_MOUNTS,
        "sh",
        str(plan.image),
        str(plan.store),
        str(plan.ready),
        str(plan.root.root),
        *_counted(rootfs.binds(plan.root)),
        *_counted(plan.root.read_write),
        *plan.argv,
    ]
    try:
        with open(plan.log, "ab") as log:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                start_new_session=True,
            )
    except OSError as exc:
        raise from_os_error(f"launch sandbox agent {plan.argv[0]}", exc) from exc
    ref = ProcessRef.of(proc.pid)
    return ref if ref is not None else ProcessRef(proc.pid, -1)


def child_of(parent: ProcessRef) -> ProcessRef | None:
    """The first child of ``parent`` (the pid 1 that ``unshare`` forked)."""
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None and int(stat[1]) == parent.pid:
            return ProcessRef(int(entry.name), int(stat[19]))
    return None


def enter_argv(
    target: ProcessRef, cgroup_procs: Sequence[Path], argv: Sequence[str]
) -> list[str]:
    """An argv that runs ``argv`` in every namespace and cgroup of ``target``."""
    return [
        *_join_cgroup(cgroup_procs),
        "nsenter",
        f"--target={target.pid}",
        *NAMESPACE_FLAGS,
        "--",
        *argv,
    ]


@dataclasses.dataclass(frozen=True)
class ExecResult:
    returncode: int
    stdout: bytes
    stderr: bytes


async def run(argv: Sequence[str], step: str, timeout: float) -> ExecResult:
    """Run ``argv`` to completion, capturing output; kill it after ``timeout``."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as exc:
        raise from_os_error(step, exc) from exc
    try:
        stdout, stderr = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise DeadlineExceeded(f"{step}: still running after {timeout:g}s") from None
    assert proc.returncode is not None
    return ExecResult(proc.returncode, stdout, stderr)


def _counted(paths: Sequence[Path]) -> list[str]:
    return [str(len(paths)), *map(str, paths)]


def _join_cgroup(procs: Sequence[Path]) -> list[str]:
    return ["sh", "-c", JOIN_CGROUP, "sh", str(len(procs)), *map(str, procs)]


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (state is index 0)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text[text.rindex(")") + 2 :].split()


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
