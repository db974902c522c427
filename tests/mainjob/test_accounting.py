"""Bytes counted by the agent match the kernel's count on the sandbox's interface."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest

from tests.mainjob.conftest import Env, PrivateRegistry
from tests.mainjob.images import big_image

pytestmark = [pytest.mark.root, pytest.mark.registry]

log = logging.getLogger(__name__)

#: TCP/IP and HTTP headers: a few percent of the payload, plus a fixed part for
#: connection setup, the manifest round trips and stray ARP.
FIXED_OVERHEAD = 64 * 1024
RELATIVE_OVERHEAD = 0.05


def test_pull_stats_match_the_interface_rx_bytes_within_protocol_overhead(
    env: Env, private_registry: PrivateRegistry
) -> None:
    image = big_image(16 << 20, layers=2, seed=3)
    pushed = private_registry.push("tenant/counted", image)
    sandbox = env.create(
        f"tenant:{private_registry.network}", registry=private_registry
    )
    before = asyncio.run(sandbox.rx_bytes())

    done = env.cli("pull", "--sandbox", sandbox.name, "--json", pushed.ref)

    rx = asyncio.run(sandbox.rx_bytes()) - before
    assert done.returncode == 0, done.stderr
    stats = json.loads(env.cli("stats", "--sandbox", sandbox.name, "--json").stdout)
    payload = stats["total_bytes"]
    blobs = len(image.manifest) + len(image.config) + sum(x.size for x in image.layers)
    assert json.loads(done.stdout)["bytes_fetched"] == payload
    assert stats["images"] == [
        {"registry": pushed.host, "image": pushed.ref, "bytes": payload}
    ]
    assert payload >= blobs
    overhead = rx - payload
    log.warning(
        "accounting: payload %d bytes, interface rx %d bytes, overhead %d bytes "
        "(%.2f%%) over plain HTTP in a tenant network",
        payload, rx, overhead, 100 * overhead / payload,
    )  # fmt: skip
    assert 0 <= overhead <= RELATIVE_OVERHEAD * payload + FIXED_OVERHEAD
