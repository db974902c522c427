"""The image configuration (OCI image-spec config.md), the parts sandpull uses."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sandpull.errors import InvalidArgument
from sandpull.oci.digest import Digest, chain_ids
from sandpull.oci.platform import Platform

MAX_CONFIG_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True)
class ImageConfig:
    platform: Platform
    diff_ids: tuple[Digest, ...]
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ()
    env: tuple[str, ...] = ()
    working_dir: str = ""
    user: str = ""
    labels: dict[str, str] | None = None
    stop_signal: str = ""

    @classmethod
    def parse(cls, data: bytes) -> ImageConfig:
        if len(data) > MAX_CONFIG_BYTES:
            raise InvalidArgument(
                f"parse config: {len(data)} bytes, limit {MAX_CONFIG_BYTES}"
            )
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidArgument(f"parse config: not JSON ({exc})") from exc
        if not isinstance(doc, dict):
            raise InvalidArgument("parse config: want a JSON object")
        rootfs = doc.get("rootfs") or {}
        diff_ids = rootfs.get("diff_ids") if isinstance(rootfs, dict) else None
        if not isinstance(diff_ids, list):
            raise InvalidArgument("parse config: rootfs.diff_ids must be a list")
        run = doc.get("config") or {}
        if not isinstance(run, dict):
            raise InvalidArgument("parse config: config must be an object")
        return cls(
            platform=Platform.from_json(doc),
            diff_ids=tuple(Digest.parse(str(d)) for d in diff_ids),
            entrypoint=_strings(run, "Entrypoint"),
            cmd=_strings(run, "Cmd"),
            env=_strings(run, "Env"),
            working_dir=str(run.get("WorkingDir") or ""),
            user=str(run.get("User") or ""),
            labels={str(k): str(v) for k, v in (run.get("Labels") or {}).items()},
            stop_signal=str(run.get("StopSignal") or ""),
        )

    @property
    def chain_ids(self) -> list[Digest]:
        return chain_ids(list(self.diff_ids))


def _strings(run: dict[str, Any], key: str) -> tuple[str, ...]:
    value = run.get(key)
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"parse config: {key} must be a list of strings")
    return tuple(value)
