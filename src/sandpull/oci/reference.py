"""Image references, parsed and normalised as Docker does.

``busybox`` is ``docker.io/library/busybox:latest``; the first path component is a
registry only if it contains ``.`` or ``:`` or is ``localhost``; a reference may carry
a tag and a digest together (the digest wins when pulling).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sandpull.errors import InvalidArgument
from sandpull.oci.digest import Digest

DOCKER_HUB = "docker.io"
_HUB_ALIASES = ("index.docker.io", "registry-1.docker.io", "docker.io")

_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$")
_DOMAIN_LABEL = r"(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])"
_DOMAIN = re.compile(
    rf"^(?:{_DOMAIN_LABEL}(?:\.{_DOMAIN_LABEL})*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$"
)
_TAG = re.compile(r"^[\w][\w.-]{0,127}$")
_HEX64 = re.compile(r"^[a-f0-9]{64}$")
_MAX_NAME = 255


@dataclass(frozen=True)
class Reference:
    registry: str
    repository: str
    tag: str | None = None
    digest: Digest | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        """Parse and normalise; a bare name gets the ``latest`` tag."""
        if not text or text != text.strip():
            raise InvalidArgument(
                f"parse reference {text!r}: empty or padded with spaces"
            )
        name, digest = _split_digest(text)
        name, tag = _split_tag(name)
        registry, repository = _split_registry(name)
        _check_repository(text, registry, repository)
        if tag is None and digest is None:
            tag = "latest"
        return cls(registry, repository, tag, digest)

    @property
    def name(self) -> str:
        """``registry/repository``, without tag or digest."""
        return f"{self.registry}/{self.repository}"

    @property
    def object(self) -> str:
        """What to ask the registry for: the digest if there is one, else the tag."""
        return str(self.digest) if self.digest else (self.tag or "latest")

    def with_digest(self, digest: Digest) -> Reference:
        return Reference(self.registry, self.repository, None, digest)

    def familiar(self) -> str:
        """The short form Docker prints (``busybox:latest``)."""
        name = self.name
        if self.registry == DOCKER_HUB:
            name = self.repository.removeprefix("library/")
        return name + self._suffix()

    def _suffix(self) -> str:
        suffix = f":{self.tag}" if self.tag else ""
        return suffix + (f"@{self.digest}" if self.digest else "")

    def __str__(self) -> str:
        return self.name + self._suffix()


def is_docker_hub(host: str) -> bool:
    return host.lower() in _HUB_ALIASES


def _split_digest(text: str) -> tuple[str, Digest | None]:
    name, sep, digest = text.partition("@")
    if not sep:
        return text, None
    try:
        return name, Digest.parse(digest)
    except InvalidArgument as exc:
        raise InvalidArgument(f"parse reference {text!r}: {exc}") from exc


def _split_tag(name: str) -> tuple[str, str | None]:
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon <= slash:
        return name, None
    tag = name[colon + 1 :]
    if not _TAG.match(tag):
        raise InvalidArgument(f"parse reference {name!r}: invalid tag {tag[:40]!r}")
    return name[:colon], tag


def _split_registry(name: str) -> tuple[str, str]:
    first, sep, rest = name.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        registry = DOCKER_HUB if first.lower() == "index.docker.io" else first
        repository = rest
    else:
        registry, repository = DOCKER_HUB, name
    if registry == DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return registry, repository


def _check_repository(text: str, registry: str, repository: str) -> None:
    if not _DOMAIN.match(registry):
        raise InvalidArgument(
            f"parse reference {text!r}: invalid registry {registry!r}"
        )
    if _HEX64.match(repository.removeprefix("library/")) and registry == DOCKER_HUB:
        raise InvalidArgument(
            f"parse reference {text!r}: a 64-character hex string is an image id, "
            "not a repository"
        )
    if repository != repository.lower():
        raise InvalidArgument(f"parse reference {text!r}: repository must be lowercase")
    for component in repository.split("/"):
        if not _COMPONENT.match(component):
            raise InvalidArgument(
                f"parse reference {text!r}: invalid path component {component!r}"
            )
    if len(registry) + 1 + len(repository) > _MAX_NAME:
        raise InvalidArgument(f"parse reference {text!r}: name longer than {_MAX_NAME}")
