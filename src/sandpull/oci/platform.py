"""Platforms (os / architecture / variant) and how an index entry is chosen.

Normalisation follows what Docker and containerd users expect: ``x86_64`` is
``amd64``, ``aarch64`` is ``arm64``, arm64 without a variant is ``v8`` and arm
without a variant is ``v7``. A host may run lower variants of its own
architecture (arm/v7 runs v6 and v5; arm64/v8 runs nothing older); the closest
one wins.
"""

from __future__ import annotations

import platform as _host
from dataclasses import dataclass
from typing import Any

from sandpull.errors import InvalidArgument

_ARCH_ALIASES = {
    "x86_64": "amd64",
    "x86-64": "amd64",
    "aarch64": "arm64",
    "armhf": "arm",
    "armel": "arm",
    "i386": "386",
    "i686": "386",
}
_DEFAULT_VARIANT = {"arm64": "v8", "arm": "v7"}
#: Variants a host variant can also run, nearest first.
_COMPATIBLE = {
    ("arm", "v8"): ("v8", "v7", "v6", "v5"),
    ("arm", "v7"): ("v7", "v6", "v5"),
    ("arm", "v6"): ("v6", "v5"),
}


@dataclass(frozen=True)
class Platform:
    os: str
    architecture: str
    variant: str = ""
    os_version: str = ""

    @classmethod
    def parse(cls, text: str) -> Platform:
        """Parse ``os/arch[/variant]`` as given on a command line."""
        parts = text.strip().split("/")
        if len(parts) not in (2, 3) or not all(parts):
            raise InvalidArgument(f"parse platform {text!r}: want os/arch[/variant]")
        return cls(*parts).normalized()

    @classmethod
    def from_json(cls, data: Any) -> Platform:
        if not isinstance(data, dict):
            raise InvalidArgument("parse platform: want an object")
        os_ = data.get("os", "")
        arch = data.get("architecture", "")
        variant = data.get("variant", "") or ""
        os_version = data.get("os.version", "") or ""
        if not all(isinstance(v, str) for v in (os_, arch, variant, os_version)):
            raise InvalidArgument("parse platform: fields must be strings")
        return cls(os_, arch, variant, os_version)

    @classmethod
    def host(cls) -> Platform:
        return cls("linux", _host.machine()).normalized()

    def normalized(self) -> Platform:
        arch = _ARCH_ALIASES.get(self.architecture.lower(), self.architecture.lower())
        variant = self.variant.lower() or _DEFAULT_VARIANT.get(arch, "")
        if arch == "arm64" and variant == "8":
            variant = "v8"
        return Platform(self.os.lower(), arch, variant, self.os_version)

    @property
    def is_unknown(self) -> bool:
        return self.os in ("", "unknown") or self.architecture in ("", "unknown")

    def rank(self, candidate: Platform) -> int | None:
        """How well ``candidate`` runs on this platform: 0 is exact, None is never."""
        want, have = self.normalized(), candidate.normalized()
        if (
            have.is_unknown
            or want.os != have.os
            or want.architecture != have.architecture
        ):
            return None
        if want.variant == have.variant:
            return 0
        compatible = _COMPATIBLE.get((want.architecture, want.variant), ())
        if have.variant in compatible:
            return compatible.index(have.variant)
        return None

    def to_json(self) -> dict[str, str]:
        out = {"os": self.os, "architecture": self.architecture}
        if self.variant:
            out["variant"] = self.variant
        if self.os_version:
            out["os.version"] = self.os_version
        return out

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)
