"""The pipeline with the real registry client and layer applier."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from sandpull.images import ImageService
from sandpull.registry import RegistriesConfig
from tests.images.bigimage import OVERHEAD_LIMIT, big_image
from tests.support.images import push_image
from tests.support.registry_server import RegistryServer

pytestmark = [pytest.mark.registry]


@pytest.fixture
def service(tmp_path: Path, registry_plain: RegistryServer) -> Iterator[ImageService]:
    host = registry_plain.host
    config = RegistriesConfig.parse(
        f'[[registry]]\nprefix = "{host}"\nlocation = "{host}"\ninsecure = true\n'
    )
    store = ImageService(tmp_path / "store", registry_config=config)
    yield store
    store.close()


async def test_concurrent_pulls_fetch_each_blob_once(
    service: ImageService, registry_plain: RegistryServer
) -> None:
    image = big_image(layers=3, layer_bytes=1 << 20, seed=1)
    pushed = push_image(registry_plain, "images/flight", "v1", image)
    layers = sum(x.size for x in image.layers)

    first, second = await asyncio.gather(
        service.pull(pushed.ref), service.pull(pushed.ref)
    )

    fetched = first.bytes_fetched + second.bytes_fetched
    assert layers <= fetched < layers + OVERHEAD_LIMIT
    stats = service.pull_stats()
    assert {registry for registry, _ in stats} == {registry_plain.host}
    assert sum(stats.values()) == fetched
    assert service.check().clean


async def test_pull_by_tag_after_digest_fetches_no_layer(
    service: ImageService, registry_plain: RegistryServer
) -> None:
    image = big_image(layers=2, layer_bytes=1 << 20, seed=2)
    pushed = push_image(registry_plain, "images/bydigest", "v1", image)

    by_digest = await service.pull(pushed.ref_by_digest)
    by_tag = await service.pull(pushed.ref)

    assert by_digest.image_id == by_tag.image_id == image.config_digest
    assert by_digest.bytes_fetched > sum(x.size for x in image.layers)
    assert by_tag.bytes_fetched < OVERHEAD_LIMIT
    assert len(service.snapshots.committed()) == len(image.layers)
    assert service.get(pushed.ref_by_digest).name == pushed.ref_by_digest
