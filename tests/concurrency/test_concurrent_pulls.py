"""Twenty concurrent pulls of overlapping images into one store.

Four images share two base layers and each has a top layer of its own; five
pulls of each run at once through a counting proxy in front of the real
registry. Every blob must cross the wire once, every pull must succeed, and a
pull stuck on a slow blob must not hold up pulls that do not need it.
"""

from __future__ import annotations

import asyncio

import pytest

from sandpull.images import PulledImage
from sandpull.oci import Compression, mediatype
from tests.faults.conftest import OpenStore, StartProxy
from tests.faults.proxy import Rule, hold
from tests.support.images import Image, build_image, push_image
from tests.support.layers import dir_, file, make_layer, tar_entries
from tests.support.registry_server import RegistryServer

pytestmark = [pytest.mark.registry]

IMAGES = 4
PULLS_EACH = 5
LAYER_BYTES = 512 * 1024
#: A gate, not a timing assertion: a deadlock fails here instead of hanging.
GATE_SECONDS = 120


def _layer(name: str, seed: int) -> object:
    import random

    content = random.Random(seed).randbytes(LAYER_BYTES)
    tar = tar_entries([dir_("data/"), file(f"data/{name}", content)])
    return make_layer(tar, mediatype.OCI_LAYER_GZIP, Compression.GZIP)


@pytest.fixture(scope="module")
def images(registry_plain: RegistryServer) -> list[Image]:
    base = [_layer("base0", 1), _layer("base1", 2)]
    built = [
        build_image([*base, _layer(f"top{i}", 100 + i)])  # type: ignore[list-item]
        for i in range(IMAGES)
    ]
    for i, image in enumerate(built):
        push_image(registry_plain, f"overlap/app{i}", "v1", image)
    return built


async def test_twenty_overlapping_pulls_fetch_every_blob_once(
    images: list[Image],
    registry_plain: RegistryServer,
    start_proxy: StartProxy,
    open_store: OpenStore,
) -> None:
    proxy = await start_proxy(registry_plain)
    store = open_store(proxy.host)
    refs = [f"{proxy.host}/overlap/app{i % IMAGES}:v1" for i in range(20)]

    pulled = await asyncio.wait_for(
        asyncio.gather(*(store.pull(ref) for ref in refs)), GATE_SECONDS
    )

    assert [p.image_id for p in pulled] == [
        images[i % IMAGES].config_digest for i in range(20)
    ]
    blobs = {layer.digest: layer.size for image in images for layer in image.layers}
    assert {d: proxy.blob_bytes(d) for d in blobs} == blobs
    assert len(store.list_images()) == IMAGES
    assert store.check().clean


async def test_a_pull_stuck_on_one_blob_does_not_hold_up_the_others(
    images: list[Image],
    registry_plain: RegistryServer,
    start_proxy: StartProxy,
    open_store: OpenStore,
) -> None:
    released = asyncio.Event()
    stuck_layer = images[0].layers[-1].digest
    proxy = await start_proxy(
        registry_plain, [Rule(rf"/blobs/{stuck_layer}$", hold(released))]
    )
    store = open_store(proxy.host)
    stuck = asyncio.create_task(store.pull(f"{proxy.host}/overlap/app0:v1"))
    others = [
        store.pull(f"{proxy.host}/overlap/app{i}:v1")
        for i in range(1, IMAGES)
        for _ in range(PULLS_EACH)
    ]

    done: list[PulledImage] = await asyncio.wait_for(
        asyncio.gather(*others), GATE_SECONDS
    )
    assert not stuck.done(), "the stuck pull finished before its blob was released"
    released.set()
    first = await asyncio.wait_for(stuck, GATE_SECONDS)

    assert len(done) == (IMAGES - 1) * PULLS_EACH
    assert first.image_id == images[0].config_digest
    assert store.check().clean
