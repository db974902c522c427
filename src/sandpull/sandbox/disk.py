"""A sandbox's private disk: a sparse ext4 image, loop-mounted only in its namespace.

The mount inside the sandbox uses ``mount -o loop``, which marks the loop device
auto-clearing: it detaches once the sandbox's mount namespace is gone. ``detach``
is the backstop for a device that is still bound after that.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from pathlib import Path

from sandpull.errors import FailedPrecondition, from_os_error
from sandpull.sandbox.process import run

SYS_BLOCK = Path("/sys/block")
LOOP_CLR_FD = 0x4C01


async def create_image(path: Path, size: int) -> None:
    """Make a sparse file of ``size`` bytes at ``path`` holding an empty ext4."""
    try:
        with open(path, "xb") as image:
            image.truncate(size)
    except OSError as exc:
        raise from_os_error(f"create disk image {path}", exc) from exc
    argv = ("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=1,lazy_journal_init=1")
    result = await run((*argv, str(path)), f"format disk image {path}", timeout=120)
    if result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise FailedPrecondition(f"format disk image {path}: {message}")


def loop_devices(image: Path) -> list[Path]:
    """Loop devices currently backed by ``image``."""
    wanted = str(image)
    found = []
    for backing in SYS_BLOCK.glob("loop*/loop/backing_file"):
        name = backing.read_text().strip().removesuffix(" (deleted)")
        if name == wanted:
            found.append(Path("/dev") / backing.parent.parent.name)
    return found


async def detach(image: Path, timeout: float = 5.0) -> None:
    """Wait for ``image``'s loop devices to auto-clear, then force the rest off."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop_devices(image) and loop.time() < deadline:
        await asyncio.sleep(0.05)
    for device in loop_devices(image):
        _clear(device)


def _clear(device: Path) -> None:
    try:
        fd = os.open(device, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        fcntl.ioctl(fd, LOOP_CLR_FD)
    except OSError as exc:
        raise from_os_error(f"detach loop device {device}", exc) from exc
    finally:
        os.close(fd)
