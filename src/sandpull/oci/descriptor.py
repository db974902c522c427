"""Content descriptors (OCI image-spec descriptor.md)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sandpull.errors import InvalidArgument
from sandpull.oci.digest import Digest
from sandpull.oci.platform import Platform


@dataclass(frozen=True)
class Descriptor:
    media_type: str
    digest: Digest
    size: int
    platform: Platform | None = None
    annotations: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    urls: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Any, what: str = "descriptor") -> Descriptor:
        if not isinstance(data, dict):
            raise InvalidArgument(f"parse {what}: want an object")
        size = data.get("size")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise InvalidArgument(f"parse {what}: size must be a non-negative integer")
        media_type = data.get("mediaType", "")
        if not isinstance(media_type, str):
            raise InvalidArgument(f"parse {what}: mediaType must be a string")
        digest = data.get("digest")
        if not isinstance(digest, str):
            raise InvalidArgument(f"parse {what}: digest must be a string")
        platform = data.get("platform")
        annotations = data.get("annotations") or {}
        urls = data.get("urls") or []
        if not isinstance(annotations, dict) or not isinstance(urls, list):
            raise InvalidArgument(f"parse {what}: bad annotations or urls")
        return cls(
            media_type=media_type,
            digest=Digest.parse(digest),
            size=size,
            platform=Platform.from_json(platform) if platform is not None else None,
            annotations={str(k): str(v) for k, v in annotations.items()},
            urls=tuple(str(u) for u in urls),
        )

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mediaType": self.media_type,
            "digest": str(self.digest),
            "size": self.size,
        }
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        if self.urls:
            out["urls"] = list(self.urls)
        return out
