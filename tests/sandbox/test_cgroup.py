"""Cgroup limit files, against an in-process stand-in for cgroupfs (a tmp dir)."""

from __future__ import annotations

from pathlib import Path

import pytest

from sandpull.sandbox.cgroup import Cgroup, detect_version
from sandpull.sandbox.spec import Limits

LIMITS = Limits(memory_bytes=256 << 20, cpus=1.5, pids=64)


def fake_v1(root: Path) -> Path:
    for controller in ("memory", "cpu", "pids"):
        (root / controller).mkdir(parents=True)
    return root


def fake_v2(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


@pytest.mark.parametrize(
    ("make", "version", "files"),
    [
        (
            fake_v1,
            1,
            {
                "memory/sandpull/k1/memory.limit_in_bytes": str(256 << 20),
                "cpu/sandpull/k1/cpu.cfs_period_us": "100000",
                "cpu/sandpull/k1/cpu.cfs_quota_us": "150000",
                "pids/sandpull/k1/pids.max": "64",
            },
        ),
        (
            fake_v2,
            2,
            {
                "sandpull/k1/memory.max": str(256 << 20),
                "sandpull/k1/cpu.max": "150000 100000",
                "sandpull/k1/pids.max": "64",
                "cgroup.subtree_control": "+memory +cpu +pids",
                "sandpull/cgroup.subtree_control": "+memory +cpu +pids",
            },
        ),
    ],
    ids=[
        "v1 writes one directory per controller",
        "v2 writes one directory and delegates controllers",
    ],
)
def test_cgroup_writes_limits(
    tmp_path: Path, make: object, version: int, files: dict[str, str]
) -> None:
    root = make(tmp_path / "cgroup")  # type: ignore[operator]
    group = Cgroup.for_key("k1", root)
    group.create(LIMITS)
    assert detect_version(root) == version
    assert {name: (root / name).read_text() for name in files} == files


def test_cgroup_leaves_unset_limits_unwritten(tmp_path: Path) -> None:
    root = fake_v1(tmp_path / "cgroup")
    Cgroup.for_key("k1", root).create(Limits(pids=10))
    assert not (root / "memory/sandpull/k1/memory.limit_in_bytes").exists()
    assert (root / "pids/sandpull/k1/pids.max").read_text() == "10"
