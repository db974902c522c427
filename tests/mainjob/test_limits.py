"""Storage and memory limits: a full disk is a clear error, memory bounds nothing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sandpull.sandbox import Sandbox
from tests.mainjob.conftest import Env, PrivateRegistry
from tests.mainjob.images import app_image, big_image

pytestmark = [pytest.mark.root, pytest.mark.registry]

BIG = 100 << 20


def test_a_pull_too_large_for_the_disk_fails_with_no_space_and_the_sandbox_recovers(
    env: Env, private_registry: PrivateRegistry
) -> None:
    big = private_registry.push("tenant/big", big_image(BIG))
    small = private_registry.push("tenant/app", app_image())
    sandbox = env.create(
        f"tenant:{private_registry.network}", registry=private_registry,
        storage=64 << 20,
    )  # fmt: skip

    failed = env.cli("pull", "--sandbox", sandbox.name, big.ref)
    then = env.cli("pull", "--sandbox", sandbox.name, small.ref)

    assert failed.returncode == 8, failed.stderr
    assert "no space left on device" in failed.stderr
    assert then.returncode == 0, then.stderr
    listed = env.cli("images", "--sandbox", sandbox.name, "--json").stdout
    assert small.ref in listed and big.ref not in listed


def test_a_sandbox_with_64m_of_memory_pulls_an_image_larger_than_that(
    env: Env, private_registry: PrivateRegistry
) -> None:
    big = private_registry.push("tenant/big", big_image(BIG))
    sandbox = env.create(
        f"tenant:{private_registry.network}", registry=private_registry,
        memory=64 << 20, storage=512 << 20,
    )  # fmt: skip

    done = env.cli("pull", "--sandbox", sandbox.name, "--json", big.ref)

    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["bytes_fetched"] > BIG
    assert sandbox.alive()
    assert memory_limit(sandbox) == 64 << 20
    listed = env.cli("images", "--sandbox", sandbox.name, "--json").stdout
    assert big.ref in listed


def memory_limit(sandbox: Sandbox) -> int:
    """The memory limit the kernel enforces on the sandbox's cgroup (v1 or v2)."""
    for directory in map(Path, sandbox.record.cgroup_dirs):
        for name in ("memory.limit_in_bytes", "memory.max"):
            if (directory / name).exists():
                return int((directory / name).read_text())
    raise AssertionError("no memory cgroup for the sandbox")
