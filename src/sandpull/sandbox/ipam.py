"""Address leases in a subnet, one file per address, shared by every manager.

A lease file ``<dir>/<address>`` holds the name of the network namespace that owns
the address. It is created with ``O_EXCL``, so two managers (even with different
state directories) never hand out the same address. A lease whose namespace no
longer exists is stale and is taken over: the owner's namespace is always created
before its lease and removed before the lease is released.
"""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

from sandpull.errors import ResourceExhausted, from_os_error

NETNS_DIR = Path("/run/netns")


def allocate(lease_dir: Path, subnet: ipaddress.IPv4Network, owner: str) -> str:
    """Lease a free host address of ``subnet`` (never the first, the gateway)."""
    try:
        lease_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise from_os_error(f"create lease dir {lease_dir}", exc) from exc
    hosts = list(subnet.hosts())[1:]
    for address in hosts:
        if _claim(lease_dir / str(address), owner):
            return str(address)
    raise ResourceExhausted(f"allocate address in {subnet}: all {len(hosts)} in use")


def release(lease_dir: Path, address: str, owner: str) -> None:
    """Drop ``owner``'s lease of ``address``; a missing or foreign lease is left."""
    path = lease_dir / address
    try:
        if path.read_text() == owner:
            path.unlink()
    except FileNotFoundError:
        pass


def _claim(path: Path, owner: str) -> bool:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return _take_over_stale(path, owner)
    with os.fdopen(fd, "w") as lease:
        lease.write(owner)
    return True


def _take_over_stale(path: Path, owner: str) -> bool:
    try:
        holder = path.read_text()
    except FileNotFoundError:
        return False
    if not holder or (NETNS_DIR / holder).exists():
        return False
    # Rename-then-create keeps two managers from both taking over the same lease.
    tomb = path.with_name(f".{path.name}.{os.getpid()}")
    try:
        os.rename(path, tomb)
    except FileNotFoundError:
        return False
    if tomb.read_text() != holder:
        os.rename(tomb, path)  # another manager took it over between read and rename
        return False
    tomb.unlink()
    return _claim(path, owner)
