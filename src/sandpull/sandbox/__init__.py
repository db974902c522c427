"""The ``ns`` sandbox backend: network, mount, pid namespaces, a cgroup, a disk.

A sandbox is a named network namespace (bridged to the host with NAT, attached to
a tenant network, or loopback only), a mount namespace holding a private ext4 disk
at the agent's store root, a pid namespace whose pid 1 is the agent, and a cgroup
with memory, cpu and pids limits. The host talks to the agent only through its
socket, ``Sandbox.agent_socket``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sandpull.sandbox.manager import AgentCommand, BridgeConfig, SandboxManager
    from sandpull.sandbox.process import ExecResult
    from sandpull.sandbox.sandbox import Interface, Sandbox
    from sandpull.sandbox.spec import (
        Limits,
        NetworkChoice,
        NetworkMode,
        NetworkSpec,
        SandboxSpec,
        parse_size,
    )
    from sandpull.sandbox.tenant import NetworkManager, TenantNetwork

__all__ = [
    "AgentCommand",
    "BridgeConfig",
    "ExecResult",
    "Interface",
    "Limits",
    "NetworkChoice",
    "NetworkManager",
    "NetworkMode",
    "NetworkSpec",
    "Sandbox",
    "SandboxManager",
    "SandboxSpec",
    "TenantNetwork",
    "parse_size",
]

# Where each public name lives: the package imports its modules only when a
# name is first used, so that the CLI starts without netlink and namespace code.
_HOME = {
    "AgentCommand": "sandpull.sandbox.manager",
    "BridgeConfig": "sandpull.sandbox.manager",
    "ExecResult": "sandpull.sandbox.process",
    "Interface": "sandpull.sandbox.sandbox",
    "Limits": "sandpull.sandbox.spec",
    "NetworkChoice": "sandpull.sandbox.spec",
    "NetworkManager": "sandpull.sandbox.tenant",
    "NetworkMode": "sandpull.sandbox.spec",
    "NetworkSpec": "sandpull.sandbox.spec",
    "Sandbox": "sandpull.sandbox.sandbox",
    "SandboxManager": "sandpull.sandbox.manager",
    "SandboxSpec": "sandpull.sandbox.spec",
    "TenantNetwork": "sandpull.sandbox.tenant",
    "parse_size": "sandpull.sandbox.spec",
}


def __getattr__(name: str) -> Any:
    home = _HOME.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    # Cache it, and win over a submodule of the same name (``agent.serve``), which
    # the import above has just set as an attribute of this package.
    globals()[name] = value
    return value
