"""Reaping container processes to learn their exit status.

runc's ``create`` exits once the container's init is set up, so that init is
re-parented. The agent makes itself a child subreaper, which makes the init
its child: a pidfd says when it exits, and ``waitpid`` gives the status.
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import os

log = logging.getLogger(__name__)

_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


def become_subreaper() -> None:
    """Make orphaned descendants (container inits) children of this process."""
    if _libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        log.warning("cannot become a child subreaper: exit codes may be lost")


async def wait_exit(pid: int) -> int:
    """Wait for ``pid`` to exit; its exit code, or 128 + signal if killed.

    Returns 255 when the process is not this process's child, so no status can
    be read (the subreaper setting was refused).
    """
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return _reap(pid)
    try:
        await _readable(fd)
    finally:
        os.close(fd)
    return _reap(pid)


async def _readable(fd: int) -> None:
    loop = asyncio.get_running_loop()
    ready: asyncio.Future[None] = loop.create_future()

    def on_readable() -> None:
        if not ready.done():
            ready.set_result(None)

    loop.add_reader(fd, on_readable)
    try:
        await ready
    finally:
        loop.remove_reader(fd)


def _reap(pid: int) -> int:
    try:
        _, status = os.waitpid(pid, 0)
    except ChildProcessError:
        log.warning("process %d is not a child of the agent: exit code unknown", pid)
        return 255
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code
