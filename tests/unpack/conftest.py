"""Fixtures for the unpack tests: a snapshot stack applier and a canary directory."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from sandpull.oci import Compression, Digest
from sandpull.unpack import AppliedLayer, ApplyOptions, apply_layer
from tests.unpack import tarbuild


@dataclass
class Stack:
    """Snapshots applied so far, base first."""

    base: Path
    snapshots: list[Path]

    def apply(
        self,
        layer: Sequence[tarbuild.Spec] | bytes,
        *,
        compression: Compression = Compression.NONE,
        diff_id: Digest | None = None,
        options: ApplyOptions | None = None,
    ) -> AppliedLayer:
        """Apply one layer (a spec table or a blob) on top of the stack."""
        blob = layer if isinstance(layer, bytes) else tarbuild.build(layer)
        target = self.base / f"{len(self.snapshots) + 1}" / "fs"
        target.mkdir(parents=True)
        applied = apply_layer(
            io.BytesIO(blob),
            compression=compression,
            target=target,
            lowers=list(reversed(self.snapshots)),
            layer=Digest.of(blob),
            diff_id=diff_id,
            options=options or ApplyOptions(),
        )
        self.snapshots.append(target)
        return applied

    def apply_all(self, layers: Sequence[Sequence[tarbuild.Spec]]) -> None:
        for layer in layers:
            self.apply(layer)


@pytest.fixture
def stack(tmp_path: Path) -> Stack:
    return Stack(tmp_path / "snapshots", [])


def _fingerprint(root: Path) -> dict[str, tuple[int, int, str, list[str]]]:
    found: dict[str, tuple[int, int, str, list[str]]] = {"": (0, 0, "", _xattrs(root))}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = Path(dirpath, name)
            st = os.lstat(full)
            body = (
                full.read_bytes() if full.is_file() and not full.is_symlink() else b""
            )
            found[str(full.relative_to(root))] = (
                st.st_mode,
                st.st_nlink,
                hashlib.sha256(body).hexdigest(),
                _xattrs(full),
            )
    return found


def _xattrs(path: Path) -> list[str]:
    return sorted(os.listxattr(path, follow_symlinks=False))


@pytest.fixture
def canary(tmp_path: Path) -> Iterator[Path]:
    """A directory beside the snapshots that no layer may change."""
    root = tmp_path / "canary"
    (root / "etc").mkdir(parents=True)
    (root / "etc" / "passwd").write_text("root:x:0:0\n")
    (root / "victim-file").write_text("precious\n")
    (root / "Cargo.toml").write_text("[package]\n")
    before = _fingerprint(tmp_path / "canary")
    yield root
    assert _fingerprint(root) == before, "a layer changed the canary directory"
    assert not any(p.name in {"pwn", "pwned", "escape"} for p in tmp_path.iterdir())


@pytest.fixture
def in_canary_cwd(canary: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(canary)
    return canary
