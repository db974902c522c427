"""What a caller asks for: sandbox and tenant network specs, parsed once."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import re
from pathlib import Path

from sandpull.errors import InvalidArgument

_NAME = re.compile(r"[a-z0-9][a-z0-9_.-]{0,62}")
_SIZE = re.compile(r"(\d+)([KMGT]?)(i?B)?", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}

DEFAULT_STORAGE = 2 << 30
MIN_STORAGE = 16 << 20


def validate_name(kind: str, name: str) -> str:
    """Return ``name`` if it is a valid sandbox or network name, else raise."""
    if not _NAME.fullmatch(name):
        raise InvalidArgument(
            f"parse {kind} name {name!r}: want 1-63 of [a-z0-9_.-], "
            "starting with a letter or digit"
        )
    return name


def parse_size(text: str) -> int:
    """Parse ``512M``, ``2G``, ``1GiB`` or a plain byte count (powers of 1024)."""
    match = _SIZE.fullmatch(text.strip())
    if not match:
        raise InvalidArgument(f"parse size {text!r}: want a number with K, M, G or T")
    return int(match.group(1)) * _UNITS[str(match.group(2)).upper()]


def parse_subnet(text: str) -> ipaddress.IPv4Network:
    """Parse an IPv4 subnet such as ``10.89.0.0/24``."""
    try:
        return ipaddress.IPv4Network(text)
    except ValueError as exc:
        raise InvalidArgument(f"parse subnet {text!r}: {exc}") from None


class NetworkMode(enum.StrEnum):
    BRIDGE = "bridge"
    NONE = "none"
    TENANT = "tenant"


@dataclasses.dataclass(frozen=True)
class NetworkChoice:
    """How a sandbox is networked: ``bridge``, ``none`` or ``tenant:NET``."""

    mode: NetworkMode
    tenant: str | None = None

    @classmethod
    def parse(cls, text: str) -> NetworkChoice:
        if text in ("bridge", "none"):
            return cls(NetworkMode(text))
        kind, _, net = text.partition(":")
        if kind != "tenant" or not net:
            raise InvalidArgument(
                f"parse network {text!r}: want bridge, none or tenant:NET"
            )
        return cls(NetworkMode.TENANT, validate_name("network", net))

    def __str__(self) -> str:
        if self.mode is NetworkMode.TENANT:
            return f"tenant:{self.tenant}"
        return str(self.mode)


@dataclasses.dataclass(frozen=True)
class Limits:
    """Cgroup limits; ``None`` leaves a resource unlimited."""

    memory_bytes: int | None = None
    cpus: float | None = None
    pids: int | None = None

    def __post_init__(self) -> None:
        if self.memory_bytes is not None and self.memory_bytes < (4 << 20):
            raise InvalidArgument(
                f"check memory limit {self.memory_bytes}: want at least 4M"
            )
        if self.cpus is not None and not 0.01 <= self.cpus <= 1024:
            raise InvalidArgument(f"check cpu limit {self.cpus}: want 0.01 to 1024")
        if self.pids is not None and self.pids < 1:
            raise InvalidArgument(f"check pids limit {self.pids}: want at least 1")


@dataclasses.dataclass(frozen=True)
class SandboxSpec:
    """A request for one ``ns`` sandbox."""

    name: str
    network: NetworkChoice = NetworkChoice(NetworkMode.BRIDGE)
    limits: Limits = Limits()
    storage_bytes: int = DEFAULT_STORAGE
    #: registries.toml for the agent (insecure or mirrored registries).
    registries_config: Path | None = None
    #: per-registry CA certificates for the agent, ``certs.d`` layout.
    certs_dir: Path | None = None

    def __post_init__(self) -> None:
        validate_name("sandbox", self.name)
        for given in (self.registries_config, self.certs_dir):
            if given is not None and not given.exists():
                raise InvalidArgument(f"check sandbox option {given}: no such file")
        if self.storage_bytes < MIN_STORAGE:
            raise InvalidArgument(
                f"check storage size {self.storage_bytes}: want at least 16M"
            )


TENANT_SUBNET = ipaddress.IPv4Network("10.89.0.0/24")


@dataclasses.dataclass(frozen=True)
class NetworkSpec:
    """A request for one tenant network: a private subnet in its own namespace."""

    name: str
    subnet: ipaddress.IPv4Network = TENANT_SUBNET

    def __post_init__(self) -> None:
        validate_name("network", self.name)
        if not self.subnet.is_private or self.subnet.num_addresses < 4:
            raise InvalidArgument(
                f"check subnet {self.subnet}: want a private IPv4 subnet, /30 or wider"
            )
