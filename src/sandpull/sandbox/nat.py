"""NAT egress for bridge sandboxes: one MASQUERADE rule per sandbox, via iptables.

Each rule carries the comment ``sandpull <key>`` so that a person reading
``iptables -t nat -S`` can tell whose it is; removal deletes exactly the rule that
was recorded when it was added.

TODO: a host whose FORWARD chain policy is DROP (docker sets that) also needs
ACCEPT rules for the bridge; without them bridge sandboxes have no egress there.
"""

from __future__ import annotations

from pathlib import Path

from sandpull.errors import FailedPrecondition, from_os_error
from sandpull.sandbox.process import run

IP_FORWARD = Path("/proc/sys/net/ipv4/ip_forward")


def masquerade_rule(address: str, bridge: str, key: str) -> tuple[str, ...]:
    """The POSTROUTING rule (without ``-A``/``-D``) for one sandbox address."""
    return (
        "POSTROUTING",
        "-s",
        f"{address}/32",
        "!",
        "-o",
        bridge,
        "-m",
        "comment",
        "--comment",
        f"sandpull {key}",
        "-j",
        "MASQUERADE",
    )


async def add_rule(rule: tuple[str, ...]) -> None:
    """Append ``rule`` to the nat table unless it is there already."""
    _enable_forwarding()
    if await _iptables("-C", rule, check=False):
        return
    await _iptables("-A", rule, check=True)


async def delete_rule(rule: tuple[str, ...]) -> None:
    """Delete every copy of ``rule``; an absent rule is fine."""
    while await _iptables("-C", rule, check=False):
        await _iptables("-D", rule, check=True)


async def has_rule(rule: tuple[str, ...]) -> bool:
    return await _iptables("-C", rule, check=False)


async def _iptables(op: str, rule: tuple[str, ...], *, check: bool) -> bool:
    argv = ("iptables", "-w", "5", "-t", "nat", op, *rule)
    result = await run(argv, f"iptables {op} {rule[0]}", timeout=30)
    if check and result.returncode != 0:
        message = result.stderr.decode(errors="replace").strip()
        raise FailedPrecondition(f"iptables {op} nat rule for {rule[2]}: {message}")
    return result.returncode == 0


def _enable_forwarding() -> None:
    # NAT egress needs the host to forward; it is a host-wide setting, left on.
    try:
        if IP_FORWARD.read_text().strip() != "1":
            IP_FORWARD.write_text("1")
    except OSError as exc:
        raise from_os_error("enable ipv4 forwarding", exc) from exc
