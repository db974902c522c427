"""Registry configuration in the containers-registries.conf v2 TOML format.

Supported: ``[[registry]]`` tables with ``prefix``, ``location``, ``insecure``,
``blocked``, ``mirror-by-digest-only`` and ``[[registry.mirror]]`` (``location``,
``insecure``). The longest matching prefix wins; a prefix matches whole path
components, and ``*.example.com`` matches any subdomain. Other keys are ignored.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sandpull.errors import InvalidArgument, PermissionDenied
from sandpull.oci import Reference

DEFAULT_PATH = Path("/etc/sandpull/registries.toml")
#: The API endpoint that serves ``docker.io`` references.
HUB_ENDPOINT = "registry-1.docker.io"


@dataclass(frozen=True)
class Mirror:
    location: str
    insecure: bool = False


@dataclass(frozen=True)
class RegistryEntry:
    prefix: str
    location: str
    insecure: bool = False
    blocked: bool = False
    mirrors: tuple[Mirror, ...] = ()
    mirror_by_digest_only: bool = False


@dataclass(frozen=True)
class Endpoint:
    """Where to fetch a repository: ``host`` (with port) and the repository there."""

    host: str
    repository: str
    insecure: bool = False
    mirror: bool = False


@dataclass(frozen=True)
class RegistriesConfig:
    registries: tuple[RegistryEntry, ...] = ()

    @classmethod
    def load(cls, path: Path | None = None) -> RegistriesConfig:
        """Read ``path`` (default :data:`DEFAULT_PATH`, empty config if absent)."""
        target = path or DEFAULT_PATH
        try:
            text = target.read_text()
        except FileNotFoundError as exc:
            if path is None:
                return cls()
            raise InvalidArgument(
                f"read registries config {target}: no such file"
            ) from exc
        except OSError as exc:
            raise InvalidArgument(f"read registries config {target}: {exc}") from exc
        return cls.parse(text, str(target))

    @classmethod
    def parse(cls, text: str, source: str = "registries config") -> RegistriesConfig:
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise InvalidArgument(f"parse {source}: {exc}") from exc
        tables = data.get("registry", [])
        if not isinstance(tables, list):
            raise InvalidArgument(f"parse {source}: [[registry]] must be an array")
        return cls(
            tuple(_entry(t, f"{source} registry {i}") for i, t in enumerate(tables))
        )

    def match(self, name: str) -> RegistryEntry | None:
        """The entry with the longest prefix matching ``registry/repository``."""
        matching = [e for e in self.registries if _prefix_matches(e.prefix, name)]
        return max(matching, key=lambda e: len(e.prefix), default=None)

    def endpoints(self, ref: Reference) -> list[Endpoint]:
        """Endpoints to try for ``ref``, mirrors first; raises if it is blocked."""
        entry = self.match(ref.name)
        if entry is None:
            return [_endpoint(ref.name, insecure=False, mirror=False)]
        if entry.blocked:
            raise PermissionDenied(f"pull {ref}: registry {entry.prefix} is blocked")
        rest = _rest_after_prefix(entry.prefix, ref.name)
        location = entry.location
        if location.startswith("*."):
            location = ref.registry
        endpoints = []
        if ref.digest is not None or not entry.mirror_by_digest_only:
            endpoints = [
                _endpoint(m.location + rest, m.insecure, mirror=True)
                for m in entry.mirrors
            ]
        endpoints.append(_endpoint(location + rest, entry.insecure, mirror=False))
        return endpoints

    def is_insecure(self, host: str) -> bool:
        """Whether ``host`` is configured insecure as a registry or a mirror."""
        for entry in self.registries:
            locations = [(entry.location, entry.insecure)]
            locations += [(m.location, m.insecure) for m in entry.mirrors]
            if any(loc.split("/")[0] == host and sec for loc, sec in locations):
                return True
        return False


def _entry(table: Any, what: str) -> RegistryEntry:
    if not isinstance(table, dict):
        raise InvalidArgument(f"parse {what}: want a table")
    location = _string(table, "location", what)
    prefix = _string(table, "prefix", what) or location
    if not prefix:
        raise InvalidArgument(f"parse {what}: want a prefix or a location")
    if not location and not table.get("blocked"):
        location = prefix
    mirrors = table.get("mirror", [])
    if not isinstance(mirrors, list):
        raise InvalidArgument(f"parse {what}: [[registry.mirror]] must be an array")
    return RegistryEntry(
        prefix=prefix.rstrip("/"),
        location=location.rstrip("/"),
        insecure=_bool(table, "insecure", what),
        blocked=_bool(table, "blocked", what),
        mirrors=tuple(_mirror(m, f"{what} mirror {i}") for i, m in enumerate(mirrors)),
        mirror_by_digest_only=_bool(table, "mirror-by-digest-only", what),
    )


def _mirror(table: Any, what: str) -> Mirror:
    if not isinstance(table, dict) or not _string(table, "location", what):
        raise InvalidArgument(f"parse {what}: want a table with a location")
    location = _string(table, "location", what).rstrip("/")
    return Mirror(location, _bool(table, "insecure", what))


def _string(table: dict[str, Any], key: str, what: str) -> str:
    value = table.get(key, "")
    if not isinstance(value, str):
        raise InvalidArgument(f"parse {what}: {key} must be a string")
    return value


def _bool(table: dict[str, Any], key: str, what: str) -> bool:
    value = table.get(key, False)
    if not isinstance(value, bool):
        raise InvalidArgument(f"parse {what}: {key} must be true or false")
    return value


def _prefix_matches(prefix: str, name: str) -> bool:
    if prefix.startswith("*."):
        host = name.split("/", 1)[0]
        return host.endswith(prefix[1:])
    return name == prefix or name.startswith(prefix + "/")


def _rest_after_prefix(prefix: str, name: str) -> str:
    """The part of ``name`` after ``prefix`` (a wildcard prefix swaps only the host)."""
    if prefix.startswith("*."):
        return "/" + name.split("/", 1)[1]
    return name[len(prefix) :]


def _endpoint(name: str, insecure: bool, mirror: bool) -> Endpoint:
    host, _, repository = name.partition("/")
    if host == "docker.io":
        host = HUB_ENDPOINT
    return Endpoint(host, repository, insecure, mirror)
