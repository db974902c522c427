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

XXX: the mount namespace starts as a copy of the host's, so the agent sees the
host's files, other sandboxes' state dirs (and their sockets) included; only its
disk is private. A pivot_root into a minimal root is needed before tenants'
agents can be treated as untrusted.
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

# Joins the cgroups given first, then execs the rest: `sh -c JOIN sh N f1..fN cmd...`
JOIN_CGROUP = """n=$1; shift
while [ "$n" -gt 0 ]; do echo $$ > "$1"; shift; n=$((n - 1)); done
exec "$@"
"""

# Runs as pid 1 of the new namespaces, before the agent replaces it.
SETUP_MOUNTS = """set -e
image=$1 store=$2 ready=$3 netns_dir=$4; shift 4
mount -o loop,nosuid,nodev "$image" "$store"
# Drop this namespace's copies of other network namespaces' bind mounts, or they
# would keep those namespaces alive after their sandboxes are removed.
awk -v d="$netns_dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo |
    while read -r m; do umount -l "$m" || true; done
echo ready > "$ready"
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
    netns_dir: Path
    cgroup_procs: tuple[Path, ...]
    image: Path
    store: Path
    ready: Path
    log: Path
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
        str(plan.netns_dir),
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
