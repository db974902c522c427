"""Unit tables: ``--sandbox`` errors, and the plan of the agent's minimal root."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from sandpull.sandbox import rootfs
from tests.mainjob.conftest import SANDPULL


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["pull", "--sandbox", "nosuch", "busybox"], 5, "find sandbox nosuch"),
        (["images", "--sandbox", "nosuch"], 5, "find sandbox nosuch"),
        (["stats", "--sandbox", "nosuch"], 5, "find sandbox nosuch"),
        (["run", "--sandbox", "nosuch", "busybox"], 125, "find sandbox nosuch"),
        (["pull", "--sandbox", "Bad Name", "busybox"], 3, "parse sandbox name"),
        (["pull", "--sandbox", "x", "UPPER/case"], 3, "UPPER/case"),
    ],
    ids=[
        "pull in a missing sandbox is not found",
        "images of a missing sandbox is not found",
        "stats of a missing sandbox is not found",
        "run in a missing sandbox exits 125, not a container's code",
        "a bad sandbox name is an invalid argument",
        "a bad reference is an invalid argument before any sandbox is asked",
    ],
)
def test_sandbox_routing_errors_are_one_line_with_a_status_code(
    tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    env = {**os.environ, "SANDPULL_STATE": str(tmp_path)}
    done = subprocess.run(
        [SANDPULL, *args], capture_output=True, text=True, env=env, check=False
    )

    assert done.returncode == code, done.stderr
    assert done.stderr.startswith("error: ") and message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        (["/usr", "/usr/lib/python3"], ["/usr"]),
        (["/a/b", "/a", "/c"], ["/a", "/c"]),
        (["/ab", "/a"], ["/a", "/ab"]),
    ],
    ids=[
        "a path inside another bind is dropped",
        "the outer path wins whatever the order",
        "a shared name prefix is not containment",
    ],
)
def test_root_plan_binds_only_the_outermost_paths(
    given: list[str], kept: list[str]
) -> None:
    assert rootfs._outermost(map(Path, given)) == tuple(map(Path, kept))


def test_root_plan_prepares_mount_points_and_top_level_links(tmp_path: Path) -> None:
    store, sock = tmp_path / "store", tmp_path / "sock"
    store.mkdir()
    sock.mkdir()
    plan = rootfs.plan(tmp_path, (store, sock))

    rootfs.prepare(plan)

    root = plan.root
    assert (root / "proc").is_dir() and (root / str(store).lstrip("/")).is_dir()
    assert (root / "etc/passwd").is_file() and (root / "etc/passwd").stat().st_size == 0
    if Path("/bin").is_symlink():
        assert os.readlink(root / "bin") == os.readlink("/bin")
    assert Path("/bin") not in rootfs.binds(plan) or not Path("/bin").is_symlink()
    assert not (root / "home").exists()
