"""Content digests: ``algorithm:hex``, sha256 and sha512."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from sandpull.errors import InvalidArgument

_HEX_LENGTH = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"^[a-f0-9]+$")


@dataclass(frozen=True, order=True)
class Digest:
    """A verified-format digest. ``str()`` gives ``algorithm:hex`` back."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        want = _HEX_LENGTH.get(self.algorithm)
        if want is None:
            raise InvalidArgument(
                f"parse digest: unsupported algorithm {self.algorithm!r}"
            )
        if len(self.hex) != want or not _HEX.match(self.hex):
            raise InvalidArgument(
                f"parse digest {self.algorithm}:{self.hex[:16]}: "
                f"want {want} lowercase hex characters"
            )

    @classmethod
    def parse(cls, text: str) -> Digest:
        algorithm, sep, hex_ = text.partition(":")
        if not sep:
            raise InvalidArgument(f"parse digest {text[:80]!r}: missing algorithm")
        return cls(algorithm, hex_)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        """A fresh hash object of this digest's algorithm."""
        return hashlib.new(self.algorithm)

    def matches(self, data: bytes) -> bool:
        return hashlib.new(self.algorithm, data).hexdigest() == self.hex

    @property
    def short(self) -> str:
        return f"{self.algorithm}:{self.hex[:12]}"

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


EMPTY_LAYER_DIFF_ID = Digest(
    "sha256", "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef"
)


def chain_ids(diff_ids: list[Digest]) -> list[Digest]:
    """Chain ids of a layer stack (OCI image-spec config.md, "Layer ChainID")."""
    chain: list[Digest] = []
    for diff_id in diff_ids:
        if not chain:
            chain.append(diff_id)
        else:
            chain.append(Digest.of(f"{chain[-1]} {diff_id}".encode()))
    return chain
