"""Image RPCs, pull accounting and the agent's own RPCs, through ttrpc."""

from __future__ import annotations

import base64

import pytest

from sandpull import errors
from sandpull.agent import AgentClient
from sandpull.api import agent_pb2 as pb
from tests.agent.conftest import APP_IMAGE, IMAGE
from tests.agent.store import FakeImageStore


async def test_pull_reports_digests_and_bytes(
    client: AgentClient, store: FakeImageStore
) -> None:
    pulled = await client.pull_image(IMAGE)

    image = store.remote[IMAGE]
    assert pulled.image_id == str(image.image_id)
    assert pulled.manifest_digest == str(image.manifest_digest)
    assert pulled.repo_digest == str(image.repo_digest)
    assert pulled.bytes_fetched == image.size


async def test_pull_stats_count_bytes_per_registry_and_image(
    client: AgentClient, store: FakeImageStore
) -> None:
    await client.pull_image(IMAGE)
    await client.pull_image(APP_IMAGE)
    await client.pull_image(IMAGE)

    stats = await client.pull_stats()

    busybox, app = store.remote[IMAGE].size, store.remote[APP_IMAGE].size
    assert stats.total_bytes == 2 * busybox + app
    assert [(r.registry, r.bytes) for r in stats.registries] == [
        ("registry.test:5000", 2 * busybox + app)
    ]
    assert {(i.image, i.bytes) for i in stats.images} == {
        ("registry.test:5000/tools/busybox", 2 * busybox),
        ("registry.test:5000/tools/app", app),
    }


@pytest.mark.parametrize(
    ("auth", "username", "password"),
    [
        pytest.param(pb.AuthConfig(username="u", password="p"), "u", "p",
                     id="username and password are passed as given"),
        pytest.param(pb.AuthConfig(auth=base64.b64encode(b"u2:p:2").decode()),
                     "u2", "p:2", id="the base64 auth form is decoded"),
        pytest.param(pb.AuthConfig(username="u", password="p",
                                   server_address="registry.test:5000"),
                     "u", "p", id="a matching server address is accepted"),
        pytest.param(pb.AuthConfig(), None, None, id="empty auth means anonymous"),
    ],
)  # fmt: skip
async def test_pull_passes_credentials_to_the_store(
    client: AgentClient,
    store: FakeImageStore,
    auth: pb.AuthConfig,
    username: str | None,
    password: str | None,
) -> None:
    await client.pull_image(IMAGE, auth=auth)

    credential = store.pulls[-1][1]
    got = (credential.username, credential.password) if credential else (None, None)
    assert got == (username, password)


async def test_credentials_for_another_registry_are_refused(
    client: AgentClient, store: FakeImageStore
) -> None:
    auth = pb.AuthConfig(username="u", password="p", server_address="other.test")

    with pytest.raises(errors.InvalidArgument, match="credentials are for registry"):
        await client.pull_image(IMAGE, auth=auth)
    assert store.pulls == []


@pytest.mark.parametrize(
    ("image", "error"),
    [
        pytest.param("UPPER/Case", errors.InvalidArgument,
                     id="a malformed reference is invalid"),
        pytest.param("registry.test:5000/absent:1", errors.NotFound,
                     id="an image the registry lacks is not found"),
    ],
)  # fmt: skip
async def test_bad_pull_fails_clearly(
    client: AgentClient, image: str, error: type[errors.SandpullError]
) -> None:
    with pytest.raises(error):
        await client.pull_image(image)


async def test_image_status_of_absent_image_has_no_image(client: AgentClient) -> None:
    status = await client.image_status(IMAGE)

    assert not status.HasField("image")


async def test_image_status_and_list_after_pull(
    client: AgentClient, store: FakeImageStore
) -> None:
    await client.pull_image(APP_IMAGE)

    status = await client.image_status(APP_IMAGE)
    listed = await client.list_images()

    assert status.image.id == str(store.remote[APP_IMAGE].image_id)
    assert list(status.image.repo_tags) == [APP_IMAGE]
    assert [i.id for i in listed.images] == [status.image.id]


async def test_remove_image_is_idempotent(client: AgentClient) -> None:
    await client.pull_image(IMAGE)

    await client.remove_image(IMAGE)
    await client.remove_image(IMAGE)

    assert not (await client.image_status(IMAGE)).HasField("image")


async def test_image_fs_info_reports_the_store(
    client: AgentClient, store: FakeImageStore
) -> None:
    info = await client.image_fs_info()

    assert (info.mountpoint, info.used_bytes, info.inodes_used) == (
        str(store.root),
        4096,
        7,
    )


async def test_health_and_version(client: AgentClient) -> None:
    health = await client.health()
    version = await client.version()

    assert health.status == pb.HealthResponse.SERVING
    assert version.api_version == "v1"
    assert version.runtime_version.startswith("runc version")


async def test_registry_bytes_are_exported_as_prometheus_metrics(
    client: AgentClient, store: FakeImageStore
) -> None:
    await client.pull_image(IMAGE)

    metrics = store.accounting.metrics  # type: ignore[attr-defined]
    value = metrics.get_sample_value(
        "sandpull_registry_bytes_total", {"registry": "registry.test:5000"}
    )
    assert value == store.remote[IMAGE].size
