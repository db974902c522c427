"""Pull times inside a sandbox vs the host store, for the lead's notes (not a proof).

Both pull the same registry storage: the sandbox through the tenant network, the
host store through the host-side registry process on 127.0.0.1. The host store
is a directory on the test tmp dir's filesystem; the sandbox store is ext4 on a
loop-mounted sparse file on that same filesystem. Run with ``--long``.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.mainjob.conftest import Env, PrivateRegistry
from tests.mainjob.images import busybox_layer
from tests.support import debian
from tests.support.images import Image, build_image

pytestmark = [pytest.mark.root, pytest.mark.registry, pytest.mark.slow]

log = logging.getLogger(__name__)


def _busybox() -> Image:
    return build_image([busybox_layer()])


@pytest.mark.parametrize(
    "make",
    [_busybox, debian.image],
    ids=["the demo busybox image", "the debian minbase image"],
)
def test_pull_time_in_a_sandbox_and_on_the_host_store(
    env: Env, private_registry: PrivateRegistry, tmp_path: Path, make: object
) -> None:
    image = make()  # type: ignore[operator]
    pushed = private_registry.push("measure/image", image)
    seeder_ref = f"{private_registry.seeder.host}/measure/image:latest"
    sandbox = env.create(
        f"tenant:{private_registry.network}", registry=private_registry,
        storage=2 << 30,
    )  # fmt: skip

    inside = env.cli("pull", "--sandbox", sandbox.name, "--json", pushed.ref)
    host = env.cli("pull", "--root", str(tmp_path / "store"), "--json", seeder_ref)

    assert inside.returncode == 0, inside.stderr
    assert host.returncode == 0, host.stderr
    a, b = json.loads(inside.stdout), json.loads(host.stdout)
    assert a["bytes_fetched"] == b["bytes_fetched"]
    log.warning(
        "pull time of %d bytes: %.2fs in a sandbox (ext4 on loop), %.2fs on the "
        "host store (%s)", a["bytes_fetched"], a["seconds"], b["seconds"], tmp_path,
    )  # fmt: skip
