"""The ``ns`` sandbox backend: network, mount, pid namespaces, a cgroup, a disk.

A sandbox is a named network namespace (bridged to the host with NAT, attached to
a tenant network, or loopback only), a mount namespace holding a private ext4 disk
at the agent's store root, a pid namespace whose pid 1 is the agent, and a cgroup
with memory, cpu and pids limits. The host talks to the agent only through its
socket, ``Sandbox.agent_socket``.
"""

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
