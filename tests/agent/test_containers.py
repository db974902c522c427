"""Containers through the agent's ttrpc socket, run by the real runc."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from sandpull import errors
from sandpull.agent import AgentClient, AgentService
from sandpull.api import agent_pb2 as pb
from tests.agent.conftest import APP_IMAGE, IMAGE
from tests.agent.store import FakeImageStore

pytestmark = pytest.mark.root


async def run(client: AgentClient, id: str, image: str, **kw: object) -> int:
    await client.create_container(id, image, **kw)  # type: ignore[arg-type]
    await client.start_container(id)
    return (await client.wait_container(id)).exit_status


async def stdout(client: AgentClient, id: str) -> str:
    return (await client.container_logs(id)).data.decode()


async def test_container_sees_image_env_user_and_cwd(client: AgentClient) -> None:
    script = "id -u; id -g; id -G; pwd; env | sort"
    await client.pull_image(APP_IMAGE)

    status = await run(client, "c1", APP_IMAGE, args=[script], env=["EXTRA=1"])

    lines = (await stdout(client, "c1")).splitlines()
    assert status == 0
    assert lines[:4] == ["1000", "1000", "1000 2000", "/home/app"]
    env = set(lines[4:])
    assert {"GREETING=hello", "EXTRA=1", "HOME=/home/app", "PATH=/bin"} <= env


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        pytest.param("", "0 0", id="no user runs as root"),
        pytest.param("app", "1000 1000", id="a user name takes its passwd group"),
        pytest.param("1000:2000", "1000 2000", id="numeric uid and gid pass through"),
        pytest.param("4242", "4242 0", id="a uid not in passwd runs with gid 0"),
        pytest.param("nobody:extra", "65534 2000", id="a group name is resolved"),
    ],
)
async def test_user_is_resolved_against_the_image(
    client: AgentClient, user: str, expected: str
) -> None:
    status = await run(
        client, "u1", IMAGE, command=["sh", "-c", "echo $(id -u) $(id -g)"], user=user
    )

    assert status == 0
    assert (await stdout(client, "u1")).strip() == expected


@pytest.mark.parametrize(
    ("script", "expected"),
    [
        pytest.param("exit 0", 0, id="exit 0 passes through"),
        pytest.param("exit 3", 3, id="exit 3 passes through"),
        pytest.param("exit 255", 255, id="exit 255 passes through"),
    ],
)
async def test_exit_code_passes_through(
    client: AgentClient, script: str, expected: int
) -> None:
    assert await run(client, "e1", IMAGE, command=["sh", "-c", script]) == expected


async def test_killed_container_exits_with_128_plus_signal(
    client: AgentClient,
) -> None:
    # The process is pid 1 of its namespace: only a signal from outside that
    # namespace, like this SIGKILL, ends it without a handler of its own.
    await client.create_container("s1", IMAGE, command=["sleep", "600"])
    await client.start_container("s1")

    await client.signal_container("s1", signal.SIGKILL)
    status = await client.wait_container("s1")

    assert status.exit_status == 128 + signal.SIGKILL


async def test_two_containers_share_the_image_snapshots(
    client: AgentClient, store: FakeImageStore
) -> None:
    write = ["sh", "-c", "echo mine > /etc/motd; touch /made-here; cat /etc/motd"]
    read = ["sh", "-c", "cat /etc/motd; ls /made-here"]
    await client.pull_image(APP_IMAGE)

    first = await run(client, "w1", APP_IMAGE, command=write, user="root")
    second = await run(client, "r1", APP_IMAGE, command=read, user="root")

    snapshots = store.present[APP_IMAGE].layers
    assert (first, await stdout(client, "w1")) == (0, "mine\n")
    assert await stdout(client, "r1") == "second layer\n"
    assert second != 0  # /made-here exists only in w1's upper dir
    assert (snapshots[1] / "etc" / "motd").read_text() == "second layer\n"
    assert not (snapshots[0] / "made-here").exists()


async def test_containers_of_one_image_mount_the_same_lower_dirs(
    agent: tuple[AgentClient, AgentService], store: FakeImageStore
) -> None:
    client, service = agent
    for id in ("m1", "m2"):
        await client.create_container(id, IMAGE, command=["true"])

    lowers = [
        _lowerdir(service.containers.get(id).bundle / "rootfs") for id in ("m1", "m2")
    ]

    assert lowers[0] == lowers[1] == str(store.remote[IMAGE].layers[0])


async def test_create_pulls_a_missing_image_with_remembered_credentials(
    client: AgentClient, store: FakeImageStore
) -> None:
    auth = pb.AuthConfig(username="tenant", password="s3cret")
    await client.pull_image(IMAGE, auth=auth)
    await store.remove(store.present[IMAGE].reference)

    await client.create_container("p1", IMAGE, command=["true"])

    assert [(ref, cred.username if cred else None) for ref, cred in store.pulls] == [
        (IMAGE, "tenant"),
        (IMAGE, "tenant"),
    ]
    assert store.pulls[1][1] is not None and store.pulls[1][1].password == "s3cret"


async def test_container_logs_read_from_an_offset(client: AgentClient) -> None:
    await run(client, "l1", IMAGE, command=["sh", "-c", "echo abcdef; echo oops >&2"])

    tail = await client.container_logs("l1", offset=3, max_bytes=2)
    rest = await client.container_logs("l1", offset=tail.next_offset)
    err = await client.container_logs("l1", stream=pb.STDERR)

    assert (tail.data, tail.next_offset, tail.eof) == (b"de", 5, False)
    assert (rest.data, rest.eof) == (b"f\n", True)
    assert err.data == b"oops\n"


async def test_remove_unmounts_and_deletes_the_bundle(
    agent: tuple[AgentClient, AgentService],
) -> None:
    client, _ = agent
    created = await client.create_container("d1", IMAGE, command=["true"])
    bundle = Path(created.bundle)
    assert os.path.ismount(bundle / "rootfs")

    await client.start_container("d1")
    await client.wait_container("d1")
    await client.remove_container("d1")

    assert not bundle.exists()
    assert (await client.list_containers()).containers == []


async def test_list_containers_reports_state_and_exit_status(
    client: AgentClient,
) -> None:
    await run(client, "x1", IMAGE, command=["sh", "-c", "exit 7"])
    await client.create_container("x2", IMAGE, command=["true"], annotations={"a": "b"})

    listed = {c.id: c for c in (await client.list_containers()).containers}

    assert (listed["x1"].state, listed["x1"].exit_status) == (pb.CONTAINER_EXITED, 7)
    assert listed["x2"].state == pb.CONTAINER_CREATED
    assert dict(listed["x2"].annotations) == {"a": "b"}


@pytest.mark.parametrize(
    ("call", "error"),
    [
        pytest.param(
            lambda c: c.create_container("bad/id", IMAGE),
            errors.InvalidArgument,
            id="an id with a slash is invalid",
        ),
        pytest.param(
            lambda c: c.create_container("n1", "registry.test:5000/none:1"),
            errors.NotFound,
            id="an image no registry has is not found",
        ),
        pytest.param(
            lambda c: c.start_container("ghost"),
            errors.NotFound,
            id="starting an unknown container is not found",
        ),
        pytest.param(
            lambda c: c.wait_container("ghost"),
            errors.NotFound,
            id="waiting on an unknown container is not found",
        ),
        pytest.param(
            lambda c: c.create_container("n2", IMAGE, user="nosuch"),
            errors.InvalidArgument,
            id="an unknown user name is invalid",
        ),
    ],
)
async def test_bad_container_calls_fail_clearly(
    client: AgentClient, call: object, error: type[errors.SandpullError]
) -> None:
    with pytest.raises(error):
        await call(client)  # type: ignore[operator]


async def test_duplicate_id_already_exists(client: AgentClient) -> None:
    await client.create_container("dup", IMAGE, command=["true"])

    with pytest.raises(errors.AlreadyExists, match="create container dup"):
        await client.create_container("dup", IMAGE, command=["true"])


async def test_removing_a_running_container_needs_force(client: AgentClient) -> None:
    await client.create_container("f1", IMAGE, command=["sleep", "600"])
    await client.start_container("f1")

    with pytest.raises(errors.FailedPrecondition, match="still running"):
        await client.remove_container("f1")
    await client.remove_container("f1", force=True)

    assert (await client.list_containers()).containers == []


def _lowerdir(mountpoint: Path) -> str:
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        if fields[4] == str(mountpoint):
            options = line.split(" - ")[1].split()[2]
            for option in options.split(","):
                if option.startswith("lowerdir="):
                    return option.removeprefix("lowerdir=")
    raise AssertionError(f"{mountpoint} is not mounted")
