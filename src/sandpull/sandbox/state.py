"""What a sandbox or tenant network is made of, kept as JSON under the state dir.

The record is written before each kernel object is created, so ``remove`` can
always find (and idempotently delete) everything a half-created sandbox made,
and a restarted host-side process finds every sandbox again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from pathlib import Path
from typing import Any, TypeVar

from sandpull.errors import FailedPrecondition, NotFound, from_os_error
from sandpull.sandbox.process import ProcessRef

DEFAULT_STATE_DIR = Path("/run/sandpull")
STATE_FILE = "state.json"

_R = TypeVar("_R", "SandboxRecord", "NetworkRecord")


def default_state_dir() -> Path:
    """``$SANDPULL_STATE`` or ``/run/sandpull``; sandboxes live in ``sandboxes/``."""
    return Path(os.environ.get("SANDPULL_STATE", str(DEFAULT_STATE_DIR)))


def object_key(state_dir: Path, kind: str, name: str) -> str:
    """A short id naming a sandbox's kernel objects, unique per state dir."""
    text = f"{state_dir.resolve()}\0{kind}\0{name}"
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@dataclasses.dataclass(frozen=True)
class SandboxRecord:
    name: str
    key: str
    created_at: float
    network: str
    memory_bytes: int | None
    cpus: float | None
    pids: int | None
    storage_bytes: int
    netns: str
    cgroup_version: int
    cgroup_dirs: tuple[str, ...]
    phase: str = "creating"
    outer_veth: str | None = None
    outer_netns: str | None = None
    address: str | None = None
    lease_dir: str | None = None
    nat_rules: tuple[tuple[str, ...], ...] = ()
    launcher: tuple[int, int] | None = None
    agent: tuple[int, int] | None = None

    def launcher_ref(self) -> ProcessRef | None:
        return None if self.launcher is None else ProcessRef(*self.launcher)

    def agent_ref(self) -> ProcessRef | None:
        return None if self.agent is None else ProcessRef(*self.agent)


@dataclasses.dataclass(frozen=True)
class NetworkRecord:
    name: str
    key: str
    created_at: float
    netns: str
    subnet: str
    bridge: str


def save(directory: Path, record: SandboxRecord | NetworkRecord) -> None:
    """Write ``record`` atomically to ``directory/state.json``."""
    path = directory / STATE_FILE
    tmp = path.with_suffix(".tmp")
    try:
        tmp.write_text(json.dumps(dataclasses.asdict(record), indent=2) + "\n")
        os.replace(tmp, path)
    except OSError as exc:
        raise from_os_error(f"save state {path}", exc) from exc


def load(directory: Path, cls: type[_R]) -> _R:
    """Read the record in ``directory``; raise NotFound if there is none."""
    path = directory / STATE_FILE
    try:
        data: dict[str, Any] = json.loads(path.read_text())
    except FileNotFoundError:
        raise NotFound(f"load state {path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise FailedPrecondition(f"load state {path}: {exc}") from exc
    try:
        return cls(**_tuples(data))
    except TypeError as exc:
        raise FailedPrecondition(f"load state {path}: {exc}") from exc


def _tuples(data: dict[str, Any]) -> dict[str, Any]:
    # JSON has no tuples; the records are frozen, so their sequences are tuples.
    return {
        key: tuple(tuple(v) if isinstance(v, list) else v for v in value)
        if isinstance(value, list)
        else value
        for key, value in data.items()
    }
