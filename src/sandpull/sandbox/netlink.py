"""Network namespaces, bridges and veth pairs, through netlink (pyroute2).

Every removal is idempotent: a missing link or namespace is already removed.
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
from pathlib import Path

from pyroute2 import AsyncIPRoute, NetlinkError, netns

from sandpull.errors import AlreadyExists, FailedPrecondition, NotFound, SandpullError

NETNS_DIR = Path(netns.NETNS_RUN_DIR)


def netns_path(name: str) -> Path:
    return NETNS_DIR / name


async def create_netns(name: str) -> None:
    """Create a named network namespace with its loopback up."""
    if netns_path(name).exists():
        raise AlreadyExists(f"create network namespace {name}: it exists")
    try:
        await asyncio.to_thread(netns.create, name)
    except OSError as exc:
        raise _translate(f"create network namespace {name}", exc) from exc
    await set_up(name, "lo")


def remove_netns(name: str) -> None:
    try:
        netns.remove(name)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _translate(f"remove network namespace {name}", exc) from exc


async def ensure_bridge(
    name: str, gateway: ipaddress.IPv4Interface, namespace: str | None = None
) -> None:
    """Make sure bridge ``name`` exists, is up and holds ``gateway``."""
    step = f"set up bridge {name}"
    async with _ipr(namespace, step) as ipr:
        try:
            await ipr.link("add", ifname=name, kind="bridge")
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise _translate(step, exc) from exc
        index = await _index(ipr, name, step)
        try:
            await ipr.addr(
                "add",
                index=index,
                address=str(gateway.ip),
                prefixlen=gateway.network.prefixlen,
            )
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise _translate(step, exc) from exc
        await ipr.link("set", index=index, state="up")


async def add_veth(
    outer: str,
    inner_netns: str,
    *,
    bridge: str,
    outer_netns: str | None = None,
) -> None:
    """A veth pair: ``outer`` on ``bridge``, its peer ``eth0`` in ``inner_netns``."""
    step = f"create veth {outer} to {inner_netns}"
    async with _ipr(outer_netns, step) as ipr:
        try:
            await ipr.link(
                "add",
                ifname=outer,
                kind="veth",
                peer={"ifname": "eth0", "net_ns_fd": inner_netns},
            )
            master = await _index(ipr, bridge, step)
            index = await _index(ipr, outer, step)
            await ipr.link("set", index=index, master=master, state="up")
        except NetlinkError as exc:
            raise _translate(step, exc) from exc


async def configure_inner(
    namespace: str,
    address: ipaddress.IPv4Interface,
    gateway: ipaddress.IPv4Address | None,
) -> None:
    """Address ``eth0`` in ``namespace``, bring it up, route through ``gateway``."""
    step = f"configure eth0 in {namespace}"
    async with _ipr(namespace, step) as ipr:
        try:
            index = await _index(ipr, "eth0", step)
            await ipr.addr(
                "add",
                index=index,
                address=str(address.ip),
                prefixlen=address.network.prefixlen,
            )
            await ipr.link("set", index=index, state="up")
            if gateway is not None:
                await ipr.route("add", dst="0.0.0.0/0", gateway=str(gateway))
        except NetlinkError as exc:
            raise _translate(step, exc) from exc


async def set_up(namespace: str | None, ifname: str) -> None:
    step = f"bring up {ifname} in {namespace or 'host'}"
    async with _ipr(namespace, step) as ipr:
        index = await _index(ipr, ifname, step)
        await ipr.link("set", index=index, state="up")


async def delete_link(ifname: str, namespace: str | None = None) -> None:
    """Delete ``ifname`` (and so its veth peer); absent link or namespace is fine."""
    if namespace is not None and not netns_path(namespace).exists():
        return
    step = f"delete link {ifname}"
    async with _ipr(namespace, step) as ipr:
        indexes = await ipr.link_lookup(ifname=ifname)
        for index in indexes:
            try:
                await ipr.link("del", index=index)
            except NetlinkError as exc:
                if exc.code != errno.ENODEV:
                    raise _translate(step, exc) from exc


async def add_unreachable_route(subnet: ipaddress.IPv4Network) -> None:
    """Make ``subnet`` unreachable from the host's network namespace.

    A tenant network lives in its own namespace; without this route the host would
    send packets for its addresses down the default route, off this machine.
    """
    step = f"add unreachable route {subnet} on the host"
    async with _ipr(None, step) as ipr:
        try:
            await ipr.route(
                "add", dst=str(subnet.network_address), dst_len=subnet.prefixlen,
                type="unreachable",
            )  # fmt: skip
        except NetlinkError as exc:
            if exc.code != errno.EEXIST:
                raise _translate(step, exc) from exc


async def remove_unreachable_route(subnet: ipaddress.IPv4Network) -> None:
    """Undo :func:`add_unreachable_route`; an absent route is fine."""
    step = f"remove unreachable route {subnet} on the host"
    async with _ipr(None, step) as ipr:
        try:
            await ipr.route(
                "del", dst=str(subnet.network_address), dst_len=subnet.prefixlen,
                type="unreachable",
            )  # fmt: skip
        except NetlinkError as exc:
            if exc.code not in (errno.ESRCH, errno.ENOENT):
                raise _translate(step, exc) from exc


async def link_names(namespace: str | None = None) -> list[str]:
    async with _ipr(namespace, "list links") as ipr:
        return [link.get("ifname") async for link in await ipr.link("dump")]


async def rx_bytes(namespace: str, ifname: str) -> int:
    """The kernel's received-bytes counter of ``ifname`` inside ``namespace``."""
    step = f"read rx_bytes of {ifname} in {namespace}"
    async with _ipr(namespace, step) as ipr:
        index = await _index(ipr, ifname, step)
        (link,) = await ipr.link("get", index=index)
        return int(link.get("IFLA_STATS64")["rx_bytes"])


async def default_routes(namespace: str) -> int:
    """How many IPv4 default routes ``namespace`` has."""
    async with _ipr(namespace, f"list routes in {namespace}") as ipr:
        routes = [route async for route in await ipr.route("dump")]
    return sum(1 for route in routes if route["dst_len"] == 0)


def _ipr(namespace: str | None, step: str) -> AsyncIPRoute:
    if namespace is not None and not netns_path(namespace).exists():
        raise NotFound(f"{step}: network namespace {namespace} does not exist")
    return AsyncIPRoute() if namespace is None else AsyncIPRoute(netns=namespace)


async def _index(ipr: AsyncIPRoute, ifname: str, step: str) -> int:
    found = await ipr.link_lookup(ifname=ifname)
    if not found:
        raise NotFound(f"{step}: no link named {ifname}")
    return int(found[0])


def _translate(step: str, exc: OSError | NetlinkError) -> SandpullError:
    code = exc.code if isinstance(exc, NetlinkError) else exc.errno
    if code == errno.EEXIST:
        return AlreadyExists(f"{step}: it exists")
    return FailedPrecondition(f"{step}: {os.strerror(code) if code else exc}")
